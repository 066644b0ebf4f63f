"""The fault tests' harness: ``liveduet run`` on a private JACK server with a scripted model
that answers C5 eighth notes, a keyboard, a DAW port and a spy receiver."""


from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rtmidi

from liveduet.core.codec import REST, melody_codec
from liveduet.testkit.jack import JackServer, release, stop_process, wait_for
from liveduet.testkit.midicheck import Sounding

ANSWER = 72
ROOT = Path(__file__).resolve().parents[2]
RUN = ["--no-osc", "--quiet", "--no-thru", "--bpm", "240", "--listen-gap", "2",
       "--answer-at", "gap", "--response-bars", "1", "--seed", "1"]


def _table(nan_after_answer: bool = False) -> np.ndarray:
    codec = melody_codec()
    table = np.full((codec.vocab_size, codec.vocab_size), -50.0, np.float32)
    on = codec.note_on(ANSWER)
    table[:, on] = 50.0
    table[on, :] = -50.0
    table[on, 1] = 50.0  # HOLD after the note-on: eighth notes
    if nan_after_answer:
        table[on, :] = np.nan  # the step after each answer note: NaN logits -> REST
        table[REST, :] = -50.0
        table[REST, on] = 50.0
    return table


class Receiver:
    """A JACK MIDI input that stamps and keeps everything it receives."""

    def __init__(self, client: str) -> None:
        self.got: list[tuple[float, tuple[int, ...]]] = []
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client)
        self.port.set_callback(lambda ev, _d: self.got.append((time.perf_counter(),
                                                               tuple(ev[0]))))
        self.port.open_virtual_port("in")
        self.name = f"{client}:in"

    def answers(self, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.got) if t >= since and m[0] & 0xF0 == 0x90
                and m[1] == ANSWER and m[2] > 0]

    def quiet(self, seconds: float) -> bool:
        """Nothing sounds and nothing came for ``seconds`` (a retrigger's off+on is µs apart)."""
        got = list(self.got)
        return bool(got) and not self.sounding() and time.perf_counter() - got[-1][0] > seconds

    def sounding(self) -> set[tuple[int, int]]:
        track = Sounding()
        track.take_all(m for _, m in list(self.got))
        assert track.problems == []
        return track.keys


class Live:
    """``liveduet run`` on ``jack`` with a keyboard and a DAW track wired to it."""

    def __init__(self, jack: JackServer, model: Path, *args: str, spy: bool = False,
                 inputs: tuple[str, ...] = ()) -> None:
        self.jack = jack
        cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", str(model),
               *RUN, *args]
        for name in inputs:
            cmd += ["--in", name]
        self.proc = subprocess.Popen(cmd, env=jack.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.keys: rtmidi.MidiOut | None = None
        self.daw: Receiver | None = None
        self.spy: Receiver | None = None
        try:
            if not inputs:
                self.keys = self.plug_keys()
            self.out = jack.find_port(":liveduet out", 20.0)
            self.daw = Receiver("daw")
            jack.connect(self.out, self.daw.name)
            self.spy = Receiver("spy") if spy else None
            if self.spy is not None:
                jack.connect(self.out, self.spy.name)
            self.wait_line("Ctrl-C to stop", 30.0)
        except BaseException:
            # a half-started instance left running (or its clients left open) would make
            # every later test's port names ambiguous ('liveduet-01', 'keys-01')
            self.close()
            raise

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def plug_keys(self, client: str = "keys") -> rtmidi.MidiOut:
        keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        keys.open_virtual_port("out")
        self.jack.connect(f"{client}:out", self.jack.find_port(":liveduet in", 20.0))
        return keys

    def wait_line(self, text: str, timeout: float = 10.0) -> str:
        def hit() -> str | None:
            if self.proc.poll() is not None and not self.reader.is_alive():
                raise AssertionError(f"liveduet exited {self.proc.returncode}: {self.lines}")
            return next((ln for ln in list(self.lines) if text in ln), None)
        try:
            return str(wait_for(hit, timeout, 0.02, f"liveduet to print {text!r}"))
        except TimeoutError as err:
            raise AssertionError(f"{err}; liveduet printed: {self.lines}") from None

    def call(self, pitch: int = 60, keys: rtmidi.MidiOut | None = None) -> float:
        """Play one short note; return when it started."""
        keys = keys or self.keys
        assert keys is not None
        t = time.perf_counter()
        keys.send_message([0x90, pitch, 100])
        time.sleep(0.05)
        keys.send_message([0x80, pitch, 0])
        return t

    def finish(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        try:
            if not stop_process(self.proc, sig):
                raise TimeoutError(f"liveduet did not exit within 15 s of signal {sig}")
        finally:
            self.reader.join(5)
        return self.proc.returncode, "\n".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        release(self.keys, *(r.port for r in (self.daw, self.spy) if r is not None))
        self.keys = self.daw = self.spy = None
