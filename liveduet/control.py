"""The OSC server: receives ``/liveduet/...`` messages on UDP and enqueues Commands; echoes state.

The address map lives in :mod:`liveduet.oscmap`; this module is only the network part. The
server thread parses datagrams with python-osc's packet parser, refuses anything malformed,
unknown, ill-typed, out of range or from a host outside ``allow`` (logged once per address and
reason on the ``liveduet.control`` logger, counted in :attr:`OscControl.counters`), and hands
every valid Command to ``submit``. Nothing else runs on the server thread.

Under a flood the server parses at most ``RATE`` messages a second (a bundle counts its messages):
the rest are read and dropped unparsed (``flood`` in the counters, :attr:`OscControl.dropped`),
so parsing never takes more than a small share of a core from the notes, and the kernel's socket
buffer, not Python, holds what waits.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from liveduet.errors import ConfigError
from liveduet.mailbox import RateLimit
from liveduet.oscmap import REASONS, Refused, changed_values, encode, parse, state_values
from liveduet.oscwire import well_formed
from liveduet.settings import Command

__all__ = ["OscControl", "changed_values", "state_values"]

log = logging.getLogger("liveduet.control")
MAX_CLIENTS = 8
MAX_LOGGED = 256
_POLL_S = 0.1
RATE = 2000.0      # datagrams parsed per second at most (TouchOSC sends well under 200)
BURST = 400
SHED_S = 0.002     # out of tokens: read and count what waits, then sleep this long


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

    @property
    def dropped(self) -> int:
        """Datagrams read and dropped unparsed past the rate limit."""
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
        :func:`liveduet.oscmap.encode`. Use :func:`state_values` for a full dump.
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
                data, addr = sock.recvfrom(65536)
            except (OSError, ValueError):  # closed under us by stop()
                if self._stop.is_set():
                    return
                continue
            if not self._limit.take(_cost(data), time.perf_counter()):
                self._shed(sock)
                continue
            try:
                self._datagram(data, str(addr[0]))
            except Exception as err:  # never let one packet kill the server
                self._refuse("internal", "<handler>", repr(err))

    def _shed(self, sock: socket.socket) -> None:
        """Past the rate: drop (and count) what waits without parsing it, then sleep a little;
        the kernel's socket buffer holds what comes meanwhile (bounded; beyond it the kernel
        drops, uncounted). Costs ~2 µs a datagram instead of ~30 µs to parse one."""
        dropped, buf = 1, bytearray(16)
        try:
            while sock.recv_into(buf, 16, socket.MSG_DONTWAIT) >= 0 and dropped < 100_000:
                dropped += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # closed under us by stop()
            return
        first = not self.counters.get("flood")
        with self._lock:
            self.counters["flood"] = self.counters.get("flood", 0) + dropped
        if first:
            log.warning("OSC flood: more than %.0f messages/s; the excess is dropped unparsed "
                        "and counted (/liveduet/dropped)", RATE)
        self._stop.wait(SHED_S)

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

