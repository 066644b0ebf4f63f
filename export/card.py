"""The model card: JSON inside the ONNX metadata (``liveduet.card``) and ``models/<name>.md``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import onnx

from export.corpus import load
from export.data import ALL_SHIFTS
from export.onnx_export import set_metadata
from export.presets import LICENCE_NOTES, MUSIC21_LICENCE, Preset

NOTE_DEF = ("NLL in nats, teacher-forced on the validation split (pieces never trained on), "
            "each piece from BOS. per token: mean over every scored token (all voices); per note: "
            "the same total NLL divided by the number of NOTE_ON tokens scored.")


def _corpus_text(preset: Preset, summary: dict[str, Any], user: str | None) -> str:
    if user:
        return f"user MIDI folder {user}: {summary['pieces']} pieces"
    colls = summary["collections"]
    parts = [f"{c} ({colls[c]['used']} pieces)" for c in preset.collections if c in colls]
    return "music21 corpus: " + ", ".join(parts)


def corpus_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """``metrics["corpus"]``: note-ons per beat of the metre and note lengths in beats, overall
    and per metre (one voice) or per voice, from the cache's figures."""
    figures = summary.get("figures")
    if not figures:
        return {}
    keep = ("notes_per_beat", "hold_beats_p99", "hold_beats_p999", "hold_beats_max")
    out: dict[str, Any] = {k: figures["all"].get(k) for k in keep}
    for group in ("metres", "voices"):
        if group in figures:
            out[group] = {name: {k: f.get(k) for k in keep}
                          for name, f in figures[group].items() if f.get("notes")}
    return out


def transposition_text(args: dict[str, Any]) -> str:
    """How a run transposed its training pieces."""
    if args.get("max_shift") == ALL_SHIFTS:
        per = "every feasible key each epoch" if args.get("every_shift") else "a random key"
        return f"any shift keeping every voice in its range ({per})"
    return f"+-{args['max_shift']} semitones (feasible shifts only)"


def _metrics(choice: dict[str, Any], baseline: dict[str, Any], runs: dict[str, Any]
             ) -> dict[str, Any]:
    base = baseline["best"]
    gain = 1 - choice["nll_per_note"] / base["nll_per_note"]
    variant = runs[choice["variant"]][1]
    return {
        "valid_nll_per_token": round(choice["nll_per_token"], 4),
        "valid_nll_per_note": round(choice["nll_per_note"], 4),
        "valid_nll_per_voice": {k: round(v, 4) for k, v in choice["nll_per_voice"].items()},
        "valid_tokens": choice["tokens"], "valid_notes": choice["notes"],
        "valid_transposed_nll_per_token": round(variant["valid_transposed"]["nll_per_token"], 4),
        "baseline": f"interpolated Kneser-Ney {baseline['best_order']}-gram on the same split",
        "baseline_nll_per_token": round(base["nll_per_token"], 4),
        "baseline_nll_per_note": round(base["nll_per_note"], 4),
        "improvement_per_note": round(gain, 4),
        "step_p50_us": round(choice["p50_us"], 1), "step_p99_us": round(choice["p99_us"], 1),
        "step_p99_least_disturbed_us": round(choice["p99_min_us"], 1),
        "bytes": choice["bytes"], "weights": choice["weights"],
        "definition": NOTE_DEF,
    }


def build_card(preset: Preset, cache: str, choice: dict[str, Any], baseline: dict[str, Any],
               runs: dict[str, Any], rebuild: str, user: str | None) -> dict[str, Any]:
    """The card JSON stored in the model's metadata."""
    summary = load(cache).summary
    variant = runs[choice["variant"]][1]
    licence = (f"user-supplied MIDI from {user}; check its licence" if user else
               MUSIC21_LICENCE + " " + " ".join(LICENCE_NOTES[c] for c in preset.collections))
    return {
        "title": preset.title, "corpus": _corpus_text(preset, summary, user),
        "licence": licence, "rebuild": rebuild,
        "metrics": {**_metrics(choice, baseline, runs), "corpus": corpus_metrics(summary)},
        "training": {"config": variant["config"], "epochs": variant["epochs"],
                     "best_epoch": variant["best_epoch"], "seconds": variant["train_seconds"],
                     "transposition": transposition_text(variant["args"]),
                     "position": variant["config"].get("position", 0),
                     "framework": "PyTorch 2.13.0 CPU",
                     "init": variant["args"].get("init"), "choice": preset.choice},
        "split": summary["valid_rule"], "built": dt.date.today().isoformat(),
    }


def write_card(preset: Preset, cache: str, choice: dict[str, Any], table: list[dict[str, Any]],
               baseline: dict[str, Any], runs: dict[str, Any], rebuild: str, out: Path,
               user_corpus: str | None = None) -> dict[str, Any]:
    """Write the chosen ONNX with its final card to ``out`` and the card as ``out.md``."""
    card = build_card(preset, cache, choice, baseline, runs, rebuild, user_corpus)
    proto = onnx.load(choice["path"])
    set_metadata(proto, load(cache).codec, card)
    onnx.save(proto, str(out))
    summary = load(cache).summary
    out.with_suffix(".md").write_text(markdown(preset, card, table, baseline, runs, summary))
    return card


