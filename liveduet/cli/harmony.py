"""``liveduet check-harmony FILE.mid``: the voice-leading report of a four-part MIDI file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import mido

from liveduet.core.codec import TimedNote
from liveduet.core.metre import Metre
from liveduet.core.voiceleading import analyse, format_report
from liveduet.errors import LiveduetError
from liveduet.offline import midifile

HOW = ("export soprano, alto, tenor and bass as four tracks of a type-1 MIDI file (or four "
       "channels of one track), one voice each")


def register(sub: Any) -> None:
    """Add the ``check-harmony`` subcommand to ``sub``."""
    p = sub.add_parser("check-harmony", help="voice-leading report of a four-part MIDI file",
                       description="Parallel fifths and octaves per 100 chord transitions, "
                       "stepwise motion, semitone clashes, key, chords, crossings, spacing and "
                       "ranges of a four-voice MIDI file (four tracks or four channels; the "
                       "highest voice is the soprano), with the bar and beat of every fault.")
    p.add_argument("file", type=Path, metavar="FILE.mid", help="four-part MIDI file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Print the report of ``args.file``; 0 when it ran (bad input exits 2 via the CLI)."""
    mid = midifile.load(args.file)
    voices = four_voices(mid, str(args.file))
    report = analyse(voices, file_metre(mid))
    if args.json:
        print(json.dumps({"file": str(args.file), **report.as_dict()}, indent=2,
                         sort_keys=True))
    else:
        print(format_report(report, str(args.file)))
    return 0


def four_voices(mid: mido.MidiFile, name: str) -> list[list[TimedNote]]:
    """The file's four voices, highest (by mean pitch) first: four tracks, else four channels.

    Raises LiveduetError saying how to export the file when it does not hold four voices.
    """
    tracks = [notes for i in range(len(mid.tracks))
              if (notes := midifile.read_notes(mid, i))]
    if len(tracks) != 4:
        channels = _note_channels(mid)
        if len(channels) != 4:
            raise LiveduetError(
                f"{name}: found {len(tracks)} tracks and {len(channels)} channels with notes; "
                f"check-harmony needs four voices: {HOW}")
        tracks = [midifile.read_notes(mid, None, ch) for ch in channels]
    tracks.sort(key=lambda part: -sum(n.pitch for n in part) / len(part))
    return [[TimedNote(n.start, n.pitch, n.end, v, n.velocity) for n in part]
            for v, part in enumerate(tracks)]


def _note_channels(mid: mido.MidiFile) -> list[int]:
    """Channels (0-15) that carry at least one note-on."""
    return sorted({msg.channel for track in mid.tracks for msg in track
                   if msg.type == "note_on" and msg.velocity > 0})


def file_metre(mid: mido.MidiFile) -> Metre:
    """The first time signature of the file (4/4 when it has none)."""
    for track in mid.tracks:
        for msg in track:
            if msg.type == "time_signature":
                try:
                    return Metre(msg.numerator, msg.denominator)
                except LiveduetError:
                    return Metre()
    return Metre()
