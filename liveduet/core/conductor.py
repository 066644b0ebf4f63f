"""The conductor: routing, turns of transport, commands, swaps and timed sends, in given time.

A :class:`Conductor` owns the engine, the clock's transport and the output schedule. It is
handed events with the time they happen (:meth:`Conductor.handle`), woken by time
(:meth:`Conductor.tick`), sends through the ``send_many`` it was given and says when to wake it
next (:meth:`Conductor.wake`). It starts no thread and reads no clock: ``now`` is an argument,
and ``timer`` (``time.perf_counter`` live, a :class:`~liveduet.core.clock.VirtualTime` offline) only
stamps the ends of engine calls, so an answer is placed where the engine finished and the
call's cost is measured. The live runtime, ``render`` and the fuzz tests drive this one class.

Rules: transport bytes go to a clock that follows them, mapped CCs become commands, the rest
to the engine; answers leave at once, grid notes at their time; Stop, panic, reset, a mode or
channel change and a swap release what sounds; a note a stall made stale is skipped; an error
in one event is counted, logged once per kind, and play goes on.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from liveduet.core.clock import TRANSPORT, Clock
from liveduet.core.clockout import ClockOutput
from liveduet.core.events import Control, Event, Loaded, Midi
from liveduet.core.feedback import STATUS_PERIOD, Feedback, Publisher, p99
from liveduet.core.hotswap import Swaps
from liveduet.core.sender import SendAt, Sender, SendMany, is_note_on
from liveduet.core.settings import Act, Action, Command, Set
from liveduet.core.transport import Transport
from liveduet.errors import ConfigError, LiveduetError

log = logging.getLogger("liveduet.live.runtime")
RELEASING_SETS = frozenset(("mode", "channel"))
RELEASING_ACTIONS = frozenset((Act.PANIC, Act.RESET, Act.STOP, Act.PLAY))
POLL_WAKE = 0.01  # a clock source with its own transport (Link, JACK) is polled this often
PREFETCH_MAX_WAIT = 0.02  # seconds a stream of sends may put the next table's start off
STALE_STEPS = 1.0     # a note due this many steps ago is stale: skipped, not played late
NOTICES = {Act.END_CALL: "end_call: answering now", Act.RESET: "reset: model state starts afresh",
           Act.PANIC: "panic: all notes off", Act.PLAY: "play", Act.STOP: "stop"}


@dataclass
class Options:
    """How the conductor times its work (not musical settings)."""

    latency_offset: float = 0.0        # seconds added to grid-scheduled sends
    metronome: int | None = None       # MIDI channel 1-16 for click notes, None = off
    early: float = 0.002               # ask the engine this much ahead; the schedule sends on time
    prefetch_after: float = 0.004      # the next harmony table is started this long after a
    # send, once JACK has delivered it: a table build takes a core for a few ms
    keep_samples: int = 2000           # timing samples kept per kind (the latest; --stats: more)
    status_period: float = STATUS_PERIOD   # seconds between status snapshots
    lead: float = 0.0   # > 0: grid sends go this early to ``send_at`` (a port placing them)


VIRTUAL = Options(early=0.0, prefetch_after=0.0)  # virtual time: nothing asked ahead or put off


class Conductor:
    """Drives the engine from events and time; see the module docstring."""

    def __init__(self, engine: Any, clock: Clock, send_many: SendMany, options: Options,
                 timer: Callable[[], float], *, publisher: Publisher | None = None,
                 ccmap: Any = None, defer: Callable[[Command], None] | None = None,
                 load: Callable[[str], None] | None = None,
                 clock_out: ClockOutput | None = None, send_at: SendAt | None = None,
                 input_counts: Callable[[], dict[str, int]] = dict) -> None:
        self.engine, self.clock, self.opt, self.timer = engine, clock, options, timer
        self.ccmap, self.clock_out = ccmap, clock_out
        self.feedback = Feedback(publisher, options.status_period)
        # a mapped CC's command: coalesced by the runtime's control box, else applied at once
        self._defer = defer or (lambda c: self.guard("control", self._command, c, self.timer()))
        self.input_counts = input_counts   # the runtime's: dropped, coalesced
        self.transport = Transport(clock)
        self.swaps = Swaps(load)
        self._hold_until = -math.inf
        self._prefetch_at = math.inf   # when to let the engine build ahead (after a send)
        self._prefetch_since = 0.0     # the first send that put it off
        self.errors: dict[str, int] = {}
        keep = options.keep_samples    # timing samples are rings: memory stays flat
        self.reactions: deque[float] = deque(maxlen=keep)
        self.reaction_parts: deque[tuple[float, float, float]] = deque(maxlen=keep)
        self.delays: deque[float] = deque(maxlen=keep)
        self.step_times: deque[float] = deque(maxlen=2000)
        self.counters = {"in": 0, "out": 0, "commands": 0, "late": 0, "skipped": 0}
        self.out = Sender(clock, options, self.counters, self.errors, send_many, timer,
                          metres=lambda: self.engine.grid.metres, send_at=send_at)
        self.message = ""
        self._echo_due = False   # a command changed something: echo at the next tick

    def start(self, now: float) -> None:
        """Before the first event: a clock that runs when liveduet runs (the internal tempo)
        starts at ``now`` (a moment ahead: time to plan the first step) and play begins."""
        if self.transport.starts_itself and not self.clock.running:
            self._apply(Action(Act.PLAY), now)
        self.update_status(now, force=True)

    def handle(self, now: float, events: Sequence[Event]) -> float:
        """Handle ``events`` in order; MIDI notes in a row go to the engine in one call (under a
        burst the engine re-decides once, not once per note). Returns :meth:`wake`."""
        notes: list[tuple[float, tuple[int, ...]]] = []
        for ev in events:
            if isinstance(ev, Midi):
                if self.guard("input", self._midi, ev.t, ev.msg, now):
                    notes.append((ev.t, ev.msg))
                continue
            if notes:
                self.guard("input", self._feed, notes)
                notes = []
            if isinstance(ev, Control):
                self.guard("control", self._command, ev.cmd, now)
            elif isinstance(ev, Loaded):
                self.guard("input", self._loaded, ev, now)
        if notes:
            self.guard("input", self._feed, notes)
        return self.wake(now)

    def guard(self, where: str, fn: Callable[..., Any], *args: Any) -> Any:
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
                self._hold_until = self.clock.position(self.timer()) + 1.0
            return None

    def _midi(self, t: float, msg: tuple[int, ...], now: float) -> bool:
        """Count one input; handle transport and mapped CCs; True when it is for the engine."""
        self.counters["in"] += 1
        self.delays.append(now - t)
        status = msg[0] if msg else 0
        if status in TRANSPORT:
            self._on_transport(self.transport.heard(msg, t), t)
            return False
        if status >= 0xF0:
            return False
        if (status & 0xF0) == 0xB0 and self.ccmap is not None and len(msg) >= 3:
            ch = (status & 0x0F) + 1
            if self.ccmap.handles(ch, msg[1]):
                was_learning = self.ccmap.learning is not None
                cmd = self.ccmap.cc_command(ch, msg[1], msg[2])
                if cmd is not None:  # coalesced with OSC: a CC sweep is one change per drain
                    self._defer(cmd)
                elif was_learning:  # a learn just finished: echo learn ""
                    self.update_status(self.timer(), force=True)
                return False
        return True

    def _feed(self, notes: Sequence[tuple[float, tuple[int, ...]]]) -> None:
        """Give stamped messages to the engine in one call; send its answer at once."""
        self.out.flush_early()
        now = self.timer()
        position = self.clock.position
        outs = self.engine.feed_many([(position(t), msg) for t, msg in notes])
        fed = self.timer()
        self.step_times.append(fed - now)
        sent = self.counters["out"]
        self.out.emit(outs, position(fed))
        if self.counters["out"] > sent:
            done = self.timer()
            first = notes[0][0]   # the longest wait of the drain
            self.reactions.append(done - first)
            self.reaction_parts.append((now - first, fed - now, done - fed))
        self._prefetch(self.counters["out"] > sent)

    def _on_transport(self, event: str | None, t: float) -> None:
        if event is None:
            return
        now = self.timer()
        if event == "stop":
            self._stop_now(self.clock.position(now))
        else:  # play / locate: the DAW (re)anchors the grid at the clock's position
            self.out.drop_pending()
            self.out.send_now(self.engine.apply(Action(Act.PLAY), self.transport.play_pos(t)))
        self.update_status(now, force=True)

    def _stop_now(self, pos: float) -> None:
        outs = list(self.engine.apply(Action(Act.STOP), pos)) + list(self.engine.release_all(pos))
        self.out.send_now(outs)
        self.out.drop_pending()
        self.out.flush_all()

    def _command(self, cmd: Command, t: float) -> None:
        self.counters["commands"] += 1
        if isinstance(cmd, Action) and cmd.name == Act.STATE:
            self.feedback.publish_state(self.engine.settings, full=True)
            return
        if isinstance(cmd, Action) and cmd.name == Act.LEARN:
            if self.ccmap is not None:
                self.ccmap.learn(cmd.arg)
            self.update_status(self.timer(), force=True)  # echoes learn
            return
        if isinstance(cmd, Action) and cmd.name == Act.MODEL:
            self.feedback.publish({"message": self.swaps.request(str(cmd.arg))})
            return
        if isinstance(cmd, Set) and cmd.name == "mode" and self._mode_needs_model(cmd):
            return
        try:
            self._apply(cmd, t)
        except Exception as err:
            if isinstance(cmd, Set):  # the client's fader/label snaps back to what is in force
                self.message = f"{cmd.name} not changed: {err}"
                now_in_force = (self.clock.bpm if cmd.name == "bpm" else
                                 getattr(self.engine.settings, cmd.name, None))
                self.feedback.publish({cmd.name: now_in_force, "message": self.message})
            raise
        if isinstance(cmd, Action) and cmd.name in NOTICES:
            self.message = NOTICES[cmd.name]
            self.feedback.publish({"message": self.message})  # acknowledged even when repeated
        # echoed by the next tick, once for every command applied meanwhile (a burst of
        # commands from the control box costs one status and one echo, not one each)
        self._echo_due = True
        self.feedback.next_due = 0.0

    def _apply(self, cmd: Command, t: float) -> None:
        if isinstance(cmd, Set) and cmd.name == "bpm" and not self.transport.leads:
            raise ConfigError("the tempo follows the MIDI clock: change it in the DAW")
        pos = self.transport.command(cmd, t)
        if isinstance(cmd, Action) and cmd.name == Act.STOP:
            self._stop_now(pos)
            return
        releasing = (isinstance(cmd, Set) and cmd.name in RELEASING_SETS) or (
            isinstance(cmd, Action) and cmd.name in RELEASING_ACTIONS)
        outs = self.engine.apply(cmd, pos)
        if releasing:
            self.out.send_now(outs)
            self.out.drop_pending()
            if isinstance(cmd, Action) and cmd.name == Act.PANIC:
                self.out.flush_all(all_notes_off=True)
        else:
            self.out.emit(outs, pos)

    def _mode_needs_model(self, cmd: Set) -> bool:
        """True when the playing model cannot run mode ``cmd`` (harmonize with a one-voice
        model): the model that can is loading and the mode follows it, or it is refused."""
        try:
            notice = self.swaps.for_mode(cmd, getattr(self.engine, "codec", None))
        except ConfigError as err:
            self._refused(f"mode {cmd.value} not set: {err}")
            self.feedback.publish({"mode": self.engine.settings.mode})  # the radio snaps back
            return True
        if notice is not None:
            self.feedback.publish({"message": f"mode {cmd.value}: {notice}"})
        return notice is not None

    def _loaded(self, ev: Loaded, now: float) -> None:
        why = self.swaps.pending.loaded(ev.name, ev.model, ev.error, self.clock.position(now),
                                        self.clock.running)
        if why is not None:
            if self.swaps.after.pop(ev.name, None) is not None:
                self.feedback.publish({"mode": self.engine.settings.mode})
            self._refused(why)

    def _refused(self, why: str) -> None:
        self.message = why
        log.warning("%s", why)
        self.feedback.publish({"message": why})

    def _do_swap(self, pos: float, model: Any, name: str) -> None:
        try:
            outs = self.engine.swap_model(model, pos)
        except Exception as err:  # e.g. a codec the current mode cannot use
            self._refused(f"model {name!r} refused, the old one plays on: {err}")
            return
        self.out.send_now(outs)
        self.out.drop_pending()
        self.message = f"model {name} playing"
        then = self.swaps.after.pop(name, None)
        if then is not None:  # the mode change that asked for this model
            self._command(then, self.timer())
            return
        self.update_status(self.timer(), force=True)

    def wake(self, now: float) -> float:
        """The time of the next thing the conductor must do (a send, a step, a status)."""
        due = min(self.feedback.next_due, self._prefetch_at)
        for t in (self.out.due_time(), self.clock_out.due_time() if self.clock_out else None):
            if t is not None:
                due = min(due, t)
        if self.transport.poll is not None:
            due = min(due, now + POLL_WAKE)
        if self.clock.running:
            nd = self.engine.next_due()
            if nd is not None and nd >= self._hold_until:
                t = self.clock.time_of(nd)
                if t is not None:
                    due = min(due, t + self.opt.latency_offset - self.opt.early)
            if self.swaps.pending.boundary is not None:
                t = self.clock.time_of(self.swaps.pending.boundary)
                due = min(due, t if t is not None else now)
        return due

    def tick(self, now: float) -> None:
        """The time-driven work due at ``now``: sends, steps, swaps, prefetch, status."""
        self.guard("tick", self._tick, now)

    def _tick(self, now: float) -> None:
        if self.transport.poll is not None:
            self._on_transport(self.transport.poll(now), now)
        pos = self.clock.position(now - self.opt.latency_offset)
        if self.clock.running:  # after a stall (SIGSTOP, a swapped-out process): no burst
            self._skipped(self.out.skip_stale(pos - STALE_STEPS))
        self.out.send_due(now)  # timed sends first: the engine may take a model step below
        if self.clock.running:
            if (swap := self.swaps.pending.take(pos)) is not None:
                self._do_swap(pos, *swap)
            if pos >= self._hold_until:
                self._advance(now, pos)
            self.out.metronome_due(pos)
        elif (swap := self.swaps.pending.take(math.inf)) is not None:
            self._do_swap(pos, *swap)
        self.out.send_due(self.timer())
        if self.clock_out is not None:
            self.clock_out.send_due(self.timer())
        if now >= self._prefetch_at:
            self._prefetch(sent=False)
        if now >= self.feedback.next_due:
            self.update_status(now, force=self._echo_due)
            self._echo_due = False

    def _advance(self, now: float, pos: float) -> None:
        """Advance the engine to the position it asks for (its ``next_due``) once that is due or
        within ``early``; between those positions it is not called, so its decisions do not
        depend on how often the conductor happens to wake."""
        target = self.engine.next_due()
        if target is None:
            return
        if target > pos:
            t = self.clock.time_of(target)
            if t is None or t + self.opt.latency_offset - now > self.opt.early + 1e-9:
                return
            # computed now, sent from the schedule at its exact time
        else:
            target = pos
        t0 = self.timer()
        outs = self.engine.advance(target)
        if outs and min(o.pos for o in outs) < pos - STALE_STEPS:  # the conductor was stalled
            fresh = [o for o in outs if o.pos >= pos - STALE_STEPS or not is_note_on(o.msg)]
            self.counters["skipped"] += len(outs) - len(fresh)
            self._skipped(len(outs) - len(fresh))
            outs = fresh
        if outs:
            self.step_times.append(self.timer() - t0)
            late = [o for o in outs if o.pos <= pos]
            if late:
                self.out.record_wake(late[0].pos)
        self.out.emit(outs, pos, timed=True)
        self._prefetch(bool(outs))

    def _skipped(self, n: int) -> None:  # a stall made them stale: skipped, not played late
        self.message = f"conductor was stalled: skipped {n} stale note(s)" if n else self.message

    def _prefetch(self, sent: bool) -> None:
        """Let the engine's workers start on what comes next: ``prefetch_after`` after a send
        (once JACK has delivered it; a table build takes a core for a few ms), else now unless a
        deferred start is pending. Each send puts the start off again, but never more than
        ``PREFETCH_MAX_WAIT`` past the first deferral (a dense run still gets tables ahead)."""
        now = self.timer()
        if sent and self.opt.prefetch_after > 0:
            if self._prefetch_at == math.inf:
                self._prefetch_since = now
            self._prefetch_at = min(now + self.opt.prefetch_after,
                                    self._prefetch_since + PREFETCH_MAX_WAIT)
        elif now >= self._prefetch_at or self._prefetch_at == math.inf:
            self._prefetch_at = math.inf
            self.engine.prefetch()

    def shutdown(self, now: float) -> None:
        """Exit path: the engine's releases, pending note-offs, then anything still sounding."""
        try:
            self.out.send_now(self.engine.release_all(self.clock.position(now)))
        except Exception:  # the engine may be the reason we stop; the ledger still works
            log.exception("engine.release_all failed at shutdown; using the note ledger")
        self.out.drop_pending()
        self.out.flush_all()
        if self.clock_out is not None:
            try:
                self.clock_out.stop()
            except Exception:  # the port may be gone; the notes are already off
                log.exception("sending MIDI clock Stop at exit failed")

    def update_status(self, now: float, force: bool = False) -> None:
        """Take a status snapshot; echo what changed to the publisher when forced or on a beat."""
        self.feedback.refresh(now, self.engine, self.clock, force, learn=getattr(
            self.ccmap, "learning", None), step_p99_ms=p99(self.step_times) * 1e3,
            message=self.message, errors=sum(self.errors.values()), **self.input_counts(),
            **self.counters)