def markdown(preset: Preset, card: dict[str, Any], table: list[dict[str, Any]],
             baseline: dict[str, Any], runs: dict[str, Any], summary: dict[str, Any]) -> str:
    """The human-readable card."""
    m, t = card["metrics"], card["training"]
    lines = [f"# {preset.name}: {card['title']}", "", f"Rebuild: `{card['rebuild']}`", "",
             "## Corpus", "", card["corpus"] + ".", f"Split: {card['split']}.", "",
             "| collection | pieces | used | failed | too short | wrong parts | duplicates | "
             "steps | encode report |", "|---|---|---|---|---|---|---|---|---|"]
    for c, s in summary["collections"].items():
        lines.append(f"| {c} | {s['pieces']} | {s['used']} | {s['failed']} | {s['too_short']} | "
                     f"{s['wrong_parts']} | {s['duplicates']} | {s['steps']} | "
                     f"{json.dumps(s['report'])} |")
    lines += _metre_lines(summary)
    lines += ["", "## Licence notes", "", card["licence"], "", "## Quality (validation split)",
              "", NOTE_DEF, "",
              "| model | NLL/token | NLL/note | baseline NLL/token | baseline NLL/note | "
              "improvement/note |", "|---|---|---|---|---|---|",
              f"| {preset.name} ({m['weights']}) | {m['valid_nll_per_token']} | "
              f"{m['valid_nll_per_note']} | {m['baseline_nll_per_token']} | "
              f"{m['baseline_nll_per_note']} | {m['improvement_per_note']:.1%} |", "",
              f"Per voice NLL/token: {m['valid_nll_per_voice']}. Validation transposed to a "
              f"random feasible key (+-6): {m['valid_transposed_nll_per_token']} NLL/token.", "",
              "Baseline orders (fit on train, scored on validation; the best is quoted):", "",
              "| order | NLL/token | NLL/note |", "|---|---|---|"]
    for k, v in baseline["orders"].items():
        lines.append(f"| {k} | {v['nll_per_token']:.4f} | {v['nll_per_note']:.4f} |")
    lines += ["", "## Candidates (size, speed, quality)", "",
              "Shipped: the fastest (median p50) candidate whose NLL/token is within 1% of the "
              "best fp32 model. Timing: check-model's single-step loop, 1 thread, 9 interleaved "
              "rounds of 3000 steps on a 2-core machine shared with other jobs: median p50, "
              "median p99 and the least-disturbed round's p99.", "",
              "| variant | weights | hidden x layers | NLL/token | NLL/note | bytes | p50 us | "
              "p99 us | p99 least disturbed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['variant']} | {r['weights']} | {r['hidden']}x{r['layers']} | "
                     f"{r['nll_per_token']:.4f} | {r['nll_per_note']:.4f} | {r['bytes']} | "
                     f"{r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p99_min_us']:.1f} |")
    lines += ["", "## Training", "", "| run | hidden x layers | transposition | position dims | "
              "epochs | minutes | valid NLL/token | transposed valid NLL/token |",
              "|---|---|---|---|---|---|---|---|"]
    for name, (_run, s) in runs.items():
        lines.append(f"| {name} | {s['config']['hidden']}x{s['config']['layers']} | "
                     f"{_shift_cell(s['args'])} | {s['config'].get('position', 0)} | "
                     f"{s['epochs']} | "
                     f"{s['train_seconds'] / 60:.1f} | {s['valid']['nll_per_token']:.4f} | "
                     f"{s['valid_transposed']['nll_per_token']:.4f} |")
    lines += ["", f"Choice: {preset.choice}", "",
              f"Shipped run: {t['config']}, {t['epochs']} epochs (best {t['best_epoch']}), "
              f"{t['seconds'] / 60:.1f} min on a shared 2-core CPU, transposition "
              f"{t['transposition']}."
              + (f" Input: tokens and a {t['position']}-dim embedding of the metre-v1 position "
                 "id of the step each input predicts (liveduet.position)." if t.get("position")
                 else ""), ""]
    return "\n".join(lines)


def _shift_cell(args: dict[str, Any]) -> str:
    if args.get("max_shift") == ALL_SHIFTS:
        return "all feasible" + (", every key each epoch" if args.get("every_shift") else "")
    return f"+-{args['max_shift']}"


def _metre_lines(summary: dict[str, Any]) -> list[str]:
    """Time signatures per collection and the figures table (note-ons per beat, lengths)."""
    figures = summary.get("figures")
    if not figures:
        return []
    lines = ["", "Time signatures (pieces naming each; a piece may name several, including the "
             "short ones music21's ABC reader gives the overflow of an over-long bar; 'none': "
             "no time signature, positions in 4/4, music21's default):", ""]
    for c, s in summary["collections"].items():
        ts = sorted(s.get("time_signatures", {}).items(), key=lambda kv: -kv[1])
        lines.append(f"- {c}: " + ", ".join(f"{k} {v}" for k, v in ts))
    lines += ["", "Notes per beat of the metre (note-ons / beats; a compound metre's beat is "
              "dotted) and note lengths in beats (each note's onset plus held steps, in beats "
              "of the metre it starts in), all pieces of both splits; with several voices, "
              "beats count once per voice:", "",
              "| part | notes | beats | notes/beat | length p99 | length p99.9 | length max |",
              "|---|---|---|---|---|---|---|"]
    rows = [("all voices" if "voices" in figures else "all", figures["all"])]
    rows += [(f"metre {k}", v) for k, v in figures.get("metres", {}).items()]
    rows += [(f"voice {k}", v) for k, v in figures.get("voices", {}).items()]
    for name, f in rows:
        if not f.get("notes"):
            lines.append(f"| {name} | 0 | {f['beats']} | - | - | - | - |")
            continue
        lines.append(f"| {name} | {f['notes']} | {f['beats']} | {f['notes_per_beat']} | "
                     f"{f['hold_beats_p99']} | {f['hold_beats_p999']} | {f['hold_beats_max']} |")
    return lines
