"""The one-line live status of `liveduet run`: in place on a terminal, else a log line."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
OCTAVE_NAMES = ("c4", "c3")
"""Which octave number middle C (MIDI 60) carries: C4 (scientific, Logic, MuseScore) or C3
(Ableton Live, Cubase, FL Studio)."""
LOG_EVERY = 10.0


def note_name(pitch: int, octave_names: str = "c4") -> str:
    """MIDI pitch -> name with octave (60 -> C4, or C3 with ``octave_names='c3'``)."""
    shift = 2 if octave_names == "c3" else 1
    return f"{NAMES[pitch % 12]}{pitch // 12 - shift}"


def _notes(value: Any, octave_names: str = "c4") -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return note_name(value, octave_names)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [note_name(v, octave_names) if isinstance(v, int) else str(v)
                 for v in list(value)[-4:]]
        return " ".join(items) or "-"
    return str(value)


def _find(status: Mapping[str, Any], *words: str) -> Any:
    for key, value in status.items():
        if all(w in key for w in words):
            return value
    return None


def format_status(status: Mapping[str, Any], octave_names: str = "c4") -> str:
    """One line: mode, tempo, phase, last notes, step latency p99, errors, flood drops."""
    parts = [
        f"{status.get('mode', '?')}",
        f"{status.get('bpm', 0):.1f} bpm {status.get('meter', '4/4')}"
        + ("" if status.get("running", True) else " (stopped)")
        + ("" if status.get("peers") is None else f" link {status['peers']} peer(s)"),
        f"{status.get('phase', '?')}",
        f"you: {_notes(_find(status, 'human'), octave_names)}",
        f"me: {_notes(_find(status, 'machine'), octave_names)}",
        f"step p99 {status.get('step_p99_ms', 0.0):.2f} ms",
    ]
    if status.get("errors"):
        parts.append(f"errors {status['errors']}")
    if status.get("dropped"):  # a flood (OSC past the rate, MIDI past the queue bound)
        parts.append(f"dropped {status['dropped']}")
    if status.get("message"):
        parts.append(str(status["message"]))
    return " | ".join(parts)


class StatusLine:
    """Writes the status: in place (``\\r``) on a TTY, else a log line when it changes."""

    def __init__(self, stream: TextIO, tty: bool | None = None,
                 octave_names: str = "c4") -> None:
        self.stream = stream
        self.octave_names = octave_names
        self.tty = stream.isatty() if tty is None else tty
        self._last = ""
        self._last_time = -LOG_EVERY
        self.gone = False   # writing failed once (a closed terminal): shows nothing more

    def show(self, status: Mapping[str, Any], now: float | None = None) -> None:
        """Show ``status`` (rate of change is the caller's)."""
        if self.gone:
            return
        line = format_status(status, self.octave_names)
        key = line.split(" | step p99")[0]  # latency alone changing is not news in a log
        now = time.monotonic() if now is None else now
        try:
            if self.tty:
                width = shutil.get_terminal_size((100, 20)).columns - 1
                self.stream.write("\r\x1b[K" + line[:width])
                self.stream.flush()
            elif key != self._last or now - self._last_time >= LOG_EVERY:
                self.stream.write(line + "\n")
                self.stream.flush()
                self._last_time = now
        except (OSError, ValueError):  # the terminal went away (SIGHUP follows): stop showing
            self.gone = True
        self._last = key

    def close(self) -> None:
        """End the in-place line."""
        if self.tty and self._last and not self.gone:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed terminal: nothing to end
                pass
