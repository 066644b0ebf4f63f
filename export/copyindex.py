"""Build a model's copy index from the training split of its corpus.

``python -m export.copyindex folk_melody`` reads the tokenised corpus cache
(``python -m export.corpus melody`` writes it), takes the training pieces (never the
validation split) and writes ``models/folk_melody.copy.npz``; see :mod:`liveduet.core.copyindex`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from export.corpus import Corpus, load
from export.presets import PRESETS
from liveduet.core.codec import GridCodec
from liveduet.core.copyindex import ORDER, CopyIndex
from liveduet.core.motifs import PNote, phrase_of

MODELS = Path(__file__).resolve().parent.parent / "models"


def melody(codec: GridCodec, frames: np.ndarray, voice: int = 0) -> list[PNote]:
    """The notes of one voice of a tokenised piece, as a phrase."""
    return phrase_of((n.start, n.end - n.start, n.pitch) for n in codec.decode(frames)
                     if n.voice == voice)


def pieces(corpus: Corpus, valid: bool) -> list[tuple[str, list[PNote]]]:
    """(piece id, melody) of the training (``valid`` False) or validation split."""
    codec = corpus.codec
    return [(pid, melody(codec, frames))
            for pid, frames, v in zip(corpus.ids, corpus.pieces, corpus.valid, strict=True)
            if bool(v) == valid]


def build(model: str, order: int = ORDER, out: Path | None = None) -> Path:
    """Write ``<out or models>/<model>.copy.npz`` and its section in the model's card (when
    the card is there); return the index path."""
    preset = PRESETS[model]
    corpus = load(preset.kind)
    index = CopyIndex.build(pieces(corpus, valid=False), order, corpus.codec.steps_per_beat)
    path = (out or MODELS) / f"{model}.copy.npz"
    index.save(path)
    card = path.parent / f"{model}.md"
    if card.exists():
        card.write_text(with_section(card.read_text(), card_section(model, path, index)))
    return path


def card_section(model: str, path: Path, index: CopyIndex) -> str:
    """The card's "Copy index" section: what the index holds and its size."""
    return (f"## Copy index\n\n`{path.name}`: {path.stat().st_size} bytes, {index.hashes.size} "
            f"distinct {index.order}-note (interval, onset interval) grams of the "
            f"{len(index.names)} training pieces (never the validation split), each with its "
            f"piece. Used by `liveduet check-copy` and the critic's `max_copy` guard. Rebuild: "
            f"`python -m export.copyindex {model}`.\n")


def with_section(text: str, section: str) -> str:
    """``text`` with its "## Copy index" section replaced by (or ended with) ``section``."""
    head, sep, tail = text.partition("## Copy index")
    if not sep:
        return text.rstrip("\n") + "\n\n" + section
    rest = tail.split("\n## ", 1)
    return head + section + ("\n## " + rest[1] if len(rest) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    """``python -m export.copyindex MODEL [--order N] [--out DIR]``."""
    p = argparse.ArgumentParser(prog="python -m export.copyindex",
                                description=__doc__.split("\n")[0])
    p.add_argument("model", choices=sorted(PRESETS))
    p.add_argument("--order", type=int, default=ORDER, help="gram length in notes")
    p.add_argument("--out", type=Path, help="folder (default: models/)")
    args = p.parse_args(argv)
    path = build(args.model, args.order, args.out)
    index = CopyIndex.load(path)
    print(f"{path}: {path.stat().st_size} bytes, {index.hashes.size} grams of order "
          f"{index.order} from {len(index.names)} training pieces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
