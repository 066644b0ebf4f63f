"""The live runtime: one thread waits, drains, hands everything to the conductor, spins, sends.

MIDI input callbacks only enqueue a :class:`~liveduet.core.events.Midi` (with the
``time.perf_counter`` stamp taken in the callback); OSC and mapped CC commands wait in a
:class:`~liveduet.live.mailbox.ControlBox` (coalesced per setting, taken at a bounded rate) so
control traffic never delays a note: the thread drains every queued MIDI message first, then
takes the commands. The MIDI queue is bounded: past ``MAX_QUEUED`` waiting messages new
note-ons and controllers are dropped (counted), note-offs and transport never.

Everything musical happens in the :class:`~liveduet.core.conductor.Conductor`; this thread only
decides *when*: it sleeps on the queue until shortly before the conductor's next wake-up, then
spins for the last fraction of a millisecond, releasing the GIL on every turn, so due messages
leave on time; how long it spins follows how late its recent sleeps woke
(:class:`liveduet.live.rtthread.SpinBudget`). While it runs, the GIL switch interval is 0.2 ms: the
MIDI callback runs on the JACK thread and must never wait a whole JACK period for the GIL.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from liveduet.core.clock import Clock
from liveduet.core.clockout import ClockOutput
from liveduet.core.conductor import Conductor, Options
from liveduet.core.events import WAKE, Control, Event, Loaded, Midi
from liveduet.core.feedback import Publisher
from liveduet.core.sender import SendAt, SendMany, one_by_one
from liveduet.core.settings import Command
from liveduet.live import rtthread
from liveduet.live.mailbox import ControlBox
from liveduet.live.rtthread import Tuning
from liveduet.live.workers import Workers

log = logging.getLogger("liveduet.live.runtime")
IDLE_WAKE = 0.5
START_LEAD = 0.1  # seconds from start() to the internal clock's step 0: time to plan step 0
MAX_QUEUED = 20_000   # MIDI messages waiting for the conductor (4 s at 5,000/s) before drops
HOLD_SPIN = 0.00004  # the end of a spin does not yield the GIL (one yield takes ~10-30 µs)


def _ends(msg: Sequence[int]) -> bool:
    """Note-offs (and note-on velocity 0) and system messages: never dropped under a flood."""
    if not msg:
        return False
    kind = msg[0] & 0xF0
    return msg[0] >= 0xF0 or kind == 0x80 or (kind == 0x90 and len(msg) > 2 and msg[2] == 0)


def load_in_thread(loader: Callable[[str], Any], name: str,
                   put: Callable[[Loaded], None]) -> None:
    """Load ``name`` on a daemon thread; ``put`` gets the model or the error that stopped it."""
    def work() -> None:
        try:
            put(Loaded(name, loader(name), None))
        except Exception as err:  # any load failure is reported, the old model plays on
            put(Loaded(name, None, err))

    threading.Thread(target=work, name="liveduet-loader", daemon=True).start()


class Runtime:
    """Owns the conductor thread; everything else talks to it through :meth:`on_midi` and
    :meth:`submit`."""

    def __init__(self, engine: Any, clock: Clock,
                 send: Callable[[Sequence[int]], None], options: Options | None = None, *,
                 publisher: Publisher | None = None, ccmap: Any = None,
                 loader: Callable[[str], Any] | None = None,
                 send_many: SendMany | None = None,
                 clock_out: ClockOutput | None = None,
                 tuning: Tuning | None = None, workers: Workers | None = None,
                 send_at: SendAt | None = None) -> None:
        self.engine = engine
        self.workers = workers   # the engine's helper threads, ended with the conductor
        self.tuning = tuning or Tuning()
        self.queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self.controls = ControlBox(lambda: self.queue.put(WAKE))
        self.midi_dropped = 0   # input refused past MAX_QUEUED (callback thread only)
        put = self.queue.put
        load = None if loader is None else (lambda name: load_in_thread(loader, name, put))
        self.conductor = Conductor(
            engine, clock, send_many or one_by_one(send, time.perf_counter),
            options or Options(), time.perf_counter, publisher=publisher, ccmap=ccmap,
            defer=self.controls.put, load=load, clock_out=clock_out, send_at=send_at,
            input_counts=lambda: {"dropped": self.dropped(),
                                  "coalesced": self.controls.coalesced})
        self.spin = rtthread.SpinBudget(self.tuning.spin, adaptive=self.tuning.adaptive_spin)
        self._restore: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.failed: BaseException | None = None

    @property
    def publisher(self) -> Publisher | None:
        """Where state changes are echoed (settable until :meth:`start`)."""
        return self.conductor.feedback.publisher

    @publisher.setter
    def publisher(self, value: Publisher | None) -> None:
        self.conductor.feedback.publisher = value

    @property
    def ccmap(self) -> Any:
        """The controller map (MIDI learn) the conductor applies."""
        return self.conductor.ccmap

    @property
    def opt(self) -> Options:
        """The conductor's timing options."""
        return self.conductor.opt

    @property
    def snapshot(self) -> dict[str, Any]:
        """The latest status (engine status plus tempo, counters, message), for displays."""
        return self.conductor.feedback.snapshot

    @property
    def message(self) -> str:
        """The latest notice (a refused value, a model playing, a stall)."""
        return self.conductor.message

    @property
    def errors(self) -> dict[str, int]:
        """Errors the conductor survived, by where and kind."""
        return self.conductor.errors

    # -- thread-safe entry points ---------------------------------------------------------
    def on_midi(self, t: float, msg: tuple[int, ...], idx: int = 0) -> None:
        """MIDI input callback: only enqueue (past ``MAX_QUEUED`` waiting, only what ends)."""
        if self.queue.qsize() >= MAX_QUEUED and not _ends(msg):
            self.midi_dropped += 1
            return
        self.queue.put(Midi(t, msg))

    def submit(self, cmd: Command) -> None:
        """Control callback (OSC, tests): into the control box (latest value per setting)."""
        self.controls.put(cmd)

    def dropped(self) -> int:
        """Messages dropped under a flood: MIDI past ``MAX_QUEUED``, OSC past the server's
        rate limit (its ``dropped``, when the publisher is the OSC server)."""
        return self.midi_dropped + int(getattr(self.publisher, "dropped", 0) or 0)

    def start(self) -> None:
        """Start the conductor thread; a clock liveduet leads reaches step 0 ``START_LEAD``
        from now."""
        self.conductor.start(time.perf_counter() + START_LEAD)
        self._restore = rtthread.tune_process(self.tuning.switch_interval)
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
                self.conductor.out.flush_all()
            self._thread = None
        if self._restore is not None:
            self._restore()
            self._restore = None

    # -- the conductor thread -------------------------------------------------------------
    def _run(self) -> None:
        for why in rtthread.tune_thread(self.tuning.realtime):
            if self.tuning.realtime and "real-time" in why:
                log.warning("--realtime: %s", why)
        try:
            self._loop()
        except BaseException as err:  # a bug in the runtime itself: end cleanly, report
            self.failed = err
            log.exception("conductor stopped by an internal error")
        finally:
            self.conductor.shutdown(time.perf_counter())
            if self.workers is not None:
                self.workers.close()
            self.done.set()

    def _loop(self) -> None:
        get, perf, budget, conductor = self.queue.get, time.perf_counter, self.spin, self.conductor
        while True:
            now = perf()
            due = conductor.wake(now)
            if self.controls and (ready := self.controls.ready_at(now)) is not None:
                due = min(due, ready)
            asked = min(due - now - budget.seconds, IDLE_WAKE)
            try:
                item = get(timeout=asked) if asked > 0 else self.queue.get_nowait()
            except queue.Empty:
                item = WAKE
                if asked > 0:
                    budget.woke(perf() - now - asked)
            events, stopping = self._drain(item)
            if events:
                conductor.handle(perf(), events)
            if stopping:
                return
            if self.controls:
                self._take_controls(perf())
            self._spin(perf)
            conductor.tick(perf())

    def _drain(self, item: Event | None) -> tuple[list[Event], bool]:
        """``item`` and everything queued behind it, in order (wake-ups left out); True when
        the stop item came."""
        events: list[Event] = []
        while item is not None:
            if item is not WAKE:
                events.append(item)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return events, False
        return events, True

    def _take_controls(self, now: float) -> None:
        """Hand over the commands the control box's rate allows now, one at a time, and only
        while no MIDI waits: a note that arrives meanwhile is drained before the next one."""
        empty, take = self.queue.empty, self.controls.take
        while empty() and (got := take(now, 1)):
            self.conductor.handle(now, [Control(got[0])])

    def _spin(self, perf: Callable[[], float]) -> None:
        """Busy-wait for what is due within the spin budget; the messages due then are taken
        from the schedule first and leave the moment the wait ends (back to back). Input
        arriving meanwhile ends the wait at once: they go back to the schedule. Only sends
        need this precision: engine work is asked ``early``, status and prefetch are not timed."""
        out, clock_out = self.conductor.out, self.conductor.clock_out
        end = out.due_time()
        tick = clock_out.due_time() if clock_out is not None else None
        if tick is not None and (end is None or tick < end):
            end = tick
        if end is None or end - perf() > self.spin.seconds:
            return
        ready = out.take_due(end)
        empty = self.queue.empty
        if self.tuning.yield_spin:
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
                out.send_batch(ready)
            else:
                out.put_back(ready)
        if clock_out is not None:
            clock_out.send_due(perf())

    def stats(self) -> dict[str, Any]:
        """Counters, send errors, engine call durations and reactions (s), for --stats.

        ``wake_errors_s``: actual minus intended send time of every grid-timed message;
        ``wake_first_s``: of the first message of each send (the conductor's wake-up error).
        ``clock_out_errors_s``: actual minus intended send time of each MIDI clock out send.
        A reaction is input callback -> first answer sent (both in this process); its parts are
        (callback -> conductor, engine, send). Each kind keeps the latest ``keep_samples``.
        """
        c = self.conductor
        return {"counters": {**c.counters, "dropped": self.dropped(),
                             "coalesced": self.controls.coalesced},
                "errors": dict(c.errors),
                "wake_errors_s": list(c.out.wake_errors),
                "wake_first_s": list(c.out.wake_first), "step_times_s": list(c.step_times),
                "reactions_s": list(c.reactions),
                "reaction_parts_s": [list(p) for p in c.reaction_parts],
                "queue_delays_s": list(c.delays),
                "clock_out_errors_s": list(c.clock_out.errors) if c.clock_out else []}
