"""The one-line live status of `liveduet run`: in place on a terminal, else a log line."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
LOG_EVERY = 10.0


def note_name(pitch: int) -> str:
    """MIDI pitch -> name with octave (60 -> C4)."""
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def _notes(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return note_name(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [note_name(v) if isinstance(v, int) else str(v) for v in list(value)[-4:]]
        return " ".join(items) or "-"
    return str(value)


def _find(status: Mapping[str, Any], *words: str) -> Any:
    for key, value in status.items():
        if all(w in key for w in words):
            return value
    return None


def format_status(status: Mapping[str, Any]) -> str:
    """One line: mode, tempo, phase, last notes, step latency p99, errors."""
    parts = [
        f"{status.get('mode', '?')}",
        f"{status.get('bpm', 0):.1f} bpm {status.get('meter', '4/4')}"
        + ("" if status.get("running", True) else " (stopped)")
        + ("" if status.get("peers") is None else f" link {status['peers']} peer(s)"),
        f"{status.get('phase', '?')}",
        f"you: {_notes(_find(status, 'human'))}",
        f"me: {_notes(_find(status, 'machine'))}",
        f"step p99 {status.get('step_p99_ms', 0.0):.2f} ms",
    ]
    if status.get("errors"):
        parts.append(f"errors {status['errors']}")
    if status.get("message"):
        parts.append(str(status["message"]))
    return " | ".join(parts)


class StatusLine:
    """Writes the status: in place (``\\r``) on a TTY, else a log line when it changes."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._last = ""
        self._last_time = -LOG_EVERY

    def show(self, status: Mapping[str, Any], now: float | None = None) -> None:
        """Show ``status`` (rate of change is the caller's)."""
        line = format_status(status)
        key = line.split(" | step p99")[0]  # latency alone changing is not news in a log
        now = time.monotonic() if now is None else now
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + line[:width])
            self.stream.flush()
        elif key != self._last or now - self._last_time >= LOG_EVERY:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_time = now
        self._last = key

    def close(self) -> None:
        """End the in-place line."""
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
