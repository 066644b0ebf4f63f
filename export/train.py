"""Train an :class:`~export.model.LstmLM` on a cached corpus: progress bar, checkpoints, resume.

Usage::

    python -m export.train --corpus melody --run export/runs/folk_melody --hidden 256
    python -m export.train ... --resume          # continue from RUN/last.pt

With ``--position N`` the model gets an N-dim embedding of each input's ``metre-v1`` position
id (from the corpus cache, see :mod:`export.data` for which step an input's id describes).
``--max-shift all --every-shift`` trains every epoch on each piece in every key its voices'
ranges allow. Validation NLL (teacher-forced, whole pieces from BOS, original keys) is
measured after every epoch; ``best.pt`` keeps the best; training stops after ``--patience``
epochs without gain or when ``--minutes`` is spent.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.corpus import load
from export.data import ALL_SHIFTS, Batcher, feasible_shifts, input_positions, pad, sequence
from export.model import LstmLM, ModelConfig
from liveduet.core.codec import N_SPECIAL, GridCodec


@torch.no_grad()
def nll_stats(model: LstmLM, codec: GridCodec, pieces: list[np.ndarray],
              shifts: list[int] | None = None, batch_tokens: int = 16384,
              positions: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Teacher-forced NLL (nats) of whole pieces from BOS: per token, per note and per voice.

    A "note" is a NOTE_ON target token; ``nll_per_note`` is the total NLL of every scored
    token divided by the number of notes. ``positions`` (per piece, per step) feed a model
    with a position input.
    """
    model.eval()
    seqs = [sequence(codec, p, s) for p, s in zip(pieces, shifts or [0] * len(pieces),
                                                   strict=True)]
    pos_seqs = None if positions is None or not model.has_position else [
        input_positions(codec, p) for p in positions]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total, notes, tokens = 0.0, 0, 0
    voice_nll = np.zeros(codec.n_voices)
    voice_tok = np.zeros(codec.n_voices)
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and (j - i + 1) * len(seqs[order[j]]) <= batch_tokens:
            j += 1
        inputs, targets, mask, pos = pad([seqs[k] for k in order[i:j]], None if pos_seqs is None
                                         else [pos_seqs[k] for k in order[i:j]])
        h, c = model.zero_state(inputs.shape[0])
        logits, _, _ = model(inputs, h, c, pos)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        nll = nll.masked_fill(~mask, 0.0)
        total += float(nll.sum())
        tokens += int(mask.sum())
        notes += int(((targets >= N_SPECIAL) & mask).sum())
        voice = (torch.arange(targets.shape[1]) % codec.n_voices).expand_as(targets)
        for v in range(codec.n_voices):
            sel = (voice == v) & mask
            voice_nll[v] += float(nll[sel].sum())
            voice_tok[v] += int(sel.sum())
        i = j
    return {"nll_per_token": total / tokens, "nll_per_note": total / max(notes, 1),
            "tokens": tokens, "notes": notes,
            "nll_per_voice": {v.name: voice_nll[k] / max(voice_tok[k], 1)
                              for k, v in enumerate(codec.voices)}}


def transposed_shifts(codec: GridCodec, pieces: list[np.ndarray], max_shift: int = 6,
                      seed: int = 1234) -> list[int]:
    """One deterministic random feasible shift per piece (the "any key" validation)."""
    rng = np.random.default_rng(seed)
    return [int(rng.choice(feasible_shifts(codec, p, max_shift))) for p in pieces]


def _shift(text: str) -> int:
    return ALL_SHIFTS if text == "all" else int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the trainer."""
    p = argparse.ArgumentParser(prog="python -m export.train", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="cache name under export/runs/corpus")
    p.add_argument("--run", required=True, help="run folder (checkpoints, history.json)")
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--cap-steps", type=int, default=128, help="max steps per training segment")
    p.add_argument("--max-shift", type=_shift, default=5,
                   help="transposition range +-semitones, or 'all' (any that fits the ranges)")
    p.add_argument("--every-shift", action="store_true",
                   help="each epoch takes every piece in every feasible key (not one random key)")
    p.add_argument("--position", type=int, default=0,
                   help="position embedding dims (0: no position input)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--minutes", type=float, default=40.0, help="stop after this much training")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    p.add_argument("--init", help="start from the weights of this checkpoint (fine-tuning)")
    return p.parse_args(argv)


def _save(path: Path, model: LstmLM, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.cfg.to_json(), "model": model.state_dict(),
                "optim": opt.state_dict(), "state": state}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> tuple[LstmLM, dict[str, Any]]:
    """A trained model (eval mode) and its training state from a checkpoint file."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = LstmLM(ModelConfig(**ck["config"]))
    model.load_state_dict(ck["model"])
    return model.eval(), ck["state"]


