"""The one JACK client of the JACK-native backend: its process callback (C when a compiler
built it, else Python), the map between its frames and ``time.perf_counter()``, the input
reader thread, and the watch on the server and the connections of its ports.

Frames and ``perf_counter`` time are mapped both ways by where the server really is: each cycle
records its first frame and when it ran, and the median start of the last ``ANCHOR_CYCLES``
cycles anchors the mapping (one cycle run late does not move it); JACK's own ``frame_time``
runs on a filtered clock that a dummy server falling behind on a loaded machine leaves tens
of milliseconds ahead of the cycles it really ran.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
import time
from array import array
from collections.abc import Sequence
from typing import Any

from liveduet.errors import PortError
from liveduet.live import jackcycle
from liveduet.live.jackcycle import NativeCycle, NativeOut
from liveduet.live.jackring import WRAP, CycleEvent, OutQueue, _signed, address, cycle_lib
from liveduet.live.jacktransport import load_jack
from liveduet.live.jackwatch import DRAIN_TIMEOUT_S, wait_cycle_starts
from liveduet.live.midisys import CLIENT, JACKD_CMD
from liveduet.live.ports import Sink

WAITS = 8192                       # callback start delays kept (frames since cycle start)
ANCHOR_CYCLES = 7                  # cycles whose median start maps wall time to frames
POLL_S = 0.0005                    # input ring drained this often (the C callback's)

log = logging.getLogger("liveduet.live.jackmidi")
_native_lib: Any = None            # the built C callback library, once loaded
_native_why: str | None = None     # why there is none (said once)


def native_lib() -> Any:
    """The C process callback's library, built on first use; None (logged once) without it."""
    global _native_lib, _native_why
    if _native_lib is None and _native_why is None:
        try:
            _native_lib = jackcycle.load()
        except OSError as err:
            _native_why = str(err)
            log.warning("JACK MIDI process callback in Python, not C (%s): it waits for the "
                        "GIL each cycle and may lose input under load. Fix: install a C "
                        "compiler (gcc)", err)
    return _native_lib


