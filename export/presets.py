"""What each shipped model is trained on and how: one preset per bundled model."""

from __future__ import annotations

from dataclasses import dataclass

MUSIC21_LICENCE = (
    "music21's corpus/license.txt: the music21 creators assume no copyright or change in "
    "licensing for corpus content; encodings are distributed with the encoders' permission "
    "and, to the best of their knowledge, are out of copyright in the US or licensed for use, "
    "'though there may be restrictions on commercial use'; they 'may or may not be free in "
    "your jurisdiction'. The music21 corpus docs (music21.corpus): music21 'does not own "
    "most of the music in the corpus - it has been licensed to us (or in a free license). It "
    "may not be free in all parts of the world, but to the best of our knowledge is true for "
    "the US.'"
)
LICENCE_NOTES = {
    "essenFolksong": "corpus/essenFolksong/license.txt: 'The legal status of the Essen folksong "
                     "database is unclear'; Ewa Dahlig-Turek gave permission for NON-COMMERCIAL "
                     "distribution and use in music21; ABC encodings by Seymour Schlien, "
                     "distributed by his permission. (Most of this model's training data is "
                     "Essen: check before any commercial use.)",
    "ryansMammoth": "Ryan's Mammoth Collection (published 1883); ABC transcriptions "
                    "contributed by volunteers (Z: lines, e.g. Ray Davies); music21 ships no "
                    "separate licence file for it.",
    "airdsAirs": "James Aird's Selection of Scotch, English, Irish and Foreign Airs (1778-); ABC "
                 "by Jack Campin (Z: line, 2009); music21 ships no separate licence file for it.",
    "miscFolk": "American fife music and Northumbrian Minstrelsy ABC files (header comments name "
                "the transcriber); music21 ships no separate licence file for it.",
    "bach": "J.S. Bach four-part chorales (18th-century music); music21's encodings; music21 "
            "ships no separate licence file for them.",
}


@dataclass(frozen=True)
class Preset:
    """How to build one model: corpus, card title, trainer arguments per run (in order).

    Every run is trained (a later run may start from an earlier one's weights); the runs named
    in ``ship`` are exported as fp32 and int8 candidates, the rest are studies reported in the
    card; ``{run_prefix}`` in an argument is the run folder prefix of this model (so a run can
    start from an earlier run's ``best.pt``). ``choice`` says in words why ``ship`` is what it is.
    """

    name: str
    kind: str
    title: str
    collections: tuple[str, ...]
    runs: dict[str, list[str]]
    ship: tuple[str, ...]
    choice: str = ""
    ngram_orders: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 11)


_MELODY = ["--layers", "1", "--cap-steps", "256", "--batch-tokens", "16384"]
_CHORALE = ["--hidden", "256", "--layers", "2", "--dropout", "0.3", "--cap-steps", "64",
            "--patience", "4", "--epochs", "200"]
_POSITION = ["--position", "16"]  # metre-v1 position embedding dims

PRESETS = {
    "folk_melody": Preset(
        "folk_melody", "melody", "Folk melody co-performer (LSTM, one voice, 16th grid)",
        ("essenFolksong", "ryansMammoth", "airdsAirs", "miscFolk"),
        runs={
            "h128p": ["--hidden", "128", "--embed", "48", "--dropout", "0.05", "--max-shift", "5",
                      "--minutes", "45", *_POSITION, *_MELODY],
        },
        ship=("h128p",),
        choice="one run: hidden 128 x 1 with a 16-dim metre-v1 position embedding, "
               "transposition +-5 (feasible shifts). Candidates: its fp32 and int8 exports; "
               "the fastest (median p50) within 1% of the best fp32 ships.",
    ),
    "chorale_satb": Preset(
        "chorale_satb", "chorale",
        "Bach chorale harmoniser (LSTM, soprano given, alto/tenor/bass sampled, 16th grid)",
        ("bach",),
        runs={
            "pos0": ["--max-shift", "0", "--minutes", "35", *_POSITION, *_CHORALE],
            "posall": ["--init", "{run_prefix}pos0/best.pt", "--max-shift", "all",
                       "--every-shift", "--lr", "1e-3", "--minutes", "25", *_POSITION,
                       *_CHORALE],
        },
        ship=("posall",),
        choice="pos0 learns the original keys first; posall fine-tunes its weights at lr 1e-3 "
               "on every piece in every key that keeps all four voices in their ranges, every "
               "epoch, so the model stays good in the original keys and becomes key-robust.",
        ngram_orders=(2, 4, 6, 8, 9, 10),
    ),
}
