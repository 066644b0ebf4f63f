"""The live runtime: one conductor thread owns the engine and sends its output on time.

MIDI input callbacks only enqueue (with the ``time.perf_counter`` stamp taken in the callback);
OSC and mapped CC commands wait in a :class:`liveduet.mailbox.ControlBox` (coalesced per
setting, taken at a bounded rate) so control traffic never delays a note: the conductor drains
every queued MIDI message first, then takes the commands. The MIDI queue is bounded too: past
``MAX_QUEUED`` waiting messages new note-ons and controllers are dropped (counted), note-offs and
transport never. The conductor asks the clock for grid positions, calls the
engine (feed / advance / apply / swap_model), and sends each ``Out`` at the wall time of its
position: it sleeps on the queue until shortly before the next due event, then spins for the
last fraction of a millisecond, releasing the GIL on every turn; how long it spins follows how
late its recent sleeps woke (:class:`liveduet.rtthread.SpinBudget`). Answers to an input
leave at once.
While it runs, the GIL switch interval is 0.2 ms (see :mod:`liveduet.rtthread`): the MIDI
callback runs on the JACK thread and must never wait a whole JACK period for the GIL.

Helpers: :mod:`liveduet.sender` (timed sends, note ledger: every note-on gets its note-off on
Stop, panic, mode change, model swap, errors and exit), :mod:`liveduet.hotswap` (model loads off
this thread), :mod:`liveduet.feedback` (status snapshot, OSC echo).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from liveduet import catalog, rtthread
from liveduet.clock import TRANSPORT, Clock, InternalClock, MidiClockFollower
from liveduet.clockout import ClockOutput
from liveduet.errors import ConfigError, LiveduetError
from liveduet.feedback import Feedback, Publisher, p99
from liveduet.hotswap import HotSwap
from liveduet.mailbox import ControlBox
from liveduet.planner import check_mode
from liveduet.sender import SendAt, Sender, SendMany, is_note_on
from liveduet.settings import Action, Command, Set

log = logging.getLogger("liveduet.runtime")
RELEASING_SETS = frozenset(("mode", "channel"))
RELEASING_ACTIONS = frozenset(("panic", "reset", "stop", "play"))
IDLE_WAKE = 0.5
POLL_WAKE = 0.01  # a clock source with its own transport (Link) is polled this often
START_LEAD = 0.1  # seconds from start() to the internal clock's step 0
PREFETCH_MAX_WAIT = 0.02  # seconds a stream of sends may put the next table's start off
STALE_STEPS = 1.0     # a note due this many steps ago is stale: skipped, not played late
MAX_QUEUED = 20_000   # MIDI messages waiting for the conductor (4 s at 5,000/s) before drops
HOLD_SPIN = 0.00004  # the end of a spin does not yield the GIL (one yield takes ~10-30 µs)
NOTICES = {"end_call": "end_call: answering now", "reset": "reset: model state starts afresh",
           "panic": "panic: all notes off", "play": "play", "stop": "stop"}


WAKE: tuple[Any, ...] = ("w",)
"""Queued when the control box fills: wakes the conductor to take the commands."""


def _ends(msg: Sequence[int]) -> bool:
    """Note-offs (and note-on velocity 0) and system messages: never dropped under a flood."""
    if not msg:
        return False
    kind = msg[0] & 0xF0
    return msg[0] >= 0xF0 or kind == 0x80 or (kind == 0x90 and len(msg) > 2 and msg[2] == 0)


class EngineLike(Protocol):
    """The engine interface the runtime drives (see liveduet/engine.py)."""

    @property
    def settings(self) -> Any: ...
    def feed(self, pos: float, msg: Sequence[int]) -> list[Any]: ...
    def feed_many(self, events: Sequence[tuple[float, Sequence[int]]]) -> list[Any]: ...
    def prefetch(self) -> None: ...
    def close(self) -> None: ...
    def advance(self, pos: float) -> list[Any]: ...
    def next_due(self) -> float | None: ...
    def apply(self, cmd: Command, pos: float) -> list[Any]: ...
    def swap_model(self, model: Any, pos: float) -> list[Any]: ...
    def release_all(self, pos: float) -> list[Any]: ...
    def status(self) -> dict[str, Any]: ...


@dataclass
class Options:
    """Runtime knobs that are not musical settings."""

    latency_offset: float = 0.0        # seconds added to grid-scheduled sends
    metronome: int | None = None       # MIDI channel 1-16 for click notes, None = off
    spin: float = 0.0005               # busy-wait before each due send (the first value)
    adaptive_spin: bool = True         # then: what recent sleeps overslept (rtthread.SpinBudget)
    yield_spin: bool = True            # release the GIL on every turn of that busy-wait
    switch_interval: float | None = 0.0002  # GIL switch interval while running (None: keep)
    realtime: bool = False             # SCHED_FIFO conductor: wake-up p99 7x tighter, but it
    # starves non-real-time MIDI threads (jackd --no-realtime, ALSA) under dense input
    early: float = 0.002               # ask the engine this much ahead; the heap sends on time
    prefetch_after: float = 0.004      # the next harmony table is started this long after a
    # send: building it at once took a core while JACK delivered the notes (they came later)
    keep_samples: int = 2000           # timing samples kept per kind (the latest; --stats: more)
    lead: float = 0.0                  # > 0: scheduled sends go this early to ``send_at``,
    # which places them at their due time (a JACK-native port: at the frame)
    steps_per_beat: int = 4


class Runtime:
    """Owns the conductor thread; everything else talks to it through :meth:`submit`."""

    def __init__(self, engine: EngineLike, clock: Clock,
                 send: Callable[[Sequence[int]], None], options: Options | None = None, *,
                 publisher: Publisher | None = None, ccmap: Any = None,
                 loader: Callable[[str], Any] | None = None,
                 send_many: SendMany | None = None,
                 clock_out: ClockOutput | None = None,
                 send_at: SendAt | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.clock_out = clock_out   # MIDI clock out of this transport (conductor only)
        self._poll = getattr(clock, "poll", None)   # a source with its own transport (Link)
        self.opt = options or Options()
        self.feedback = Feedback(publisher)
        self.ccmap = ccmap
        self.queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.controls = ControlBox(lambda: self.queue.put(WAKE))
        self.midi_dropped = 0   # input refused past MAX_QUEUED (callback thread only)
        self.swaps = HotSwap(loader, self.queue.put)
        self._after_swap: dict[str, Set] = {}  # model name -> the mode change waiting for it
        self._hold_until = -math.inf
        self._prefetch_at = math.inf   # when to let the engine build ahead (after a send)
        self._prefetch_since = 0.0     # the first send that put it off
        self.errors: dict[str, int] = {}
        keep = self.opt.keep_samples   # timing samples are rings: memory stays flat
        self.reactions: deque[float] = deque(maxlen=keep)
        self.reaction_parts: deque[tuple[float, float, float]] = deque(maxlen=keep)
        self.delays: deque[float] = deque(maxlen=keep)
        self._restore: Callable[[], None] | None = None
        self.step_times: deque[float] = deque(maxlen=2000)
        self.counters = {"in": 0, "out": 0, "commands": 0, "late": 0, "skipped": 0}
        self.out = Sender(send, clock, self.opt, self.counters,  # type: ignore[arg-type]
                          self.errors, send_many,
                          metres=lambda: self.engine.grid.metres, send_at=send_at)
        self.spin = rtthread.SpinBudget(self.opt.spin, adaptive=self.opt.adaptive_spin)
        self.message = ""
        self._echo_due = False   # a command changed something: echo at the next tick
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.failed: BaseException | None = None

    @property
    def publisher(self) -> Publisher | None:
        """Where state changes are echoed (settable until :meth:`start`)."""
        return self.feedback.publisher

    @publisher.setter
    def publisher(self, value: Publisher | None) -> None:
        self.feedback.publisher = value

    @property
    def snapshot(self) -> dict[str, Any]:
        """The latest status (engine status plus tempo, counters, message), for displays."""
        return self.feedback.snapshot

    # -- thread-safe entry points ---------------------------------------------------------
    def on_midi(self, t: float, msg: tuple[int, ...], idx: int = 0) -> None:
        """MIDI input callback: only enqueue (past ``MAX_QUEUED`` waiting, only what ends)."""
        if self.queue.qsize() >= MAX_QUEUED and not _ends(msg):
            self.midi_dropped += 1
            return
        self.queue.put(("m", t, msg))

    def submit(self, cmd: Command) -> None:
        """Control callback (OSC, tests): into the control box (latest value per setting)."""
        self.controls.put(cmd)

    def start(self) -> None:
        """Start the conductor thread; the internal clock reaches step 0 ``START_LEAD`` from now
        (time to plan the first step: started at once, the first send was ~4 ms late)."""
        if isinstance(self.clock, InternalClock) and not self.clock.running:
            first = time.perf_counter() + START_LEAD
            self.clock.start(first)
            self._apply(Action("play"), first)
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
                self.out.flush_all()
            self._thread = None
        if self._restore is not None:
            self._restore()
            self._restore = None

    # -- conductor ------------------------------------------------------------------------
    def _run(self) -> None:
        for why in rtthread.tune_thread(self.opt.realtime):
            if self.opt.realtime and "real-time" in why:
                log.warning("--realtime: %s", why)
        try:
            self._loop()
        except BaseException as err:  # a bug in the runtime itself: end cleanly, report
            self.failed = err
            log.exception("conductor stopped by an internal error")
        finally:
            self._shutdown()
            self.done.set()

    def _loop(self) -> None:
        get, perf, budget = self.queue.get, time.perf_counter, self.spin
        while True:
            asked = min(self._until_due(perf()) - budget.seconds, IDLE_WAKE)
            try:
                if asked > 0:
                    slept = perf()
                    item = get(timeout=asked)
                else:
                    item = self.queue.get_nowait()
            except queue.Empty:
                item = ()
                if asked > 0:
                    budget.woke(perf() - slept - asked)
            if item != () and not self._drain(item):
                return
            if self.controls:
                self._take_controls(perf())
            self._spin(perf)
            self._guard("tick", self._tick, perf())

    def _drain(self, item: tuple[Any, ...] | None) -> bool:
        """Handle ``item`` and everything queued behind it, in order; False on the stop item.

        Notes queued together go to the engine in one call: under a burst the conductor
        re-decides once per drain, not once per note, so it keeps up instead of falling behind.
        """
        notes: list[tuple[float, tuple[int, ...]]] = []
        while True:
            if item is None:
                self._guard("input", self._feed, notes)
                return False
            if item[0] == "m":
                if self._guard("input", self._midi, item[1], item[2]):
                    notes.append((item[1], item[2]))
            elif item is not WAKE:
                if notes:
                    self._guard("input", self._feed, notes)
                    notes = []
                self._guard("input", self._handle, item)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
        if notes:
            self._guard("input", self._feed, notes)
        return True

    def _take_controls(self, now: float) -> None:
        """Apply the commands the control box's rate allows now, one at a time, and only while
        no MIDI waits: a note that arrives meanwhile is drained before the next command."""
        empty, take = self.queue.empty, self.controls.take
        while empty() and (got := take(now, 1)):
            self._guard("control", self._command, got[0], now)

    def _spin(self, perf: Callable[[], float]) -> None:
        """Busy-wait for what is due within the spin budget; the messages due then are taken
        from the schedule first and leave the moment the wait ends (back to back). Input
        arriving meanwhile ends the wait at once: they go back to the schedule. Only sends
        need this precision: engine work is asked ``early``, status and prefetch are not timed."""
        end = self.out.due_time()
        tick = self.clock_out.due_time() if self.clock_out is not None else None
        if tick is not None and (end is None or tick < end):
            end = tick
        if end is None or end - perf() > self.spin.seconds:
            return
        ready = self.out.take_due(end)
        empty = self.queue.empty
        if self.opt.yield_spin:
            pause, hold = time.sleep, end - HOLD_SPIN
            while perf() < hold and empty():
                pause(0)  # lets a MIDI callback waiting for the GIL in at once
            while perf() < end and empty():
                pass      # the last few µs: a yield could overshoot the due time
        else:
            while perf() < end and empty():
                pass
        if ready:
            if perf() >= end:
                self.out.send_batch(ready)
            else:
                self.out.put_back(ready)
        if self.clock_out is not None:
            self.clock_out.send_due(perf())

    def _until_due(self, now: float) -> float:
        """Seconds from ``now`` to the next thing the conductor must do."""
        due = min(self.feedback.next_due, self._prefetch_at)
        if self.controls and (ready := self.controls.ready_at(now)) is not None:
            due = min(due, ready)
        t = self.out.due_time()
        if t is not None:
            due = min(due, t)
        if self.clock_out is not None and (t := self.clock_out.due_time()) is not None:
            due = min(due, t)
        if self._poll is not None:
            due = min(due, now + POLL_WAKE)
        if self.clock.running:
            nd = self.engine.next_due()
            if nd is not None and nd >= self._hold_until:
                t = self.clock.time_of(nd)
                if t is not None:
                    due = min(due, t + self.opt.latency_offset - self.opt.early)
            if self.swaps.boundary is not None:
                t = self.clock.time_of(self.swaps.boundary)
                due = min(due, t if t is not None else now)
        return due - now

    def _guard(self, where: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` (its result, None after an error); an error is logged (first of each
        kind), counted, and play goes on."""
        try:
            return fn(*args)
        except Exception as err:  # the live loop never dies of one bad event
            key = f"{where}:{type(err).__name__}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if self.errors[key] == 1 and isinstance(err, LiveduetError):  # a user's value
                log.warning("%s refused: %s (playing on; further ones are counted)", where, err)
            elif self.errors[key] == 1:
                log.exception("error in %s (playing on; further ones are counted)", where)
            self.message = f"{where} error: {err}"
            if where == "tick":
                self._hold_until = self.clock.position(time.perf_counter()) + 1.0
            return None

    # -- events ---------------------------------------------------------------------------
    def _handle(self, item: tuple[Any, ...]) -> None:
        """A queued command or loaded model (MIDI items are drained by :meth:`_drain`)."""
        kind = item[0]
        if kind == "c":
            self._command(item[1], time.perf_counter())
        elif kind == "loaded":
            self._loaded(item[1], item[2], item[3])

    def _midi(self, t: float, msg: tuple[int, ...]) -> bool:
        """Count one input; handle transport and mapped CCs; True when it is for the engine."""
        self.counters["in"] += 1
        self.delays.append(time.perf_counter() - t)
        status = msg[0] if msg else 0
        if status in TRANSPORT:
            if isinstance(self.clock, MidiClockFollower):
                self._transport(self.clock.on_message(msg, t), t)
            return False
        if status >= 0xF0:
            return False
        if (status & 0xF0) == 0xB0 and self.ccmap is not None and len(msg) >= 3:
            ch = (status & 0x0F) + 1
            if self.ccmap.handles(ch, msg[1]):
                was_learning = self.ccmap.learning is not None
                cmd = self.ccmap.cc_command(ch, msg[1], msg[2])
                if cmd is not None:  # coalesced with OSC: a CC sweep is one change per drain
                    self.controls.put(cmd)
                elif was_learning:  # a learn just finished: echo learn ""
                    self._update_status(time.perf_counter(), force=True)
                return False
        return True

    def _feed(self, notes: Sequence[tuple[float, tuple[int, ...]]]) -> None:
        """Give stamped messages to the engine in one call; send its answer at once."""
        if not notes:
            return
        self.out.flush_early()
        now = time.perf_counter()
        position = self.clock.position
        outs = self.engine.feed_many([(position(t), msg) for t, msg in notes])
        fed = time.perf_counter()
        self.step_times.append(fed - now)
        sent = self.counters["out"]
        self.out.emit(outs, position(fed))
        if self.counters["out"] > sent:
            done = time.perf_counter()
            first = notes[0][0]   # the longest wait of the drain
            self.reactions.append(done - first)
            self.reaction_parts.append((now - first, fed - now, done - fed))
        self._prefetch(self.counters["out"] > sent)

    def _transport(self, event: str | None, t: float) -> None:
        if event is None:
            return
        now = time.perf_counter()
        if event == "stop":
            self._stop_now(self.clock.position(now))
        else:  # play / locate: the DAW (re)anchors the grid at the clock's position
            self.out.drop_pending()
            pos = self._play_pos(t)
            self.out.send_now(self.engine.apply(Action("play"), pos))
        self._update_status(now, force=True)

    def _play_pos(self, t: float) -> float:
        """Where play starts: the clock's position, or the next whole step when the clock's
        grid is absolute (Link beats: the engine's steps must fall on the session's 16ths)."""
        pos = self.clock.position(t)
        return float(math.ceil(pos - 1e-6)) if self._poll is not None else pos

    def _stop_now(self, pos: float) -> None:
        outs = list(self.engine.apply(Action("stop"), pos)) + list(self.engine.release_all(pos))
        self.out.send_now(outs)
        self.out.drop_pending()
        self.out.flush_all()

    def _command(self, cmd: Command, t: float) -> None:
        self.counters["commands"] += 1
        if isinstance(cmd, Action) and cmd.name == "state":
            self._publish_state(full=True)
            return
        if isinstance(cmd, Action) and cmd.name == "learn":
            if self.ccmap is not None:
                self.ccmap.learn(cmd.arg)
            self._update_status(time.perf_counter(), force=True)  # echoes learn
            return
        if isinstance(cmd, Action) and cmd.name == "model":
            self._publish({"message": self.swaps.request(str(cmd.arg))})
            return
        if isinstance(cmd, Set) and cmd.name == "mode" and self._mode_needs_model(cmd):
            return
        try:
            self._apply(cmd, t)
        except Exception as err:
            if isinstance(cmd, Set):  # the client's fader/label snaps back to what is in force
                self.message = f"{cmd.name} not changed: {err}"
                self._publish({cmd.name: getattr(self.engine.settings, cmd.name, None),
                               "message": self.message})
            raise
        if isinstance(cmd, Action) and cmd.name in NOTICES:
            self.message = NOTICES[cmd.name]
            self._publish({"message": self.message})  # acknowledged even when repeated
        # echoed by the next tick, once for every command applied meanwhile (a burst of
        # commands from the control box costs one status and one echo, not one each)
        self._echo_due = True
        self.feedback.next_due = 0.0

    def _apply(self, cmd: Command, t: float) -> None:
        clock: Any = self.clock
        own = isinstance(clock, InternalClock) or self._poll is not None  # we set its tempo
        if isinstance(cmd, Set) and cmd.name == "bpm" and own:
            clock.set_bpm(float(cmd.value), t)  # the heap is keyed by position: still right
        if isinstance(cmd, Action) and own:
            if cmd.name == "stop" and clock.running:
                clock.stop(t)
            elif cmd.name == "play" and not clock.running:
                # resume from the start of the step it stopped in: the grid stays on whole
                # steps (the 16ths of MIDI clock out and of a Link session)
                clock.start(t, float(math.floor(clock.position(t))))
        pos = self._play_pos(t) if isinstance(cmd, Action) and cmd.name == "play" \
            else clock.position(t)
        if isinstance(cmd, Action) and cmd.name == "stop":
            self._stop_now(pos)
            return
        releasing = (isinstance(cmd, Set) and cmd.name in RELEASING_SETS) or (
            isinstance(cmd, Action) and cmd.name in RELEASING_ACTIONS)
        outs = self.engine.apply(cmd, pos)
        if releasing:
            self.out.send_now(outs)
            self.out.drop_pending()
            if isinstance(cmd, Action) and cmd.name == "panic":
                self.out.flush_all(all_notes_off=True)
        else:
            self.out.emit(outs, pos)

    # -- model hot-swap -------------------------------------------------------------------
    def _mode_needs_model(self, cmd: Set) -> bool:
        """A mode the playing model cannot run (harmonize with a one-voice model) loads the
        bundled model that can and switches mode once it plays (True); without a loader it is
        refused in one line (True). False: the current model can play it."""
        codec = getattr(self.engine, "codec", None)
        try:
            if codec is not None:
                check_mode(codec, str(cmd.value))
            self._after_swap.clear()  # a later choice of mode wins over one waiting for a model
            return False
        except ConfigError as err:
            reason = str(err)
        name = catalog.for_mode(str(cmd.value))
        if self.swaps.loader is None:
            self._refused(f"mode {cmd.value} not set: {reason}")
            self._publish({"mode": self.engine.settings.mode})  # the radio snaps back
            return True
        self._after_swap[name] = cmd
        self._publish({"message": f"mode {cmd.value}: {self.swaps.request(name)}"})
        return True

    def _loaded(self, name: str, model: Any, err: BaseException | None) -> None:
        now = time.perf_counter()
        why = self.swaps.loaded(name, model, err, self.clock.position(now), self.clock.running)
        if why is not None:
            if self._after_swap.pop(name, None) is not None:
                self._publish({"mode": self.engine.settings.mode})
            self._refused(why)

    def _refused(self, why: str) -> None:
        self.message = why
        log.warning("%s", why)
        self._publish({"message": why})

    def _do_swap(self, pos: float, model: Any, name: str) -> None:
        try:
            outs = self.engine.swap_model(model, pos)
        except Exception as err:  # e.g. a codec the current mode cannot use
            self._refused(f"model {name!r} refused, the old one plays on: {err}")
            return
        self.out.send_now(outs)
        self.out.drop_pending()
        self.message = f"model {name} playing"
        then = self._after_swap.pop(name, None)
        if then is not None:  # the mode change that asked for this model
            self._command(then, time.perf_counter())
            return
        self._update_status(time.perf_counter(), force=True)

    # -- time-driven work -----------------------------------------------------------------
    def _tick(self, now: float) -> None:
        if self._poll is not None:
            self._transport(self._poll(now), now)
        offset = self.opt.latency_offset
        pos = self.clock.position(now - offset)
        if self.clock.running:  # after a stall (SIGSTOP, a swapped-out process): no burst
            self._skipped(self.out.skip_stale(pos - STALE_STEPS))
        self.out.send_due(now)  # timed sends first: the engine may take a model step below
        if self.clock.running:
            if (swap := self.swaps.take(pos)) is not None:
                self._do_swap(pos, *swap)
            if pos >= self._hold_until:
                self._advance(now, pos)
            self.out.metronome_due(pos)
        elif (swap := self.swaps.take(math.inf)) is not None:
            self._do_swap(pos, *swap)
        self.out.send_due(time.perf_counter())
        if self.clock_out is not None:
            self.clock_out.send_due(time.perf_counter())
        if now >= self._prefetch_at:
            self._prefetch(sent=False)
        if now >= self.feedback.next_due:
            self._update_status(now, force=self._echo_due)
            self._echo_due = False

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
        if outs and min(o.pos for o in outs) < pos - STALE_STEPS:  # the conductor was stalled
            fresh = [o for o in outs if o.pos >= pos - STALE_STEPS or not is_note_on(o.msg)]
            self.counters["skipped"] += len(outs) - len(fresh)
            self._skipped(len(outs) - len(fresh))
            outs = fresh
        if outs:
            self.step_times.append(time.perf_counter() - t0)
            late = [o for o in outs if o.pos <= pos]
            if late:
                self.out.record_wake(late[0].pos)
        self.out.emit(outs, pos, timed=True)
        self._prefetch(bool(outs))

    def _skipped(self, n: int) -> None:
        """Say that a stall made ``n`` notes stale (they were skipped, not played late)."""
        if n:
            self.message = f"conductor was stalled: skipped {n} stale note(s)"

    def _prefetch(self, sent: bool) -> None:
        """Let the engine build the next harmony table ahead (on its worker): ``prefetch_after``
        after a send, once JACK has delivered it (a table takes a core for a few ms; started at
        once, the answer reached the DAW a JACK period or more later), else now unless a
        deferred start is pending (then it waits for that). Each send puts the start off again,
        but never more than ``PREFETCH_MAX_WAIT`` past the first deferral (a dense run of notes
        still gets its tables built ahead)."""
        now = time.perf_counter()
        if sent and self.opt.prefetch_after > 0:
            if self._prefetch_at == math.inf:
                self._prefetch_since = now
            self._prefetch_at = min(now + self.opt.prefetch_after,
                                    self._prefetch_since + PREFETCH_MAX_WAIT)
        elif now >= self._prefetch_at or self._prefetch_at == math.inf:
            self._prefetch_at = math.inf
            self.engine.prefetch()

    def _shutdown(self) -> None:
        """Exit path: the engine's releases, pending note-offs, then anything still sounding."""
        try:
            pos = self.clock.position(time.perf_counter())
            self.out.send_now(self.engine.release_all(pos))
        except Exception:  # the engine may be the reason we stop; the ledger still works
            log.exception("engine.release_all failed at shutdown; using the note ledger")
        self.out.drop_pending()
        self.out.flush_all()
        if self.clock_out is not None:
            try:
                self.clock_out.stop()
            except Exception:  # the port may be gone; the notes are already off
                log.exception("sending MIDI clock Stop at exit failed")
        try:
            self.engine.close()
        except Exception:
            log.exception("closing the engine's table builder failed")

    # -- status and feedback --------------------------------------------------------------
    def _update_status(self, now: float, force: bool = False) -> None:
        status = dict(self.engine.status())
        learning = getattr(self.ccmap, "learning", None)
        status.update(bpm=round(self.clock.bpm, 2), running=self.clock.running,
                      step_p99_ms=p99(self.step_times) * 1e3, message=self.message,
                      errors=sum(self.errors.values()), learn=learning,
                      beat=self.engine.beat_at(self.clock.position(now)),
                      dropped=self.dropped(), coalesced=self.controls.coalesced,
                      **self.counters)
        peers = getattr(self.clock, "peers", None)
        if peers is not None:
            status["peers"] = peers
        self.feedback.update(now, self.engine.settings, status, force)

    def dropped(self) -> int:
        """Messages dropped under a flood: MIDI past ``MAX_QUEUED``, OSC past the server's
        rate limit (its ``dropped``, when the publisher is the OSC server)."""
        return self.midi_dropped + int(getattr(self.publisher, "dropped", 0) or 0)

    def _publish_state(self, full: bool) -> None:
        self.feedback.publish_state(self.engine.settings, full)

    def _publish(self, values: dict[str, Any]) -> None:
        self.feedback.publish(values)

    def stats(self) -> dict[str, Any]:
        """Counters, send errors, engine call durations and reactions (s), for --stats.

        ``wake_errors_s``: actual minus intended send time of every grid-timed message;
        ``wake_first_s``: of the first message of each send (the conductor's wake-up error).
        ``clock_out_errors_s``: actual minus intended send time of each MIDI clock out send.

        A reaction is input callback -> first answer sent (both in this process); its parts are
        (callback -> conductor, engine, send). Each kind keeps the latest ``keep_samples``.
        """
        return {"counters": {**self.counters, "dropped": self.dropped(),
                             "coalesced": self.controls.coalesced},
                "errors": dict(self.errors),
                "wake_errors_s": list(self.out.wake_errors),
                "wake_first_s": list(self.out.wake_first), "step_times_s": list(self.step_times),
                "reactions_s": list(self.reactions),
                "reaction_parts_s": [list(p) for p in self.reaction_parts],
                "queue_delays_s": list(self.delays),
                "clock_out_errors_s": list(self.clock_out.errors) if self.clock_out else []}