class JackHost:
    """The JACK client ``liveduet``: its ports, process callback, clock and watch."""

    def __init__(self, name: str = CLIENT) -> None:
        jack = load_jack()
        self.jack = jack
        try:
            self.client = jack.Client(name, no_start_server=True)
        except jack.JackError as err:
            raise PortError(f"no JACK server reachable ({err}). Fix: start one ({JACKD_CMD}); "
                            "the server named by JACK_DEFAULT_SERVER is used if set") from err
        self.rate = float(self.client.samplerate)
        self.inports: list[Any] = []   # the input ports (their addresses: _in_ptrs)
        self.outs: list[OutQueue] = []
        self.sink: Sink | None = None
        self.waits = array("l", bytes(8 * WAITS))   # frames since cycle start at entry
        self.cycles = 0
        self.lost = threading.Event()
        self.taken = False   # a JackPortSet has its ports on this client
        self.on_connect: Any = None
        self.anchor = (self.client.frame_time, time.perf_counter())  # until the first cycle
        self._offsets = array("d", bytes(8 * ANCHOR_CYCLES))
        self._pos = 0
        self._last_start = WRAP
        self.lib = cycle_lib()
        self._cptr = address(jack._ffi, self.client._ptr)
        self._event = CycleEvent()
        self._in_ptrs: list[int] = []
        self.native: NativeCycle | None = None
        self._reader: threading.Thread | None = None
        self._reading = threading.Event()
        lib = native_lib()
        if lib is not None:
            try:
                self.native = NativeCycle(lib, self._cptr)
            except OSError as err:
                log.warning("JACK MIDI process callback in Python, not C (%s)", err)
        if self.native is None:
            self.client.set_process_callback(self._process)
        self.client.set_shutdown_callback(lambda *_: self.lost.set())
        self.client.set_port_connect_callback(self._connected)
        self.client.activate()

    @property
    def period_s(self) -> float:
        """One JACK period in seconds."""
        return float(self.client.blocksize) / self.rate

    def _process(self, frames: int) -> None:
        lib, client = self.lib, self._cptr
        since = lib.jack_frames_since_cycle_start(client)
        now = time.perf_counter()
        self.waits[self.cycles % WAITS] = since
        self.cycles += 1
        start = lib.jack_last_frame_time(client)
        self._anchor(start, now - since / self.rate)
        sink = self.sink
        if sink is not None and self._in_ptrs:
            base, rate, event = self.anchor[1], self.rate, self._event
            get, ref, string_at = lib.jack_midi_event_get, ctypes.byref(event), ctypes.string_at
            for idx, ptr in enumerate(self._in_ptrs):
                buf = lib.jack_port_get_buffer(ptr, frames)
                for i in range(lib.jack_midi_get_event_count(buf)):
                    if get(ref, buf, i):
                        break
                    sink(base + event.time / rate, tuple(string_at(event.buffer, event.size)),
                         idx)
        for out in self.outs:
            out.process(start, frames)

    def add_input(self, port: Any) -> None:
        """Read this registered input port from the next cycle on."""
        ptr = address(self.jack._ffi, port._ptr)
        if self.native is not None:
            self.native.add_in(ptr)
        self.inports.append(port)
        self._in_ptrs.append(ptr)

    def out_queue(self, port: Any) -> OutQueue | NativeOut:
        """The hand-off to the process callback of this registered output port."""
        if self.native is not None:
            return NativeOut(self.native, port, address(self.jack._ffi, port._ptr))
        return OutQueue(self.jack, port, self.lib)

    def start_reading(self, poll: float = POLL_S) -> None:
        """Drain the C callback's input ring into the sink every ``poll`` seconds."""
        if self.native is None or self._reader is not None:
            return
        self._reading.set()
        self._reader = threading.Thread(target=self._read_loop, args=(poll,),
                                        name="liveduet-jack-in", daemon=True)
        self._reader.start()

    def _read_loop(self, poll: float) -> None:
        native, rate, sleep = self.native, self.rate, time.sleep
        assert native is not None
        while self._reading.is_set():
            events = native.take()
            if not events:
                sleep(poll)
                continue
            self._native_anchor()
            start, begun = self.anchor
            sink = self.sink
            if sink is None:
                continue
            for frame, idx, msg in events:
                sink(begun + _signed(frame - start) / rate, msg, idx)

    def _native_anchor(self) -> None:
        if self.native is not None:
            got = self.native.anchor(self.rate, ANCHOR_CYCLES)
            if got is not None:
                self.anchor = got

    @property
    def dropped(self) -> int:
        """Input events the C callback could not hand over (a full ring; 0 in Python)."""
        return self.native.dropped() if self.native is not None else 0

    def _anchor(self, start: int, begun: float) -> None:
        """Keep the wall time of frame 0 as the median of the last ``ANCHOR_CYCLES`` cycles':
        one cycle run late (a wake-up, a GIL wait) does not move the notes placed by it, a
        server that fell behind for good (a dummy server losing time) is followed at once."""
        offs, pos = self._offsets, self._pos
        offset = begun - start / self.rate
        if start < self._last_start:   # the first cycle, or the 32-bit frame counter wrapped
            offs[:] = array("d", [offset] * ANCHOR_CYCLES)
        self._last_start = start
        offs[pos] = offset
        self._pos = (pos + 1) % ANCHOR_CYCLES
        self.anchor = (start, sorted(offs)[ANCHOR_CYCLES // 2] + start / self.rate)

    def _connected(self, a: Any, b: Any, connect: bool) -> None:
        with contextlib.suppress(Exception):  # nothing may raise into libjack
            if self.on_connect is not None:
                self.on_connect(a.name, b.name, bool(connect))

    def frames_at(self, times: Sequence[float]) -> list[int]:
        """JACK frame times of ``perf_counter`` times (by the anchor, see the module text)."""
        self._native_anchor()
        start, begun = self.anchor
        rate = self.rate
        return [(start + round((t - begun) * rate)) & (WRAP - 1) for t in times]

    def recent_waits(self) -> list[int]:
        """Frames between cycle start and process callback entry, for the kept cycles."""
        if self.native is not None:
            return self.native.waits(min(self.native.cycles(1)[0], WAITS))
        n = min(self.cycles, WAITS)
        return list(self.waits[:n])

    def close(self) -> None:
        """Leave the server (a dead server's client is only dropped)."""
        global _shared
        if _shared is self:
            _shared = None
        self._reading.clear()
        if self._reader is not None:
            self._reader.join(1.0)
            self._reader = None
        with contextlib.suppress(Exception):
            if not self.lost.is_set():
                self.client.deactivate()
            self.client.close()


_shared: JackHost | None = None


def shared_host() -> JackHost:
    """This process's JACK client ``liveduet`` (opened on first use): the MIDI ports and the
    JACK transport clock share it, so liveduet is one client in the JACK graph."""
    global _shared
    if _shared is None:
        _shared = JackHost()
    return _shared


class HostWatch:
    """:class:`~liveduet.live.jackwatch.JackWatch`'s interface on the host's own client."""

    events = True

    def __init__(self, host: JackHost) -> None:
        self.host = host

    @property
    def lost(self) -> bool:
        """True once the JACK server has shut down or thrown the client out."""
        return self.host.lost.is_set()

    def connections(self, port: str) -> list[str] | None:
        """Ports wired to ``port``; None if it or the server is gone."""
        if self.lost:
            return None
        try:
            return [p.name for p in self.host.client.get_all_connections(port)]
        except Exception:  # the port vanished
            return None

    def wait_cycles(self, n: int = 3, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until the server has begun ``n`` more cycles (False: it ran none that long,
        or is gone); see :meth:`~liveduet.live.jackwatch.JackWatch.wait_cycles`."""
        if self.lost:
            return False
        client = self.host.client
        return wait_cycle_starts(lambda: int(client.last_frame_time), n, timeout)

    def close(self) -> None:
        """Nothing of its own to close: the host closes the client."""
