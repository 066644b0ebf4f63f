"""JACK-native MIDI: one JACK client ``liveduet`` with frame-stamped input and frame-placed output.

python-rtmidi on JACK stamps input when its callback runs and sends output at the start of the
next period (up to a period off: 5.3 ms at 256 frames), and opens one JACK client per port.
:class:`JackPortSet` instead registers every port of liveduet on one client (JACK-Client, the
``jack`` extra) and does its MIDI in that client's process callback:

- input: each event is stamped with its frame (the cycle's ``last_frame_time`` plus the event's
  offset) converted to ``time.perf_counter()`` seconds and handed to the sink like the rtmidi
  backend's callback does;
- output: :meth:`JackPortSet.send_at` turns each due ``perf_counter`` time into a frame and
  hands (frame, bytes) to the process callback through a preallocated lock-free
  ``jack.RingBuffer``; the callback writes each message at its frame's offset in the cycle it
  falls in (one due in the past goes at offset 0 and counts as late). The runtime hands grid
  messages over :attr:`JackPortSet.lead` seconds ahead (``schedules``), so they are in the
  ring before their cycle starts. Messages sent "now" go at offset 0 of the next cycle.

Frames and ``perf_counter`` time are mapped both ways by where the server really is: each cycle
reads the frames since its start and ``perf_counter`` (so the two clocks need no calibrated
offset), and the median start of the last ``ANCHOR_CYCLES`` cycles anchors the mapping (one
cycle run late, a wake-up or a GIL wait, does not move it). JACK's own ``frame_time`` runs on a
filtered clock that a dummy server falling behind on a loaded machine left tens of
milliseconds ahead of the cycles it really ran.

The process callback is C (:mod:`liveduet.live.jackcycle`, built on first use): it never waits
for the GIL, so a busy interpreter cannot hold it past its cycle and lose input. Input events go
into a ring that a thread of ours drains every ``POLL_S`` (0.5 ms; stamped by their frames, so
the poll adds delay, not jitter); output records go into a ring per port. Without a C compiler the
callback is Python (cffi, ``jackring``), which takes the GIL each cycle; one log line says so.
Either keeps how late it started in each cycle (frames since the cycle start) for the benchmark.
The same client watches the server (shutdown) and the connections of its ports, in place of
:class:`~liveduet.live.jackwatch.JackWatch`'s extra client.
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
from dataclasses import dataclass
from typing import Any

from liveduet.errors import PortError
from liveduet.live import jackcycle
from liveduet.live.jackcycle import NativeCycle, NativeOut
from liveduet.live.jackring import WRAP, CycleEvent, OutQueue, _signed, address, cycle_lib
from liveduet.live.jacktransport import load_jack
from liveduet.live.midisys import APIS, CLIENT, JACK_LOST, JACKD_CMD, VIRTUAL_IN, VIRTUAL_OUT
from liveduet.live.ports import PortSet, Sink
from liveduet.live.rtopen import FLUSH_S, OpenPort

MISSING = ("JACK-Client is not installed, so MIDI goes through python-rtmidi (output at period "
           "boundaries, two JACK clients). Fix: pip install 'liveduet[jack]'")
WAITS = 8192                       # callback start delays kept (frames since cycle start)
ANCHOR_CYCLES = 7                  # cycles whose median start maps wall time to frames
LEAD_MARGIN = 0.002                # handed over this long before the due cycle starts
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

    def close(self) -> None:
        """Nothing of its own to close: the host closes the client."""


@dataclass
class JackPortSet(PortSet):
    """:class:`~liveduet.live.ports.PortSet` over the one JACK client (see the module text)."""

    host: JackHost | None = None
    clock_port: OutQueue | NativeOut | None = None
    _queue: OutQueue | NativeOut | None = None

    schedules = True   # grid messages may be handed over ahead with their due time

    @property
    def lead(self) -> float:
        """How long before its due time a message must be handed over to be placed exactly:
        one period (its cycle starts up to a period before it) and a margin."""
        return (self.host.period_s if self.host else 0.0) + LEAD_MARGIN

    @property
    def late(self) -> int:
        """Scheduled messages that came after their frame (sent at the cycle's start)."""
        return sum(q.late for q in self._queues())

    def stats(self) -> dict[str, Any]:
        """For --stats: the period, how late the process callback started in each kept cycle
        (frames since the cycle start: wake-up plus the wait for the GIL), late and refused
        messages."""
        host = self.host
        return {"backend": "jack", "period_frames": host.client.blocksize if host else 0,
                "rate": host.rate if host else 0.0,
                "callback_start_frames": host.recent_waits() if host else [],
                "late": self.late, "overflow": sum(q.overflow for q in self._queues()),
                "callback": "c" if host and host.native else "python",
                "input_dropped": host.dropped if host else 0}

    def _queues(self) -> list[OutQueue | NativeOut]:
        return [q for q in (self._queue, self.clock_port) if q is not None]

    def send_many(self, msgs: Sequence[Sequence[int]], stamps: list[float]) -> None:
        """Send now (the next cycle's start), appending ``perf_counter`` to ``stamps``."""
        with self._send_lock:
            stamps += [time.perf_counter()] * len(msgs)
            if self._queue is None:
                return
            self._queue.put([None] * len(msgs), msgs)
            for msg in msgs:
                self.track.sent(msg)

    def send_at(self, msgs: Sequence[Sequence[int]], at: Sequence[float]) -> None:
        """Hand messages over to leave at the frames of their ``perf_counter`` times ``at``."""
        host = self.host
        with self._send_lock:
            if host is None or self._queue is None:
                return
            self._queue.put(host.frames_at(at), msgs)
            for msg in msgs:
                self.track.sent(msg)

    def send_clock_at(self, msgs: Sequence[Sequence[int]], at: Sequence[float]) -> None:
        """MIDI clock ticks to leave at the frames of their ``perf_counter`` times ``at``."""
        host, queue = self.host, self.clock_port or self._queue
        if host is not None and queue is not None:
            queue.put(host.frames_at(at), msgs)

    def send_clock(self, msgs: Sequence[Sequence[int]]) -> None:
        """MIDI clock out bytes now: on the ``liveduet clock`` port if open, else the output."""
        if self.clock_port is None:
            self.send_many(msgs, [])
        else:
            self.clock_port.put([None] * len(msgs), msgs)

    def _repair(self) -> int:
        with self._send_lock:
            offs = self.track.repair()
            if offs and self._queue is not None:
                self._queue.put([None] * len(offs), offs)
        return len(offs)

    def close(self) -> None:
        """Let the last messages leave, then leave the server; safe to call twice."""
        host, self.host = self.host, None
        if host is None:
            return
        host.sink = None
        if self._queue is not None:
            time.sleep(max(FLUSH_S, 2 * host.period_s + self.lead))
        host.close()
        self.inputs, self.output, self.watch = [], None, None

    def _check_named(self) -> list[str]:
        host = self.host
        if host is None:
            return []
        client = host.client
        try:
            sources = [p.name for p in client.get_ports(is_midi=True, is_output=True)]
            dests = [p.name for p in client.get_ports(is_midi=True, is_input=True)]
        except Exception as err:  # the server went away between two checks
            return [f"MIDI system unreachable: {err}"]
        reports = []
        for idx, port in enumerate(self.inputs):
            if port.wanted:
                reports += self._recheck(port, sources, "input", idx)
        if self.output is not None and self.output.wanted:
            reports += self._recheck(self.output, dests, "output", -1)
        return reports

    def _reopen(self, port: OpenPort, names: list[str], kind: str, idx: int) -> None:
        """Wire a named port that came back to ours (our ports stay open all along)."""
        own = port.handle.name
        with contextlib.suppress(Exception):  # connected already (JACK kept it)
            if port is self.output:
                self.host.client.connect(own, port.name)  # type: ignore[union-attr]
            else:
                self.host.client.connect(port.name, own)  # type: ignore[union-attr]


def _match(host: JackHost, wanted: str, kind: str, exclude: Sequence[str]) -> str:
    from liveduet.live.midisys import match_port
    client = host.client
    mine = client.name + ":"
    ports = client.get_ports(is_midi=True, is_output=kind == "input",
                             is_input=kind == "output")
    names = [p.name for p in ports if not p.name.startswith(mine)]
    return names[match_port(names, wanted, kind, exclude)]


def open_jack_ports(inputs: Sequence[str] = (), output: str | None = None,
                    sink: Sink | None = None, clock_out: str | None = None) -> JackPortSet:
    """Open liveduet's ports on one JACK client: named inputs (each on a port of ours wired
    from it) or one ``liveduet in``; a named or virtual output; with ``clock_out`` (a port
    name) a ``liveduet clock`` port wired to it."""
    host = shared_host()
    if host.taken:   # a second set of ports in this process (tests): a client of its own
        host = JackHost()
    host.taken = True
    ports = JackPortSet(APIS["jack"], sink=sink, host=host)
    try:
        client = host.client
        out_port = client.midi_outports.register(VIRTUAL_OUT)
        ports._queue = host.out_queue(out_port)
        if output is None:
            ports.output = OpenPort(out_port, None, out_port.name)
        else:
            target = _match(host, output, "output", [])
            client.connect(out_port, target)
            ports.output = OpenPort(out_port, output, target)
        for idx, wanted in enumerate(inputs or [None]):
            name = VIRTUAL_IN if idx == 0 else f"{VIRTUAL_IN} {idx + 1}"
            in_port = client.midi_inports.register(name)
            host.add_input(in_port)
            if wanted is None:
                ports.inputs.append(OpenPort(in_port, None, in_port.name))
            else:
                source = _match(host, wanted, "input", [])
                client.connect(source, in_port)
                ports.inputs.append(OpenPort(in_port, wanted, source))
        if clock_out:
            clock_port = client.midi_outports.register("liveduet clock")
            client.connect(clock_port, _match(host, clock_out, "output", []))
            ports.clock_port = host.out_queue(clock_port)
        host.outs = ports._queues()
        ports.watch = HostWatch(host)  # type: ignore[assignment]
        host.on_connect = ports._on_connect
        host.sink = sink
        host.start_reading(ports.poll or POLL_S)
    except BaseException:
        ports.close()
        raise
    if host.lost.is_set():
        ports.close()
        raise PortError(JACK_LOST)
    ports.check()
    return ports
