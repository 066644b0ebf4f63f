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

Frames and ``perf_counter`` time are mapped in :mod:`liveduet.live.jackhost`.

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
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from liveduet.errors import PortError
from liveduet.live.jackcycle import NativeOut
from liveduet.live.jackhost import POLL_S, HostWatch, JackHost, shared_host
from liveduet.live.jackring import OutQueue
from liveduet.live.midisys import APIS, JACK_LOST, VIRTUAL_IN, VIRTUAL_OUT
from liveduet.live.ports import PortSet, Sink
from liveduet.live.rtopen import OpenPort, let_sends_leave

MISSING = ("JACK-Client is not installed, so MIDI goes through python-rtmidi (output at period "
           "boundaries, two JACK clients). Fix: pip install 'liveduet[jack]'")
LEAD_MARGIN = 0.002                # handed over this long before the due cycle starts


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
            # the last messages are placed up to ``lead`` ahead: their cycles come later
            let_sends_leave(self.watch, 3 + math.ceil(self.lead / host.period_s))
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
