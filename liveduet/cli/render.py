"""``liveduet render`` (a duet against a MIDI file's part) and ``liveduet generate``."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import mido

from liveduet.cli.model import load_model
from liveduet.cli.options import add_in_channel, check_channel, listen_gap_steps, setting_help
from liveduet.core import catalog
from liveduet.core.clock import DEFAULT_BPM
from liveduet.core.codec import TimedNote
from liveduet.core.engine import Engine
from liveduet.core.metre import MetreMap
from liveduet.core.settings import FIELD_BY_NAME, FIELDS, Settings, coerce, with_mode_defaults
from liveduet.errors import ConfigError
from liveduet.offline import midifile
from liveduet.offline.render import Duet, pick_part, render, write

SHORT = {"top_p": "top-p", "listen_gap": "listen-gap", "channel": "out-channel"}
SKIP = ("mode", "bpm", "seed", "temperature")
LIVE_ONLY = ("thru", "listen_gap", "response_bars", "response_min_bars", "response_max_bars")
"""Settings about trading phrases with a player or passing notes through: generate has
neither (it continues a primer or plays from nothing), so its help leaves them out."""


def register(sub: Any) -> None:
    """Add ``render`` and ``generate``."""
    p = sub.add_parser("render", help="play a duet offline against the human part of a MIDI file",
                       description="Run the engine in virtual time against the human part of "
                       "IN.mid and write a type-1 MIDI file: the human's track and the "
                       "machine's track(s). The same seed gives the same bytes.")
    p.add_argument("input", type=Path, metavar="IN.mid", help="MIDI file with the human part")
    p.add_argument("--mode", default="call", help="call (default) | continue | harmonize | off")
    p.add_argument("--track", type=int, help="track index of the human part (0 = the file's "
                   "first track; default: the first track with notes)")
    add_in_channel(p, "the human part is the notes on this channel (1-16)", old="--channel")
    p.add_argument("--tail-bars", type=float, help="bars to render after the human part "
                   "(default: response_max_bars in call/continue, 0 in harmonize/off)")
    _common(p)
    p.set_defaults(func=render_command)
    g = sub.add_parser("generate", help="write a piece from scratch (or continue a primer)",
                       description="Let the model play on its own in virtual time and write "
                       "a MIDI file of --bars bars: from nothing, or continuing the first track "
                       "with notes of --primer (written as the first track). The same seed "
                       "gives the same bytes.")
    g.add_argument("--bars", type=float, required=True, help="bars to generate")
    g.add_argument("--primer", type=Path, help="MIDI file whose first track with notes starts "
                   "the piece")
    _common(g, skip=LIVE_ONLY)
    g.set_defaults(func=generate_command)


def _common(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mid")
    p.add_argument("--model", help="bundled model name or .onnx path (default: "
                   f"{catalog.DEFAULT_MELODY}; {catalog.DEFAULT_HARMONY} for harmonize)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--bpm", type=float, help="tempo of the output (default: the input's)")
    p.add_argument("--temperature", default=None, help="sampling temperature (0.05..2)")
    p.add_argument("--lookahead", type=int, default=0, help="steps planned ahead as live "
                   "(default 0: the output is the same for any lookahead, only slower)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the piano roll "
                   "(needs the plot extra)")
    for f in FIELDS:
        if f.name in SKIP or f.name in skip:
            continue
        flag = "--" + SHORT.get(f.name, f.name.replace("_", "-"))
        if f.kind == "bool":
            p.add_argument(flag, dest="set_" + f.name, action=argparse.BooleanOptionalAction,
                           default=None, help=f.help)
        else:
            p.add_argument(flag, dest="set_" + f.name, metavar=f.name.upper(),
                           help=setting_help(f))


def build_settings(args: argparse.Namespace, mode: str, steps_per_beat: int,
                   meter: str | None = None) -> Settings:
    """Settings from the command line (render writes no thru: the human track is the input);
    ``meter`` is the input file's metre, which ``--meter`` overrides."""
    values: dict[str, Any] = {"mode": mode, "seed": args.seed, "thru": False}
    if meter is not None:
        values["meter"] = meter
    if getattr(args, "set_meter", None) is not None:
        values["meter"] = args.set_meter
    if args.temperature is not None:
        values["temperature"] = args.temperature
    for f in FIELDS:
        value = getattr(args, "set_" + f.name, None)
        if f.name in SKIP or value is None:
            continue
        if f.name == "listen_gap":
            value = listen_gap_steps(value, steps_per_beat, values.get("meter", "4/4"))
        values[f.name] = value
    return Settings.from_dict(with_mode_defaults(values))


