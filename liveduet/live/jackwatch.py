"""Watch the JACK server and the connections of liveduet's ports (ctypes on libjack).

python-rtmidi does not tell its user when the JACK server goes away (sends then vanish silently)
nor when a port is connected or disconnected. :class:`JackWatch` opens one small extra client,
``liveduet-watch``, through ``libjack`` (already loaded by python-rtmidi's JACK backend; ctypes is
the standard library, so no new dependency): JACK calls its shutdown callback when the server
dies, its port-connect callback on every connection change (so a disconnect and reconnect
faster than any poll is still two events), and :meth:`JackWatch.connections` lists what a port
is wired to. It runs no audio callback. JACK delivers port-connect notifications without
waiting for the client's answer, so a callback waiting for the GIL cannot stall the server.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable

CLIENT = "liveduet-watch"
DRAIN_TIMEOUT_S = 1.0   # longest a closing port waits for the server to run its cycles
NO_START_SERVER = 0x01
_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_CONNECT = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int,
                            ctypes.c_void_p)
OnConnect = Callable[[str, str, bool], None]
"""Called on JACK's notification thread with (source port, destination port, connected)."""


def _lib() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                     ctypes.POINTER(ctypes.c_int)]
    lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _SHUTDOWN, ctypes.c_void_p]
    lib.jack_activate.argtypes = [ctypes.c_void_p]
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    lib.jack_port_by_name.restype = ctypes.c_void_p
    lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.jack_port_get_all_connections.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.jack_free.argtypes = [ctypes.c_void_p]
    lib.jack_set_port_connect_callback.restype = ctypes.c_int
    lib.jack_set_port_connect_callback.argtypes = [ctypes.c_void_p, _CONNECT, ctypes.c_void_p]
    lib.jack_port_by_id.restype = ctypes.c_void_p
    lib.jack_port_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_port_name.restype = ctypes.c_char_p
    lib.jack_port_name.argtypes = [ctypes.c_void_p]
    lib.jack_last_frame_time.restype = ctypes.c_uint32
    lib.jack_last_frame_time.argtypes = [ctypes.c_void_p]
    return lib


def wait_cycle_starts(frame_time: Callable[[], int], n: int,
                      timeout: float = DRAIN_TIMEOUT_S) -> bool:
    """Wait until the server's cycle-start frame counter ``frame_time`` has changed ``n``
    times: ``n`` JACK cycles have begun, whatever the wall clock did meanwhile (the counter
    moves by whole periods, and by several at once when a stalled server resumes, so its
    changes are counted, not its frames). False after ``timeout`` seconds without them (a
    stalled or vanished server)."""
    last = frame_time()
    deadline = time.monotonic() + timeout
    while n > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)
        now = frame_time()
        if now != last:
            n, last = n - 1, now
    return True


class JackWatch:
    """An extra JACK client that notices server shutdown and lists port connections."""

    def __init__(self, lib: ctypes.CDLL, client: int, on_connect: OnConnect | None = None) -> None:
        self._lib = lib
        self._client: int | None = client
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._on_connect = on_connect
        self._callback = _SHUTDOWN(lambda _arg: self._lost.set())  # keep a reference
        self._connect_cb = _CONNECT(self._connected)
        lib.jack_on_shutdown(client, self._callback, None)
        self.events = on_connect is not None and lib.jack_set_port_connect_callback(
            client, self._connect_cb, None) == 0
        lib.jack_activate(client)

    @classmethod
    def open(cls, on_connect: OnConnect | None = None) -> JackWatch | None:
        """A watch on the current JACK server (JACK_DEFAULT_SERVER), or None if unreachable;
        ``on_connect`` gets every connection change (:attr:`events` says whether it will)."""
        lib = _lib()
        if lib is None:
            return None
        status = ctypes.c_int(0)
        client = lib.jack_client_open(CLIENT.encode(), NO_START_SERVER, ctypes.byref(status))
        return cls(lib, client, on_connect) if client else None

    def _connected(self, a: int, b: int, connect: int, _arg: object) -> None:
        """JACK's port-connect callback: names the two ports, hands them on (never raises)."""
        try:
            client = self._client
            if client is None or self._on_connect is None:
                return
            names = []
            for port_id in (a, b):
                port = self._lib.jack_port_by_id(client, port_id)
                name = self._lib.jack_port_name(port) if port else None
                names.append(name.decode(errors="replace") if name else "")
            self._on_connect(names[0], names[1], bool(connect))
        except Exception:  # an exception cannot cross into libjack
            return

    @property
    def lost(self) -> bool:
        """True once the JACK server has shut down or thrown this client out."""
        return self._lost.is_set()

    def connections(self, port: str) -> list[str] | None:
        """Ports wired to ``port`` (full JACK name); None if the port or server is gone."""
        with self._lock:
            if self._client is None or self.lost:
                return None
            handle = self._lib.jack_port_by_name(self._client, port.encode())
            if not handle:
                return None
            names = self._lib.jack_port_get_all_connections(self._client, handle)
            if not names:
                return []
            out: list[str] = []
            i = 0
            while names[i] is not None:
                out.append(names[i].decode(errors="replace"))
                i += 1
            self._lib.jack_free(names)
            return out

    def wait_cycles(self, n: int = 3, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until the server has begun ``n`` more cycles. With 3, what a client wrote to
        its ports before the call has left them: rtmidi's JACK output drains its ring buffer
        in its next cycle, which is over when the one after it begins. False when the server
        ran none that long, or is gone."""
        with self._lock:
            client = self._client
            if client is None or self.lost:
                return False

        def frame() -> int:
            with self._lock:
                return int(self._lib.jack_last_frame_time(client)) if self._client else 0
        return wait_cycle_starts(frame, n, timeout)

    def close(self) -> None:
        """Close the client (safe to call twice; a dead server's client is only dropped)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and not self.lost:
            self._lib.jack_client_close(client)

