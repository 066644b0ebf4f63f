"""The OSC server: receives ``/liveduet/...`` messages on UDP and enqueues Commands; echoes state.

The address map lives in :mod:`liveduet.core.oscmap`; this module is only the network part. The
server thread parses datagrams with python-osc's packet parser, refuses anything malformed,
unknown, ill-typed, out of range or from a host outside ``allow`` (logged once per address and
reason on the ``liveduet.live.control`` logger, counted in :attr:`OscControl.counters`), and hands
every valid Command to ``submit``. Nothing else runs on the server thread.

Under a flood the server parses at most ``RATE`` messages a second (a bundle counts its
messages) and sleeps in between; what comes meanwhile waits in the kernel's socket buffer
(bounded), which drops what does not fit. On Linux the kernel tells how many it dropped
(SO_RXQ_OVFL, with each datagram read), so nothing is read only to be counted; elsewhere the
excess is read and dropped unparsed. Either way the count is ``flood`` in the counters and
:attr:`OscControl.dropped`, and parsing never takes more than a small share of a core.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from liveduet.core.oscmap import REASONS, Refused, changed_values, encode, parse, state_values
from liveduet.core.settings import Command
from liveduet.errors import ConfigError
from liveduet.live.mailbox import RateLimit
from liveduet.live.oscwire import well_formed

__all__ = ["OscControl", "changed_values", "state_values"]

log = logging.getLogger("liveduet.live.control")
MAX_CLIENTS = 8
MAX_LOGGED = 256
_POLL_S = 0.1
RATE = 1000.0      # messages parsed per second at most (TouchOSC sends well under 200)
BURST = 400
SHED_S = 0.005     # out of tokens: sleep at least this long before reading on
SO_RXQ_OVFL = 40   # Linux: the kernel reports the datagrams it dropped on this socket
RCVBUF = 32_768    # socket receive buffer asked for (Linux doubles it): what waits under a
# flood is parsed before a fresh message, so it holds ~80 small datagrams or ~5 big bundles
# (2 s at RATE), not the default ~200 KB (7 s behind stale bundles)


class OscControl:
    """OSC control server: handlers only enqueue via ``submit``; :meth:`publish` echoes state.

    Args:
        submit: called on the server thread with each valid Command (e.g. ``queue.put``).
        host: interface to bind; 127.0.0.1 keeps it local, 0.0.0.0 opens it to the LAN.
        port: UDP port to listen on (TouchOSC sends to 8000); 0 picks a free port.
        reply_port: port on each client's host that feedback goes to (TouchOSC: 9000).
        allow: host names or IPs allowed to send (entries may be comma-separated); empty
            allows any. Names resolve once, here.
    """

    def __init__(self, submit: Callable[[Command], None], *, host: str = "127.0.0.1",
                 port: int = 8000, reply_port: int = 9000, allow: Sequence[str] = ()) -> None:
        if not 0 <= port <= 65535 or not 1 <= reply_port <= 65535:
            raise ConfigError(f"OSC port {port} / reply port {reply_port} out of range; "
                              "give ports from 1 to 65535 (0 = any free port to listen on)")
        self._submit = submit
        self._host = host
        self._port = port
        self.reply_port = reply_port
        self._allowed = _resolve_all(allow)
        self.counters: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.accepted = 0
        self._logged: set[tuple[str, str]] = set()
        self._clients: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._out: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._limit = RateLimit(RATE, BURST)
        self._kernel_counts = False   # the kernel reports its drops (SO_RXQ_OVFL)
        self._own_drops = 0           # datagrams read and dropped unparsed here
        self._kernel_drops = 0        # datagrams the kernel dropped (its cumulative count)

    @property
    def dropped(self) -> int:
        """Datagrams dropped unparsed past the rate limit (here or by the kernel)."""
        return self.counters.get("flood", 0)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server is bound to (the real port after ``port=0``)."""
        if self._sock is None:
            return (self._host, self._port)
        host, port = self._sock.getsockname()[:2]
        return (str(host), int(port))

    @property
    def clients(self) -> list[str]:
        """Hosts that feedback goes to: each allowed host that sent a valid packet."""
        with self._lock:
            return list(self._clients)

    def start(self) -> None:
        """Bind the socket and start the server thread (ConfigError if it cannot bind)."""
        if self._thread is not None:
            return
        family = _family(self._host)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self._host, self._port))
        except OSError as err:
            sock.close()
            raise ConfigError(f"cannot listen for OSC on {self._host}:{self._port} ({err}); "
                              "pick another --osc-port or --osc-host") from err
        self._sock = sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._kernel_counts = _kernel_counts_drops(sock)
        self._out = socket.socket(family, socket.SOCK_DGRAM)
        self._out.setblocking(False)  # publish runs on the conductor: never wait on the network
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="liveduet-osc", daemon=True)
        self._thread.start()
        log.info("OSC control listening on %s:%d, replying to port %d", *self.address,
                 self.reply_port)

    def stop(self) -> None:
        """Stop the server thread and close the sockets (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        for sock in (self._sock, self._out):
            if sock is not None:
                sock.close()
        self._sock = self._out = None

    def publish(self, values: Mapping[str, Any]) -> None:
        """Send ``/liveduet/<name> value`` for each entry to every client (never raises).

        Settings go out in their OSC form (choice index, 0/1, number); see
        :func:`liveduet.core.oscmap.encode`. Use :func:`state_values` for a full dump.
        """
        out = self._out
        clients = self.clients
        if out is None or not clients:
            return
        datagrams = [_message(path, args) for name, value in values.items()
                     for path, args in encode(name, value)]
        for host in clients:
            for dgram in datagrams:
                try:
                    out.sendto(dgram, (host, self.reply_port))
                except OSError as err:
                    self._refuse("send_failed", f"{host}:{self.reply_port}", str(err))

    # --- server thread -------------------------------------------------------------------

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], _POLL_S)
                if not ready:
                    continue
                if self._kernel_counts:
                    data, ancillary, _flags, addr = sock.recvmsg(65536, socket.CMSG_SPACE(4))
                    self._kernel_dropped(ancillary)
                else:
                    data, addr = sock.recvfrom(65536)
            except (OSError, ValueError):  # closed under us by stop()
                if self._stop.is_set():
                    return
                continue
            now = time.perf_counter()
            if not self._limit.take(_cost(data), now):
                self._shed(sock, now)
                continue
            try:
                self._datagram(data, str(addr[0]))
            except Exception as err:  # never let one packet kill the server
                self._refuse("internal", "<handler>", repr(err))

    def _shed(self, sock: socket.socket, now: float) -> None:
        """Past the rate: drop this datagram unparsed, then sleep until the rate allows more.
        Without the kernel's count, what waits is read and counted first (~2 µs a datagram
        instead of ~30 µs to parse one); with it, it stays in the kernel's buffer."""
        dropped, buf = 1, bytearray(16)
        if not self._kernel_counts:
            try:
                while sock.recv_into(buf, 16, socket.MSG_DONTWAIT) >= 0 and dropped < 100_000:
                    dropped += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:  # closed under us by stop()
                return
        first = not self.counters.get("flood")
        with self._lock:
            self._own_drops += dropped
            self.counters["flood"] = self._own_drops + self._kernel_drops
        if first:
            log.warning("OSC flood: more than %.0f messages/s; the excess is dropped unparsed "
                        "and counted (/liveduet/dropped)", RATE)
        self._stop.wait(max(SHED_S, min(0.05, self._limit.ready_at(now) - now)))

    def _kernel_dropped(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        """Take the kernel's cumulative drop count from a datagram's ancillary data."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
                count = struct.unpack("=I", data[:4])[0]
                if count != self._kernel_drops:
                    with self._lock:
                        self._kernel_drops = count
                        self.counters["flood"] = self._own_drops + count

    def _datagram(self, data: bytes, host: str) -> None:
        if self._allowed and host not in self._allowed:
            self._refuse("denied", f"<host {host}>", f"{host} is not in --osc-allow")
            return
        try:
            if not well_formed(data):
                raise ValueError("sizes do not add up to an OSC 1.0 message or bundle")
            messages = [m.message for m in osc_packet.OscPacket(data).messages]
        except Exception as err:  # python-osc raises ParseError and, on odd input, others
            self._refuse("malformed", f"<packet from {host}>", f"not an OSC packet ({err})")
            return
        self._remember(host)
        for msg in messages:
            self._message(msg.address, list(msg.params))

    def _message(self, path: str, args: list[Any]) -> None:
        try:
            command = parse(path, args)
        except Refused as err:
            self._refuse(err.reason, path, err.detail)
            return
        if command is not None:
            log.debug("OSC %s %r -> %r", path, args, command)
            self._submit(command)
            self.accepted += 1

    def _remember(self, host: str) -> None:
        with self._lock:
            self._clients[host] = None
            self._clients.move_to_end(host)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)

    def _refuse(self, reason: str, where: str, detail: str) -> None:
        key = (reason, where)
        with self._lock:
            self.counters[reason] = self.counters.get(reason, 0) + 1
            first = key not in self._logged and len(self._logged) < MAX_LOGGED
            if first:
                self._logged.add(key)
        if first:
            log.warning("OSC %s refused (%s): %s (further ones are only counted)",
                        where, reason, detail)


def _kernel_counts_drops(sock: socket.socket) -> bool:
    """Ask the kernel to report this socket's dropped datagrams (Linux); False if it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    except OSError:
        return False
    return True


def _cost(data: bytes) -> int:
    """About the messages in a datagram (each has one type tag string, which starts with ','),
    counted at C speed: a bundle costs what parsing its messages costs."""
    return min(max(1, data.count(b",")), BURST)


def _message(path: str, args: Sequence[Any]) -> bytes:
    builder = OscMessageBuilder(address=path)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][0]
    except (socket.gaierror, IndexError) as err:
        raise ConfigError(f"cannot resolve OSC host {host!r} ({err}); give an IP address such "
                          "as 127.0.0.1 or 0.0.0.0") from err


def _resolve_all(hosts: Sequence[str]) -> frozenset[str]:
    """Every IP address the allowed names stand for (resolved once); 'a,b' counts as two."""
    if isinstance(hosts, str):
        hosts = [hosts]
    ips: set[str] = set()
    for host in (h.strip() for item in hosts for h in item.split(",") if h.strip()):
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as err:
            raise ConfigError(f"--osc-allow {host!r} does not resolve ({err}); give the "
                              "phone's IP address or a resolvable host name") from err
        ips.update(str(info[4][0]) for info in infos)
    return frozenset(ips)

