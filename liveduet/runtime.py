"""The live runtime: one conductor thread owns the engine and sends its output on time.

MIDI input callbacks and the OSC server only enqueue (with the ``time.perf_counter`` stamp taken
in the callback). The conductor drains that queue, asks the clock for grid positions, calls the
engine (feed / advance / apply / swap_model), and sends each ``Out`` at the wall time of its
position: it sleeps on the queue until shortly before the next due event, then spins for the
last ``spin`` seconds. Answers to an input leave at once. A ledger of sounding notes makes sure
every note-on gets its note-off: on Stop, panic, mode change, model swap, errors and exit.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from liveduet import rtthread
from liveduet.clock import TRANSPORT, InternalClock, MidiClockFollower
from liveduet.settings import Action, Command, Set

log = logging.getLogger("liveduet.runtime")
RELEASING_SETS = frozenset(("mode", "channel"))
RELEASING_ACTIONS = frozenset(("panic", "reset", "stop", "play"))
STATUS_PERIOD = 0.2
IDLE_WAKE = 0.5
MAX_SAMPLES = 200_000


class EngineLike(Protocol):
    """The engine interface the runtime drives (see liveduet/engine.py)."""

    @property
    def settings(self) -> Any: ...
    def feed(self, pos: float, msg: Sequence[int]) -> list[Any]: ...
    def advance(self, pos: float) -> list[Any]: ...
    def next_due(self) -> float | None: ...
    def apply(self, cmd: Command, pos: float) -> list[Any]: ...
    def swap_model(self, model: Any, pos: float) -> list[Any]: ...
    def release_all(self, pos: float) -> list[Any]: ...
    def status(self) -> dict[str, Any]: ...


class Publisher(Protocol):
    """Where state changes go (OscControl)."""

    def publish(self, values: dict[str, Any]) -> None: ...


@dataclass
class Options:
    """Runtime knobs that are not musical settings."""

    latency_offset: float = 0.0        # seconds added to grid-scheduled sends
    metronome: int | None = None       # MIDI channel 1-16 for click notes, None = off
    spin: float = 0.0005               # busy-wait before each due send
    yield_spin: bool = True            # release the GIL on every turn of that busy-wait
    switch_interval: float | None = 0.0002  # GIL switch interval while running (None: keep)
    realtime: bool = True              # ask for SCHED_FIFO for the conductor (best effort)
    early: float = 0.002               # ask the engine this much ahead; the heap sends on time
    steps_per_beat: int = 4
    beats_per_bar: int = 4


@dataclass
class Ledger:
    """Notes liveduet has sent note-on for and not yet note-off, per (channel, pitch)."""

    sounding: set[tuple[int, int]] = field(default_factory=set)

    def note(self, msg: Sequence[int]) -> None:
        """Track one outgoing message."""
        if len(msg) < 3:
            return
        kind, key = msg[0] & 0xF0, (msg[0] & 0x0F, msg[1])
        if kind == 0x90 and msg[2] > 0:
            self.sounding.add(key)
        elif kind in (0x80, 0x90):
            self.sounding.discard(key)

    def offs(self) -> list[tuple[int, int, int]]:
        """Note-offs for everything sounding (and forget it)."""
        out = [(0x80 | ch, pitch, 0) for ch, pitch in sorted(self.sounding)]
        self.sounding.clear()
        return out


class Runtime:
    """Owns the conductor thread; everything else talks to it through :meth:`submit`."""

    def __init__(self, engine: EngineLike, clock: InternalClock | MidiClockFollower,
                 send: Callable[[Sequence[int]], None], options: Options | None = None, *,
                 publisher: Publisher | None = None, ccmap: Any = None,
                 loader: Callable[[str], Any] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self._send_raw = send
        self.opt = options or Options()
        self.publisher = publisher
        self.ccmap = ccmap
        self.loader = loader
        self.queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.ledger = Ledger()
        self._heap: list[tuple[float, int, tuple[int, ...], bool]] = []
        self._seq = 0
        self._click: float | None = None
        self._swap: tuple[Any, str, float] | None = None
        self._hold_until = -math.inf
        self._published: dict[str, Any] = {}
        self._next_status = 0.0
        self._beat = -1
        self.errors: dict[str, int] = {}
        self.wake_errors: list[float] = []
        self.reactions: list[float] = []
        self.delays: list[float] = []
        self._restore: Callable[[], None] | None = None
        self.step_times: deque[float] = deque(maxlen=2000)
        self.counters = {"in": 0, "out": 0, "commands": 0, "late": 0}
        self.snapshot: dict[str, Any] = {}
        self.message = ""
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.failed: BaseException | None = None

    # -- thread-safe entry points ---------------------------------------------------------
    def on_midi(self, t: float, msg: tuple[int, ...], idx: int = 0) -> None:
        """MIDI input callback: only enqueue."""
        self.queue.put(("m", t, msg))

    def submit(self, cmd: Command) -> None:
        """Control callback (OSC, tests): only enqueue."""
        self.queue.put(("c", cmd))

    def start(self) -> None:
        """Start the conductor thread (the internal clock starts playing now)."""
        if isinstance(self.clock, InternalClock) and not self.clock.running:
            now = time.perf_counter()
            self.clock.start(now)
            self._apply(Action("play"), now)
        self._update_status(time.perf_counter(), force=True)
        self._restore = rtthread.tune_process(self.opt.switch_interval)
        self._thread = threading.Thread(target=self._run, name="liveduet-conductor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the conductor: every sounding note off. Safe to call twice."""
        if self._thread is not None:
            self.queue.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("conductor did not stop within %.0f s; sending note-offs anyway",
                          timeout)
                self._flush_all()
            self._thread = None
        if self._restore is not None:
            self._restore()
            self._restore = None

    # -- conductor ------------------------------------------------------------------------
    def _run(self) -> None:
        rtthread.tune_thread(self.opt.realtime)
        try:
            self._loop()
        except BaseException as err:  # a bug in the runtime itself: end cleanly, report
            self.failed = err
            log.exception("conductor stopped by an internal error")
        finally:
            self._shutdown()
            self.done.set()

    def _loop(self) -> None:
        get, perf = self.queue.get, time.perf_counter
        while True:
            wait = self._until_due(perf()) - self.opt.spin
            try:
                item = get(timeout=min(wait, IDLE_WAKE)) if wait > 0 else self.queue.get_nowait()
            except queue.Empty:
                item = ()
            while item != ():
                if item is None:
                    return
                self._guard("input", self._handle, item)
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = ()
            self._spin(perf)
            self._guard("tick", self._tick, perf())

    def _spin(self, perf: Callable[[], float]) -> None:
        due = self._until_due(perf())
        if due > self.opt.spin:
            return
        end = perf() + due
        empty = self.queue.empty
        if self.opt.yield_spin:
            pause = time.sleep
            while perf() < end and empty():
                pause(0)  # lets a MIDI callback waiting for the GIL in at once
        else:
            while perf() < end and empty():
                pass

    def _until_due(self, now: float) -> float:
        """Seconds from ``now`` to the next thing the conductor must do."""
        due = self._next_status
        t = self._heap_time()
        if t is not None:
            due = min(due, t)
        if self.clock.running:
            nd = self.engine.next_due()
            if nd is not None and nd >= self._hold_until:
                t = self.clock.time_of(nd)
                if t is not None:
                    due = min(due, t + self.opt.latency_offset - self.opt.early)
            if self._swap is not None:
                t = self.clock.time_of(self._swap[2])
                due = min(due, t if t is not None else now)
        return due - now

    def _heap_time(self) -> float | None:
        if not self._heap:
            return None
        t = self.clock.time_of(self._heap[0][0])
        return None if t is None else t + self.opt.latency_offset

    def _guard(self, where: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn``; an error is logged (first of each kind), counted, and play goes on."""
        try:
            fn(*args)
        except Exception as err:  # the live loop never dies of one bad event
            key = f"{where}:{type(err).__name__}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if self.errors[key] == 1:
                log.exception("error in %s (playing on; further ones are counted)", where)
            self.message = f"{where} error: {err}"
            if where == "tick":
                self._hold_until = self.clock.position(time.perf_counter()) + 1.0

    # -- events ---------------------------------------------------------------------------
    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "m":
            self._midi(item[1], item[2])
        elif kind == "c":
            self._command(item[1], time.perf_counter())
        elif kind == "loaded":
            self._loaded(item[1], item[2], item[3])

    def _midi(self, t: float, msg: tuple[int, ...]) -> None:
        self.counters["in"] += 1
        if len(self.delays) < MAX_SAMPLES:
            self.delays.append(time.perf_counter() - t)
        status = msg[0] if msg else 0
        if status in TRANSPORT:
            if isinstance(self.clock, MidiClockFollower):
                self._transport(self.clock.on_message(msg, t), t)
            return
        if status >= 0xF0:
            return
        if (status & 0xF0) == 0xB0 and self.ccmap is not None and len(msg) >= 3:
            ch = (status & 0x0F) + 1
            if self.ccmap.handles(ch, msg[1]):
                cmd = self.ccmap.cc_command(ch, msg[1], msg[2])
                if cmd is not None:
                    self._command(cmd, t)
                return
        self._flush_early()
        now = time.perf_counter()
        pos = self.clock.position(t)
        outs = self.engine.feed(pos, msg)
        self.step_times.append(time.perf_counter() - now)
        sent = self.counters["out"]
        self._emit(outs, self.clock.position(time.perf_counter()))
        if self.counters["out"] > sent and len(self.reactions) < MAX_SAMPLES:
            self.reactions.append(time.perf_counter() - t)

    def _transport(self, event: str | None, t: float) -> None:
        if event is None:
            return
        now = time.perf_counter()
        if event == "stop":
            self._stop_now(self.clock.position(now))
        else:  # play / locate: the DAW (re)anchors the grid at the clock's position
            self._drop_pending()
            pos = self.clock.position(t)
            self._send_now(self.engine.apply(Action("play"), pos))
        self._update_status(now, force=True)

    def _stop_now(self, pos: float) -> None:
        outs = list(self.engine.apply(Action("stop"), pos)) + list(self.engine.release_all(pos))
        self._send_now(outs)
        self._drop_pending()
        self._flush_all()

    def _command(self, cmd: Command, t: float) -> None:
        self.counters["commands"] += 1
        if isinstance(cmd, Action) and cmd.name == "state":
            self._publish_state(full=True)
            return
        if isinstance(cmd, Action) and cmd.name == "learn":
            if self.ccmap is not None:
                self.ccmap.learn(cmd.arg)
            self._publish({"learn": cmd.arg})
            return
        if isinstance(cmd, Action) and cmd.name == "model":
            self._load_model(str(cmd.arg))
            return
        self._apply(cmd, t)
        self._update_status(time.perf_counter(), force=True)

    def _apply(self, cmd: Command, t: float) -> None:
        clock = self.clock
        if isinstance(cmd, Set) and cmd.name == "bpm" and isinstance(clock, InternalClock):
            clock.set_bpm(float(cmd.value), t)  # the heap is keyed by position: still right
        if isinstance(cmd, Action) and isinstance(clock, InternalClock):
            if cmd.name == "stop" and clock.running:
                clock.stop(t)
            elif cmd.name == "play" and not clock.running:
                clock.start(t, clock.position(t))
        pos = clock.position(t)
        if isinstance(cmd, Action) and cmd.name == "stop":
            self._stop_now(pos)
            return
        releasing = (isinstance(cmd, Set) and cmd.name in RELEASING_SETS) or (
            isinstance(cmd, Action) and cmd.name in RELEASING_ACTIONS)
        outs = self.engine.apply(cmd, pos)
        if releasing:
            self._send_now(outs)
            self._drop_pending()
            if isinstance(cmd, Action) and cmd.name == "panic":
                self._flush_all(all_notes_off=True)
        else:
            self._emit(outs, pos)

    # -- model hot-swap -------------------------------------------------------------------
    def _load_model(self, name: str) -> None:
        if self.loader is None:
            self._publish({"message": "model switching is not available here"})
            return
        loader, q = self.loader, self.queue

        def work() -> None:
            try:
                q.put(("loaded", name, loader(name), None))
            except Exception as err:  # any load failure is reported, the old model plays on
                q.put(("loaded", name, None, err))

        threading.Thread(target=work, name="liveduet-loader", daemon=True).start()
        self._publish({"message": f"loading model {name}"})

    def _loaded(self, name: str, model: Any, err: BaseException | None) -> None:
        if err is not None:
            self.message = f"model {name!r} not loaded, the old one plays on: {err}"
            log.warning("%s", self.message)
            self._publish({"message": self.message})
            return
        now = time.perf_counter()
        boundary = math.floor(self.clock.position(now)) + 1.0
        self._swap = (model, name, boundary if self.clock.running else -math.inf)

    def _do_swap(self, pos: float) -> None:
        model, name, _ = self._swap  # type: ignore[misc]
        self._swap = None
        try:
            outs = self.engine.swap_model(model, pos)
        except Exception as err:  # e.g. a codec the current mode cannot use
            self.message = f"model {name!r} refused, the old one plays on: {err}"
            log.warning("%s", self.message)
            self._publish({"message": self.message})
            return
        self._send_now(outs)
        self._drop_pending()
        self.message = f"model {name} playing"
        self._update_status(time.perf_counter(), force=True)

    # -- time-driven work -----------------------------------------------------------------
    def _tick(self, now: float) -> None:
        self._send_due(now)  # timed sends first: the engine may take a model step below
        offset = self.opt.latency_offset
        pos = self.clock.position(now - offset)
        if self.clock.running:
            if self._swap is not None and pos >= self._swap[2]:
                self._do_swap(pos)
            if pos >= self._hold_until:
                self._advance(now, pos)
            self._metronome(pos)
        elif self._swap is not None:
            self._do_swap(pos)
        self._send_due(time.perf_counter())
        if now >= self._next_status:
            self._update_status(now)

    def _advance(self, now: float, pos: float) -> None:
        """Advance the engine up to the next due position if it is within ``early``."""
        target = pos
        nd = self.engine.next_due()
        if nd is not None and nd > pos:
            t = self.clock.time_of(nd)
            if t is not None and t + self.opt.latency_offset - now <= self.opt.early:
                target = nd  # computed now, sent from the schedule at its exact time
        t0 = time.perf_counter()
        outs = self.engine.advance(target)
        if outs:
            self.step_times.append(time.perf_counter() - t0)
            late = [o for o in outs if o.pos <= pos]
            if late:
                self._record_wake(late[0].pos)
        self._emit(outs, pos, timed=True)

    def _record_wake(self, pos: float) -> None:
        """Intended vs actual send time of an event due at grid position ``pos``."""
        t = self.clock.time_of(pos)
        if t is not None and len(self.wake_errors) < MAX_SAMPLES:
            err = time.perf_counter() - (t + self.opt.latency_offset)
            self.wake_errors.append(err)
            self.counters["late"] += err > 0.001

    def _emit(self, outs: Sequence[Any], pos: float, timed: bool = False) -> None:
        """Send what is due now; schedule the rest by grid position."""
        now_msgs = []
        for out in outs:
            if out.pos <= pos:
                now_msgs.append(tuple(out.msg))
            else:
                self._push(out.pos, tuple(out.msg), timed)
        self._send_now_msgs(now_msgs)

    def _flush_early(self) -> None:
        """Send engine events computed ahead (at most ``early`` s) before the engine hears more.

        The engine believes they went out; what it answers to new input must follow them.
        """
        heap = self._heap
        while heap and heap[0][3]:
            t = self._heap_time()
            if t is None or t - time.perf_counter() > self.opt.early:
                return
            pos, _, msg, _ = heapq.heappop(heap)
            self._record_wake(pos)
            self._send(msg)

    def _push(self, pos: float, msg: tuple[int, ...], timed: bool) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (pos, self._seq, msg, timed))

    def _send_due(self, now: float) -> None:
        heap, perf = self._heap, time.perf_counter
        while heap:
            t = self._heap_time()
            if t is None or t > now:
                return
            pos, _, msg, timed = heapq.heappop(heap)
            if timed:
                self._record_wake(pos)
            self._send(msg)
            now = perf()

    def _metronome(self, pos: float) -> None:
        ch = self.opt.metronome
        if ch is None:
            return
        spb = self.opt.steps_per_beat
        if self._click is None or self._click < pos:
            self._click = math.ceil(pos / spb) * spb
        if self._click - pos > 1.0:  # schedule one step ahead
            return
        beat = round(self._click / spb)
        pitch, vel = (76, 110) if beat % self.opt.beats_per_bar == 0 else (77, 80)
        self._push(self._click, (0x90 | (ch - 1), pitch, vel), True)
        self._push(self._click + 0.5, (0x80 | (ch - 1), pitch, 0), False)
        self._click += spb

    # -- sending and releasing ------------------------------------------------------------
    def _send(self, msg: Sequence[int]) -> None:
        try:
            self._send_raw(msg)
        except Exception as err:  # a vanished port must not stop the conductor
            key = f"send:{type(err).__name__}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if self.errors[key] == 1:
                log.warning("MIDI send failed (%s); further failures are counted", err)
            return
        self.ledger.note(msg)
        self.counters["out"] += 1

    def _send_now(self, outs: Sequence[Any]) -> None:
        self._send_now_msgs([tuple(o.msg) for o in outs])

    def _send_now_msgs(self, msgs: Sequence[tuple[int, ...]]) -> None:
        for msg in msgs:
            self._send(msg)

    def _drop_pending(self) -> None:
        """Forget scheduled events; note-offs of notes already sounding go out now."""
        pending, self._heap = self._heap, []
        self._click = None
        for _, _, msg, _ in sorted(pending):
            kind = msg[0] & 0xF0
            off = kind == 0x80 or (kind == 0x90 and len(msg) > 2 and msg[2] == 0)
            if off and (msg[0] & 0x0F, msg[1]) in self.ledger.sounding:
                self._send(msg)

    def _flush_all(self, all_notes_off: bool = False) -> None:
        for msg in self.ledger.offs():
            self._send(msg)
        if all_notes_off:
            for ch in range(16):
                self._send((0xB0 | ch, 123, 0))

    def _shutdown(self) -> None:
        """Exit path: the engine's releases, pending note-offs, then anything still sounding."""
        try:
            pos = self.clock.position(time.perf_counter())
            self._send_now(self.engine.release_all(pos))
        except Exception:  # the engine may be the reason we stop; the ledger still works
            log.exception("engine.release_all failed at shutdown; using the note ledger")
        self._drop_pending()
        self._flush_all()

    # -- status and feedback --------------------------------------------------------------
    def _update_status(self, now: float, force: bool = False) -> None:
        self._next_status = now + STATUS_PERIOD
        status = dict(self.engine.status())
        status.update(bpm=round(self.clock.bpm, 2), running=self.clock.running,
                      step_p99_ms=_p99(self.step_times) * 1e3, message=self.message,
                      errors=sum(self.errors.values()), **self.counters)
        self.snapshot = status
        beat = int(self.clock.position(now) // self.opt.steps_per_beat)
        if force or beat != self._beat:
            self._beat = beat
            self._publish_state(full=False)

    def _publish_state(self, full: bool) -> None:
        if self.publisher is None:
            return
        from liveduet.control import changed_values, state_values

        values = state_values(self.engine.settings, self.snapshot)
        values["bpm"] = self.snapshot.get("bpm", values.get("bpm"))
        diff = values if full else changed_values(self._published, values)
        self._published = values
        if diff:
            self._publish(diff)

    def _publish(self, values: dict[str, Any]) -> None:
        if self.publisher is not None:
            try:
                self.publisher.publish(values)
            except Exception as err:  # feedback is best effort
                log.warning("OSC feedback failed: %s", err)

    def stats(self) -> dict[str, Any]:
        """Counters, wake-up errors, engine call durations and reactions (s), for --stats.

        A reaction is input callback -> first answer sent (both in this process).
        """
        return {"counters": dict(self.counters), "errors": dict(self.errors),
                "wake_errors_s": list(self.wake_errors), "step_times_s": list(self.step_times),
                "reactions_s": list(self.reactions), "queue_delays_s": list(self.delays)}


def _p99(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
