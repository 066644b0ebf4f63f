"""MIDI ports over python-rtmidi: virtual or named ports, watching them, clear errors.

By default liveduet opens two virtual ports, ``liveduet in`` and ``liveduet out`` (client name
``liveduet``); ``--in``/``--out`` pick existing ports by exact name or unique substring instead.
Input callbacks only stamp (``time.perf_counter``) and hand the raw bytes to a sink (the
runtime's queue). :meth:`PortSet.check` finds ports that vanished and reopens them when they
come back, and on JACK watches the server and the connections of liveduet's own ports
(:mod:`liveduet.live.jackwatch`): every connection change of the output is acted on as it happens
(JACK's port-connect callback), so a receiver unplugged and plugged back faster than any poll
still gets the note-offs it missed. "Own" means this process's: JACK gives a second instance's
clients numbered names (``liveduet-02:...``), so they are found as the ports that appeared when
this process opened them.
API choice and listing live in :mod:`liveduet.live.midisys` (re-exported
here). Every rtmidi error is converted once into a :class:`~liveduet.errors.PortError` whose
message says what is missing and what to do.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import rtmidi

from liveduet.core.ledger import Ledger
from liveduet.errors import PortError
from liveduet.live.jackwatch import JackWatch
from liveduet.live.midisys import (
    API_NAMES,
    APIS,
    CLIENT,
    JACK_LOST,
    JACKD_CMD,
    LOOPMIDI,
    PROBE_TIMEOUT,
    VIRTUAL_IN,
    VIRTUAL_OUT,
    PortList,
    auto_order,
    choose_api,
    describe,
    jack_native,
    list_ports,
    match_port,
    no_midi_help,
    probe,
    quiet_stderr,
)
from liveduet.live.rtopen import (
    OpenPort,
    all_names,
    let_sends_leave,
    open_input_port,
    open_output,
    open_output_port,
)

__all__ = [
    "APIS", "API_NAMES", "CLIENT", "JACKD_CMD", "JACK_LOST", "LOOPMIDI", "PROBE_TIMEOUT",
    "VIRTUAL_IN", "VIRTUAL_OUT", "PortList", "PortSet", "Sink", "SystemLost", "auto_order",
    "choose_api", "describe", "list_ports", "match_port", "no_midi_help", "open_output",
    "open_ports", "probe", "quiet_stderr",
]
BACKENDS = ("auto", "jack", "rtmidi")

Sink = Callable[[float, tuple[int, ...], int], None]
"""Receives (perf_counter time, raw MIDI bytes, input index) from an input callback."""


# -- open ports -----------------------------------------------------------------------------
class SystemLost(PortError):
    """The MIDI system itself went away (the JACK server stopped)."""


@dataclass
class PortSet:
    """The inputs and the output liveduet plays through; close() is safe to call twice."""

    api: int
    inputs: list[OpenPort] = field(default_factory=list)
    output: OpenPort | None = None
    sink: Sink | None = None
    watch: JackWatch | None = None
    track: Ledger = field(default_factory=Ledger)  # notes sent, for a receiver's repair
    poll: float | None = None     # seconds between input polls; None: rtmidi callbacks
    _send_lock: threading.Lock = field(default_factory=threading.Lock)
    _poller: threading.Thread | None = None
    _polling: threading.Event = field(default_factory=threading.Event)
    # (our port, other port, connected, note-offs sent) from JACK's notification thread
    _events: deque[tuple[str, str, bool, int]] = field(
        default_factory=lambda: deque(maxlen=1000))
    schedules: ClassVar[bool] = False   # True: send_at places messages at their due time
    lead: ClassVar[float] = 0.0         # seconds ahead such a port needs them

    @property
    def input_names(self) -> list[str]:
        """Names of the opened inputs."""
        return [p.name for p in self.inputs]

    @property
    def output_name(self) -> str:
        """Name of the opened output."""
        return self.output.name if self.output else ""

    def send(self, msg: Sequence[int]) -> None:
        """Send raw MIDI bytes now (thread safe)."""
        self.send_many((msg,), [])

    def send_many(self, msgs: Sequence[Sequence[int]], stamps: list[float]) -> None:
        """Send messages back to back, appending ``time.perf_counter()`` to ``stamps`` just before
        each (the :data:`liveduet.core.sender.SendMany` contract; raises on the first failure). The
        ledger hears of the messages that left after the last one, not between them."""
        perf = time.perf_counter
        with self._send_lock:
            out = self.output
            if out is None:
                stamps += [perf()] * len(msgs)
                return
            send, done = out.handle.send_message, 0
            try:
                for msg in msgs:
                    stamps.append(perf())
                    send(msg)
                    done += 1
            finally:
                for msg in msgs[:done]:
                    self.track.sent(msg)

    def send_at(self, msgs: Sequence[Sequence[int]], at: Sequence[float]) -> None:
        """Send now: rtmidi cannot place messages at a time (``schedules`` is False)."""
        self.send_many(msgs, [])

    def send_clock(self, msgs: Sequence[Sequence[int]]) -> None:
        """Send MIDI clock out bytes now, on the output (or the clock port of ``clock_out``)."""
        self.send_many(msgs, [])

    def close(self) -> None:
        """Close every port (after the last sends had time to leave); ports stay closed."""
        self._polling.clear()
        if self._poller is not None:
            self._poller.join(1.0)
            self._poller = None
        if self.output is not None:
            let_sends_leave(self.watch, 3)   # rtmidi drains its ring in the next cycle
        for port in [*self.inputs, *([self.output] if self.output else [])]:
            with contextlib.suppress(Exception):  # closing a dead client must not mask exit
                if isinstance(port.handle, rtmidi.MidiIn):
                    port.handle.cancel_callback()
                # delete() closes the port itself; close_port() before it crashes the
                # process when the JACK peer has gone (see release() in the JACK test kit)
                port.handle.delete()
        self.inputs, self.output = [], None
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def check(self, named: bool = True) -> list[str]:
        """Reports on the ports; raises SystemLost when the JACK server has gone.

        Connections of our virtual ports are compared with the last call (a restored output
        connection gets note-offs for what it may have missed; cheap, call it often). With
        ``named``, named ports that vanished or came back (reopened) are looked for too (this
        lists every port: call it about once a second).
        """
        reports = self._check_links()
        if named and any(p is not None and p.wanted for p in [*self.inputs, self.output]):
            reports += self._check_named()
        return reports

    def _on_connect(self, src: str, dst: str, connected: bool) -> None:
        """A connection change (JACK's notification thread): an unplugged receiver's sounding
        notes become orphans at once, a plugged one gets their note-offs at once."""
        for port in [*self.inputs, *([self.output] if self.output else [])]:
            if port.wanted is not None or port.name not in (src, dst):
                continue
            sent = 0
            if port is self.output:
                if connected:
                    # JACK runs the graph with the new connection from its next cycle on:
                    # note-offs written before then would go where the receiver is not
                    if self.watch is not None:
                        self.watch.wait_cycles(1)
                    sent = self._repair()
                else:
                    with self._send_lock:
                        self.track.receiver_lost()
            self._events.append((port.name, dst if port.name == src else src, connected, sent))

    def _event_reports(self, watch: JackWatch) -> list[str]:
        """What the connection events since the last call say (main thread): one line per
        change, or one line per pair of ports that changed more than twice (a flapping cable)."""
        changes: dict[tuple[str, str], list[bool]] = {}
        sent = 0
        while self._events:
            name, other, connected, n = self._events.popleft()
            changes.setdefault((name, other), []).append(connected)
            sent += n
        reports = []
        for (name, other), states in changes.items():
            if len(states) <= 2:
                reports += [f"{name!r} {'connected to' if c else 'disconnected from'} {other!r}"
                            for c in states]
            else:
                reports.append(f"{name!r} connection to {other!r} changed {len(states)} times; "
                               f"now {'connected' if states[-1] else 'disconnected'}")
        if sent:
            reports.append(f"sent {sent} note-off(s) for notes a receiver missed while unplugged")
        out = self.output
        if out is not None and out.wanted is None:
            if any(not c for (name, _), states in changes.items() if name == out.name
                   for c in states) and not watch.connections(out.name):
                reports.append(f"{out.name!r} has no connection; liveduet plays on and closes "
                               "the notes a receiver missed when one is connected again")
            with self._send_lock:
                self.track.checkpoint()
        return reports

    def _check_links(self) -> list[str]:
        watch = self.watch
        if watch is None:
            return []
        if watch.lost:
            raise SystemLost(JACK_LOST)
        if watch.events:
            return self._event_reports(watch)
        reports = []
        for port in [*self.inputs, *([self.output] if self.output else [])]:
            if port.wanted is None:
                reports += self._links_of(watch, port)
        return reports

    def _links_of(self, watch: JackWatch, port: OpenPort) -> list[str]:
        now = watch.connections(port.name)
        if now is None:
            return []
        before, port.links = port.links or [], now
        gone = [n for n in before if n not in now]
        gained = [n for n in now if n not in before]
        reports = [f"{port.name!r} disconnected from {n!r}" for n in gone]
        reports += [f"{port.name!r} connected to {n!r}" for n in gained]
        if port is not self.output:
            return reports
        if gone and not now:
            reports.append(f"{port.name!r} has no connection; liveduet plays on and closes "
                           "the notes a receiver missed when one is connected again")
        with self._send_lock:
            if gone:
                self.track.receiver_lost()
            self.track.checkpoint()
        if gained and (n := self._repair()):
            reports.append(f"sent {n} note-off(s) for notes a receiver missed while unplugged")
        return reports

    def _repair(self) -> int:
        """Send note-offs for every note a (re)connected receiver may still hold."""
        out = self.output
        if out is None:
            return 0
        with self._send_lock:
            offs = self.track.repair()
            for msg in offs:
                with contextlib.suppress(Exception):  # the port may be gone again
                    out.handle.send_message(list(msg))
        return len(offs)

    def _check_named(self) -> list[str]:
        try:
            now = list_ports(self.api)
        except PortError as err:
            return [f"MIDI system unreachable: {err}"]
        reports = []
        for idx, port in enumerate(self.inputs):
            if port.wanted:
                reports += self._recheck(port, now.inputs, "input", idx)
        if self.output is not None and self.output.wanted:
            reports += self._recheck(self.output, now.outputs, "output", -1)
        return reports

    def _seen(self, port: OpenPort, names: list[str], kind: str) -> list[str] | None:
        """What a named port's presence in ``names`` says: it vanished (a report), it is as it
        was (no report), or None: it came back and must be reopened."""
        present = port.name in names
        is_out = port is self.output
        if port.alive and not present:
            port.alive = False
            if is_out:
                with self._send_lock:
                    self.track.receiver_lost()
            return [f"{kind} port {port.name!r} vanished; waiting for it to come back"]
        if port.alive or not present:
            if is_out and port.alive:
                with self._send_lock:
                    self.track.checkpoint()
            return []
        return None

    def _recheck(self, port: OpenPort, names: list[str], kind: str, idx: int) -> list[str]:
        seen = self._seen(port, names, kind)
        if seen is not None:
            return seen
        self._reopen(port, names, kind, idx)
        port.alive = True
        reports = [f"{kind} port {port.name!r} is back; reopened"]
        if port is self.output and (n := self._repair()):
            reports.append(f"sent {n} note-off(s) for notes the receiver missed")
        return reports

    def _reopen(self, port: OpenPort, names: list[str], kind: str, idx: int) -> None:
        """Open a named port that came back (python-rtmidi: close and open the handle)."""
        with self._send_lock:
            if isinstance(port.handle, rtmidi.MidiIn):
                port.handle.cancel_callback()   # no callback may fire into a closing port
            with contextlib.suppress(Exception):  # the old connection may be gone already
                port.handle.close_port()
            port.handle.open_port(names.index(port.name), name=_local_name(kind))
        if isinstance(port.handle, rtmidi.MidiIn):
            self._listen(port.handle, idx)

    def _listen(self, handle: rtmidi.MidiIn, idx: int) -> None:
        handle.ignore_types(sysex=True, timing=False, active_sense=True)
        if self.poll is not None:
            self._start_poller()  # rtmidi queues; the MIDI thread never waits for the GIL
            return
        sink = self.sink
        perf = time.perf_counter

        def callback(event: tuple[list[int], float], _data: object = None) -> None:
            if sink is not None:
                sink(perf(), tuple(event[0]), idx)

        handle.set_callback(callback)

    def _start_poller(self) -> None:
        if self._poller is not None:
            return
        self._polling.set()
        self._poller = threading.Thread(target=self._poll_loop, name="liveduet-midi-poll",
                                        daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        """Drain every input's rtmidi queue, stamping at arrival; sleep ``poll`` when idle."""
        perf, sink, pause = time.perf_counter, self.sink, float(self.poll or 0.0005)
        while self._polling.is_set():
            idle = True
            for idx, port in enumerate(list(self.inputs)):
                with contextlib.suppress(Exception):  # a port being reopened
                    while (event := port.handle.get_message()) is not None:
                        idle = False
                        if sink is not None:
                            sink(perf(), tuple(event[0]), idx)
            if idle:
                time.sleep(pause)


def _local_name(kind: str) -> str:
    return VIRTUAL_IN if kind == "input" else VIRTUAL_OUT


def open_ports(api: int, inputs: Sequence[str] = (), output: str | None = None,
               sink: Sink | None = None, poll: float | None = None,
               backend: str = "auto", clock_out: str | None = None) -> PortSet:
    """Open named inputs (or one virtual input) and a named (or virtual) output.

    On JACK the ``backend`` ``auto`` or ``jack`` is :mod:`liveduet.live.jackmidi` (one client,
    frame-accurate; with ``clock_out``, a port name, also the MIDI clock out port); ``auto``
    falls back to python-rtmidi with a one-line notice when JACK-Client is not installed.
    With ``poll`` (seconds), rtmidi input is read by a thread polling rtmidi's queue instead of
    a callback on the MIDI system's thread (see docs/reliability.md, load).
    """
    if backend not in BACKENDS:
        raise PortError(f"MIDI backend {backend!r} is unknown; choose {', '.join(BACKENDS)}")
    if api == APIS["jack"] and backend != "rtmidi" and (native := jack_native(backend)):
        return native.open_jack_ports(inputs, output, sink, clock_out)
    if api == APIS["winmm"] and (not inputs or output is None):
        inputs = inputs or [VIRTUAL_IN]
        output = output or VIRTUAL_OUT  # loopMIDI ports named like ours
    ports = PortSet(api, sink=sink, poll=poll)
    before = all_names(api) if (not inputs or output is None) else set()
    try:
        ports.output = open_output_port(api, output, [VIRTUAL_IN] if not inputs else [], before)
        exclude = [VIRTUAL_OUT] if output is None else []
        for idx, wanted in enumerate(inputs or [None]):
            handle, name = open_input_port(api, wanted, exclude, ports, idx, before)
            ports.inputs.append(OpenPort(handle, wanted, name))
    except BaseException:
        ports.close()
        raise
    if api == APIS["jack"]:
        ports.watch = JackWatch.open(on_connect=ports._on_connect)
        ports.check()  # first look at the connections
    return ports
