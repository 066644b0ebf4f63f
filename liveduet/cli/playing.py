"""The foreground of ``liveduet run``: the status line, port and JACK watching, MIDI learn
saving, warnings and the exit status, while the conductor thread plays."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from liveduet.cli import learnstore
from liveduet.cli.status import StatusLine
from liveduet.core.settings import Settings
from liveduet.errors import ConfigError, LiveduetError
from liveduet.live import ports, signals
from liveduet.live.runtime import Runtime
from liveduet.offline import outfile

CHECK_S = 0.25
NAMED_CHECK_S = 1.0
EXIT_LOST = 3
"""Exit status when the MIDI system (the JACK server) went away during the run."""


def play(rt: Runtime, portset: ports.PortSet, model: Any, opts: dict[str, Any],
         settings: Settings) -> int:
    """Run until a stop signal; show the status; watch the ports and the JACK server.

    Returns 0 after SIGINT/SIGTERM/SIGHUP (a second one while stopping changes nothing), 1 when
    the conductor crashed, EXIT_LOST when the MIDI system (the JACK server) went away.
    """
    stop = signals.STOP
    line = None if opts["quiet"] else StatusLine(sys.stdout, octave_names=opts["octave_names"])
    learnt = LearnSaver(rt.ccmap, opts.get("config_path"))
    lost: ports.SystemLost | None = None
    warned: set[str] = set()
    next_named = time.monotonic() + NAMED_CHECK_S
    rt.start()
    say(f"liveduet: {settings.mode} with '{model.title}'; in {portset.input_names} -> out "
        f"'{portset.output_name}'; clock {opts['clock']}{_clock_out_text(opts, portset)}. "
        "Ctrl-C to stop.")
    while not stop.wait(CHECK_S) and not rt.done.is_set():
        if line is not None:
            line.show(rt.snapshot)
        _warn_once(rt.snapshot, warned)
        learnt.check()
        named = time.monotonic() >= next_named
        next_named += NAMED_CHECK_S if named else 0.0
        try:
            reports = portset.check(named)
        except ports.SystemLost as err:
            lost = err
            break
        for report in reports:
            say(f"liveduet: {report}")
    rt.stop()
    if line is not None:
        line.close()
    if lost is not None:
        say(f"liveduet: error: {lost}")
        return EXIT_LOST
    if rt.failed is not None:
        say(f"liveduet: error: the conductor stopped ({rt.failed}); all notes were released")
        return 1
    return 0


class LearnSaver:
    """Saves the CC map when a MIDI learn finished (checked from the status loop)."""

    def __init__(self, ccmap: Any, config: Path | None) -> None:
        self.ccmap = ccmap
        self.path = learnstore.target(config)
        self._seen = getattr(ccmap, "learned", None)

    def check(self) -> None:
        """Write the bindings if a new learn finished since the last check."""
        learned = getattr(self.ccmap, "learned", None)
        if learned is None or learned is self._seen:
            return
        self._seen = learned
        channel, cc, target = learned
        try:
            learnstore.save(self.path, self.ccmap.to_toml_text())
        except ConfigError as err:
            say(f"liveduet: warning: {err}")
            return
        say(f"liveduet: learnt CC {cc} on channel {channel} -> {target}; saved to {self.path}")


def say(text: str) -> None:
    """One line on stderr; a terminal that went away (SIGHUP, ssh drop) is not an error."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _clock_out_text(opts: dict[str, Any], portset: ports.PortSet) -> str:
    out = opts["clock_out"]
    if out is None:
        return ""
    return f", MIDI clock out on '{out or portset.output_name}'"


def _warn_once(status: dict[str, Any], warned: set[str]) -> None:
    """Print each engine warning (e.g. NaN logits fell back to silence) the first time."""
    for text in status.get("warnings", ()):
        if text not in warned:
            warned.add(text)
            say(f"liveduet: warning: {text}; playing on")


def write_stats(rt: Runtime, path: Path, portset: Any = None) -> None:
    """Dump :meth:`Runtime.stats` (and the ports' own, when they keep any) as JSON."""
    stats = rt.stats()
    if portset is not None and hasattr(portset, "stats"):
        stats["ports"] = portset.stats()
    try:
        outfile.write_bytes(path, json.dumps(stats).encode())
    except LiveduetError as err:  # the notes are already released: say it, exit as planned
        say(f"liveduet: error: {err}")