def _file_metres(args: argparse.Namespace, mid: mido.MidiFile, spq: int
                 ) -> tuple[MetreMap | None, str | None]:
    """The file's time signatures and its first metre's name, unless ``--meter`` overrides
    them (then neither)."""
    if args.set_meter is not None:
        return None, None
    metres = midifile.read_metres(mid, spq)
    if metres is None:
        return None, None
    first = metres.changes[0].metre.label
    return metres, (first if first in FIELD_BY_NAME["meter"].choices else None)


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse tempo, lengths and lookahead that are not finite or out of range (one line)."""
    if args.bpm is not None:
        coerce("bpm", args.bpm)  # the settings table's tempo range; 0 is not "the file's"
    for flag, value, high in (("--bars", getattr(args, "bars", None), 10_000.0),
                              ("--tail-bars", getattr(args, "tail_bars", None), 10_000.0)):
        if value is not None and (not math.isfinite(value) or not 0 <= value <= high
                                  or (flag == "--bars" and value == 0)):
            low = "more than 0" if flag == "--bars" else "0"
            raise ConfigError(f"{flag} {value!r}; give a number of bars from {low} to {high:g}")
    if not 0 <= args.lookahead <= 1024:
        raise ConfigError(f"--lookahead {args.lookahead}; give steps from 0 to 1024")


def render_command(args: argparse.Namespace) -> int:
    """``liveduet render IN.mid -o OUT.mid``."""
    channel = check_channel("--in-channel", args.in_channel)
    mode = coerce("mode", args.mode)
    _check_numbers(args)
    mid = midifile.load(args.input)
    notes = pick_part(mid, args.track, None if channel is None else channel - 1)
    bpm = args.bpm if args.bpm is not None else midifile.tempo_bpm(mid)
    model = load_model(args.model, mode)
    spq = model.codec.steps_per_beat
    metres, meter = _file_metres(args, mid, spq)
    settings = build_settings(args, mode, spq, meter)
    engine = Engine(model, settings, lookahead=args.lookahead, metres=metres)
    return _finish(args, engine, notes, bpm, args.tail_bars)


def generate_command(args: argparse.Namespace) -> int:
    """``liveduet generate -o OUT.mid --bars N``: the machine plays on from a primer or BOS."""
    _check_numbers(args)
    notes: list[TimedNote] = []
    bpm = args.bpm if args.bpm is not None else DEFAULT_BPM
    model = load_model(args.model, "continue")
    spq = model.codec.steps_per_beat
    metres, meter = None, None
    if args.primer is not None:
        mid = midifile.load(args.primer)
        notes = pick_part(mid, None, None)
        bpm = args.bpm if args.bpm is not None else midifile.tempo_bpm(mid)
        metres, meter = _file_metres(args, mid, spq)
    settings = build_settings(args, "continue", spq, meter)
    engine = Engine(model, settings, lookahead=args.lookahead, metres=metres)
    return _finish(args, engine, notes, bpm, args.bars)


def _finish(args: argparse.Namespace, engine: Engine, notes: list[TimedNote], bpm: float,
            tail: float | None) -> int:
    t0 = time.perf_counter()
    duet = render(engine, notes, tail_bars=tail)
    took = time.perf_counter() - t0
    write(duet, args.output, bpm)
    print(summary(duet, args.output, took))
    if args.plot is not None:
        from liveduet.offline.plot import plot_duet

        plot_duet(duet, args.plot, title=f"{args.output.name} ({engine.settings.mode}, "
                  f"seed {engine.settings.seed}, {engine.status()['model']})")
        print(f"piano roll: {args.plot}")
    return 0


def summary(duet: Duet, path: Path, took: float) -> str:
    """One line about a render."""
    c = duet.status.get("counters", {})
    machine = sum(len(n) for n in duet.machine.values())
    chans = ", ".join(f"{duet.voice_names[v]} ch {ch + 1}" for v, ch in duet.channels.items())
    bars = len(duet.bar_lines()) - 1
    meter = duet.status.get("meter", "4/4")
    return (f"wrote {path}: {bars} bars of {meter}, human {len(duet.human)} notes, machine "
            f"{machine} notes ({chans or 'silent'}); answers {c.get('answers', 0)}, "
            f"barge-ins {c.get('barge_ins', 0)}, rollbacks {c.get('rollbacks', 0)}; "
            f"{c.get('steps', 0)} steps in {took:.2f} s")