def _train_epoch(model: LstmLM, opt: torch.optim.Optimizer, batcher: Batcher, desc: str,
                 deadline: float) -> float:
    from tqdm import tqdm

    model.train()
    loss_sum = n_sum = 0.0
    bar = tqdm(batcher.epoch(), total=batcher.n_batches(), desc=desc, mininterval=10)
    for inputs, targets, mask, pos in bar:
        h, c = model.zero_state(inputs.shape[0])
        logits, _, _ = model(inputs, h, c, pos)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        n = mask.sum()
        loss = nll.masked_fill(~mask, 0.0).sum() / n
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_sum += float(loss.detach()) * int(n)
        n_sum += int(n)
        bar.set_postfix(loss=f"{loss_sum / n_sum:.3f}")
        if time.time() > deadline:
            break
    return loss_sum / max(n_sum, 1)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run training as ``args`` say; return the final state (history, best metrics)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    corpus = load(args.corpus)
    codec = corpus.codec
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    train_p, valid_p = corpus.split(False), corpus.split(True)
    if not train_p or not valid_p:
        raise ValueError(f"corpus {args.corpus!r} has {len(train_p)} training and "
                         f"{len(valid_p)} validation pieces; it needs both (add more pieces)")
    train_pos = corpus.split_positions(False) if args.position else None
    valid_pos = corpus.split_positions(True) if args.position else None
    cfg = ModelConfig(codec.vocab_size, args.embed, args.hidden, args.layers, args.dropout,
                      args.position)
    model = LstmLM(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu",
                                         weights_only=False)["model"])
    state: dict[str, Any] = {"epoch": 0, "best": math.inf, "bad": 0, "history": [],
                             "seconds": 0.0, "args": vars(args)}
    if args.resume and (run / "last.pt").exists():
        ck = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        state = ck["state"]
        print(f"resumed at epoch {state['epoch']} (best valid {state['best']:.4f})")
    batcher = Batcher(codec, train_p, cap_steps=args.cap_steps, batch_tokens=args.batch_tokens,
                      max_shift=args.max_shift, seed=args.seed + state["epoch"],
                      positions=train_pos, every_shift=args.every_shift)
    deadline = time.time() + args.minutes * 60 - state["seconds"]
    while state["epoch"] < args.epochs and state["bad"] < args.patience:
        t0 = time.time()
        loss = _train_epoch(model, opt, batcher, f"epoch {state['epoch'] + 1}", deadline)
        val = nll_stats(model, codec, valid_p, positions=valid_pos)
        state["seconds"] += time.time() - t0
        state["epoch"] += 1
        state["history"].append({"epoch": state["epoch"], "train_nll": loss,
                                 "valid": val, "seconds": round(state["seconds"], 1),
                                 "lr": opt.param_groups[0]["lr"]})
        print(f"epoch {state['epoch']}: train {loss:.4f} valid/token "
              f"{val['nll_per_token']:.4f} valid/note {val['nll_per_note']:.4f}", flush=True)
        if val["nll_per_token"] < state["best"] - 1e-4:
            state["best"], state["bad"] = val["nll_per_token"], 0
            _save(run / "best.pt", model, opt, state)
        else:
            state["bad"] += 1
            for g in opt.param_groups:
                g["lr"] *= 0.5
        _save(run / "last.pt", model, opt, state)
        if time.time() > deadline:
            break
    return _finish(run, codec, valid_p, state, valid_pos)


def _finish(run: Path, codec: GridCodec, valid_p: list[np.ndarray], state: dict[str, Any],
            valid_pos: list[np.ndarray] | None) -> dict[str, Any]:
    model, best_state = load_checkpoint(run / "best.pt")
    summary = {"epochs": state["epoch"], "train_seconds": round(state["seconds"], 1),
               "best_epoch": best_state["epoch"], "config": model.cfg.to_json(),
               "args": state["args"], "history": state["history"],
               "valid": nll_stats(model, codec, valid_p, positions=valid_pos),
               "valid_transposed": nll_stats(model, codec, valid_p,
                                             transposed_shifts(codec, valid_p),
                                             positions=valid_pos)}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("epochs", "train_seconds", "valid",
                                              "valid_transposed")}, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
