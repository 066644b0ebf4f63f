"""``liveduet demo``: hear what liveduet does without any MIDI system.

A built-in call goes through the same engine as ``liveduet run``, in virtual time, with the
bundled model; the call and the machine's part are printed as note names and a small piano roll,
and the duet is written as a MIDI file (and a PNG piano roll when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liveduet.cli.status import OCTAVE_NAMES, note_name
from liveduet.core import catalog
from liveduet.core.codec import TimedNote

# A two-bar folk-like call in C major (start beat, MIDI pitch, end beat): rises to the fifth,
# turns, and ends on the tonic, so an answer has a phrase to reply to.
CALL: tuple[tuple[float, int, float], ...] = (
    (0.0, 60, 0.5), (0.5, 62, 1.0), (1.0, 64, 1.5), (1.5, 65, 2.0), (2.0, 67, 3.0),
    (3.0, 64, 4.0), (4.0, 65, 4.5), (4.5, 64, 5.0), (5.0, 62, 6.0), (6.0, 60, 7.5),
)
DEMO_SEED = 2        # its answer trades the call's motion and resolves to the tonic
ROLL_STEP = 0.5      # beats per piano-roll column (an eighth note)
ROLL_MAX_ROWS = 24


def register(sub: Any) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="hear liveduet answer a built-in phrase (no MIDI needed)",
                       description="Play a built-in two-bar call through the engine with the "
                       "bundled model, in virtual time: no MIDI system, DAW or keyboard needed. "
                       "Prints the call and liveduet's part as note names and a piano roll, "
                       "writes the duet as a MIDI file (and a PNG when matplotlib is "
                       "installed), then says how to play live.")
    p.add_argument("--mode", default="call", help="call (default: liveduet answers) or "
                   "harmonize (liveduet sings alto, tenor and bass under the call)")
    p.add_argument("-o", "--output", type=Path, default=Path("liveduet-demo.mid"),
                   metavar="OUT.mid", help="where to write the duet (default liveduet-demo.mid)")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed (another seed, "
                   f"another answer; default {DEMO_SEED})")
    p.add_argument("--no-plot", dest="plot", action="store_false",
                   help="do not write the PNG piano roll even when matplotlib is installed")
    p.add_argument("--octave-names", choices=OCTAVE_NAMES, default="c4",
                   help="middle C (MIDI 60) is C4 (default) or C3 (Ableton, Cubase)")
    p.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    """Render the built-in call, print it and the answer, write the files."""
    from liveduet.core.engine import Engine
    from liveduet.core.model import StepModel
    from liveduet.core.settings import Settings, coerce
    from liveduet.offline.render import render, write

    mode = coerce("mode", args.mode)
    if mode not in ("call", "harmonize"):
        from liveduet.errors import ConfigError

        raise ConfigError(f"demo --mode {args.mode!r}; choose call or harmonize")
    name = catalog.DEFAULT_HARMONY if mode == "harmonize" else catalog.DEFAULT_MELODY
    model = StepModel(catalog.resolve(name))
    settings = Settings(mode=mode, seed=args.seed, thru=False,
                        temperature=0.7 if mode == "harmonize" else 0.9)
    call = [TimedNote(s, p, e) for s, p, e in CALL]
    duet = render(Engine(model, settings, lookahead=0), call,
                  tail_bars=None if mode == "call" else 0.0)
    write(duet, args.output, settings.bpm)
    names = args.octave_names
    print(f"liveduet demo: {mode} with '{model.title}' ({name}), {settings.bpm:g} bpm, 4/4, "
          f"seed {args.seed}")
    print(f"  you (the call)  {note_line(call, names)}")
    for v, notes in duet.machine.items():
        print(f"  liveduet {duet.voice_names[v]:<6} {note_line(notes, names)}")
    print()
    print(piano_roll(call, [n for ns in duet.machine.values() for n in ns], duet.bar_lines(),
                     names))
    print()
    print(f"wrote {args.output} (track 1: you, then liveduet; open it in any DAW or player)")
    png = args.output.with_suffix(".png")
    if args.plot and importlib.util.find_spec("matplotlib") is not None:
        from liveduet.offline.plot import plot_duet

        plot_duet(duet, png, title=f"liveduet demo ({mode}, seed {args.seed})")
        print(f"wrote {png} (piano roll)")
    print("play live: 'liveduet run', then send a MIDI track or keyboard to 'liveduet in' and "
          "listen on 'liveduet out'\n(no MIDI system on Linux? start JACK: "
          "'jackd -d dummy -r 48000 -p 64 &' then 'liveduet run --api jack'; "
          "see README.md and docs/daw-setup.md)")
    return 0


def note_line(notes: Sequence[TimedNote], octave_names: str = "c4") -> str:
    """Note names in time order, ``|`` at each 4/4 bar line."""
    out: list[str] = []
    bar = 0
    for n in sorted(notes, key=lambda n: (n.start, n.pitch)):
        while n.start >= (bar + 1) * 4 - 1e-9:
            bar += 1
            out.append("|")
        out.append(note_name(n.pitch, octave_names))
    return " ".join(out) or "(silent)"


def piano_roll(call: Sequence[TimedNote], machine: Sequence[TimedNote], bars: Sequence[float],
               octave_names: str = "c4") -> str:
    """A text piano roll: one row per pitch (high at the top), one column per eighth note;
    ``#`` is the call, ``o`` liveduet, ``=`` a held note, ``|`` a bar line."""
    notes = [(n, "#") for n in call] + [(n, "o") for n in machine]
    if not notes:
        return "(no notes)"
    end = max(n.end for n, _ in notes)
    cols = int(end / ROLL_STEP + 0.999)
    pitches = sorted({n.pitch for n, _ in notes}, reverse=True)
    top = pitches[0]
    low = max(pitches[-1], top - ROLL_MAX_ROWS + 1)
    bar_cols = {round(b / ROLL_STEP) for b in bars}
    lines = []
    for pitch in range(top, low - 1, -1):
        row = ["|" if c in bar_cols else " " for c in range(cols)]
        for n, mark in notes:
            if n.pitch != pitch:
                continue
            first = round(n.start / ROLL_STEP)
            last = max(first + 1, round(n.end / ROLL_STEP))
            for c in range(first, min(last, cols)):
                row[c] = mark if c == first else "="
        lines.append(f"{note_name(pitch, octave_names):>4} {''.join(row)}")
    lines.append("     # you   o liveduet   = held   | bar line   (one column = an eighth)")
    return "\n".join(lines)
