"""What each shipped model is trained on and how: one preset per bundled model."""

from __future__ import annotations

from dataclasses import dataclass, field

MUSIC21_LICENCE = (
    "music21's corpus/license.txt: the music21 creators assume no copyright or change in "
    "licensing for corpus content; encodings are distributed with the encoders' permission "
    "and, to the best of their knowledge, are out of copyright in the US or licensed for use, "
    "'though there may be restrictions on commercial use'; they 'may or may not be free in "
    "your jurisdiction'."
)
LICENCE_NOTES = {
    "essenFolksong": "corpus/essenFolksong/license.txt: 'The legal status of the Essen folksong "
                     "database is unclear'; Ewa Dahlig-Turek gave permission for non-commercial "
                     "distribution and use in music21; ABC encodings by Seymour Shlien, "
                     "distributed by his permission.",
    "ryansMammoth": "Ryan's Mammoth Collection (1883, public domain tunes); ABC transcriptions "
                    "contributed by volunteers (Z: lines, e.g. Ray Davies); no separate "
                    "licence file in music21.",
    "airdsAirs": "James Aird's Selection of Scotch, English, Irish and Foreign Airs (1778-); ABC "
                 "by Jack Campin (Z: line, 2009); no separate licence file in music21.",
    "miscFolk": "American fife music and Northumbrian Minstrelsy ABC files (header comments name "
                "the transcriber); no separate licence file in music21.",
    "bach": "J.S. Bach four-part chorales (18th c., public domain music); music21's encodings; "
            "no separate licence file in music21.",
}


@dataclass(frozen=True)
class Preset:
    """How to build one model: corpus kind, card title and trainer arguments per variant."""

    name: str
    kind: str
    title: str
    collections: tuple[str, ...]
    variants: dict[str, list[str]]
    studies: dict[str, list[str]] = field(default_factory=dict)
    ngram_orders: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 11)
    speed_rule: bool = True


PRESETS = {
    "folk_melody": Preset(
        "folk_melody", "melody", "Folk melody co-performer (LSTM, one voice, 16th grid)",
        ("essenFolksong", "ryansMammoth", "airdsAirs", "miscFolk"),
        variants={
            "h256": ["--hidden", "256", "--embed", "64", "--layers", "1", "--dropout", "0.1",
                     "--max-shift", "5", "--cap-steps", "256", "--minutes", "35",
                     "--batch-tokens", "16384"],
            "h128": ["--hidden", "128", "--embed", "48", "--layers", "1", "--dropout", "0.05",
                     "--max-shift", "5", "--cap-steps", "256", "--minutes", "35",
                     "--batch-tokens", "16384"],
        },
        studies={"h128_noaug": ["--hidden", "128", "--embed", "48", "--layers", "1",
                                "--dropout", "0.05", "--max-shift", "0", "--cap-steps", "256",
                                "--minutes", "12", "--batch-tokens", "16384"]},
    ),
    "chorale_satb": Preset(
        "chorale_satb", "chorale",
        "Bach chorale harmoniser (LSTM, soprano given, alto/tenor/bass sampled, 16th grid)",
        ("bach",),
        variants={"aug6": ["--hidden", "256", "--layers", "2", "--dropout", "0.3",
                           "--max-shift", "6", "--cap-steps", "64", "--minutes", "35",
                           "--patience", "4", "--epochs", "200"]},
        studies={"aug0": ["--hidden", "256", "--layers", "2", "--dropout", "0.3",
                          "--max-shift", "0", "--cap-steps", "64", "--minutes", "35",
                          "--patience", "4", "--epochs", "200"]},
        ngram_orders=(2, 4, 6, 8, 9, 10),
    ),
}
