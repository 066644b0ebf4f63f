"""Per-step latency of StepModel against the alternatives, interleaved in one run.

Variants (same weights, one token per step, batch 1):
  stepmodel      liveduet.core.model.StepModel.step (IOBinding ping-pong, tuned session options)
  bare-iobind    the bare ``run_with_iobinding`` call on StepModel's own session and bindings,
                 so the wrapper's Python overhead is the difference to ``stepmodel``
  default-opts   the same IOBinding scheme on a session with default SessionOptions
                 (all cores, spinning): shows what the tuned options buy
  plain-run      ``InferenceSession.run`` with numpy feeds/fetches and default options
  torch-eager    the same architecture in PyTorch eager (only when torch is installed and
                 the model is a factory LSTM whose weights are known)

Rounds run every variant for a block of steps in a shuffled order, so drift in machine load
hits all variants alike. Prints p50/p99 in microseconds and ratios to ``stepmodel``.

    python benchmarks/bench_step.py                    # factory LSTM, hidden 256
    python benchmarks/bench_step.py --model folk_melody
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveduet.core import catalog
from liveduet.core.codec import REST, melody_codec
from liveduet.core.model import StepModel

Step = Callable[[], object]


def stepmodel_variant(model: StepModel) -> Step:
    return lambda: model.step(REST)


def bare_variant(model: StepModel) -> Step:
    bound = model._b  # the benchmark measures the wrapper, so it may look inside
    sess, bindings = model.session, bound.bindings
    flip = [0]

    def run() -> None:
        sess.run_with_iobinding(bindings[flip[0]])
        flip[0] ^= 1
    return run


def default_opts_variant(path: str) -> Step:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    model = StepModel(path)  # borrow its buffer layout, rebind on the default session
    model.session = sess
    model._bound.clear()
    model._b = model._binding(1)
    return lambda: model.step(REST)


def plain_run_variant(path: str) -> Step:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    states = [i for i in sess.get_inputs() if i.name != "tokens"]
    feeds: dict[str, np.ndarray] = {
        i.name: np.zeros([1 if isinstance(d, str) or d is None else d for d in i.shape],
                         dtype=np.float32) for i in states}
    names = ["logits"] + [i.name + "_out" for i in states]
    tok = np.array([[REST]], dtype=np.int64)

    def run() -> None:
        outs = sess.run(names, {"tokens": tok, **feeds})
        for i, arr in zip(states, outs[1:], strict=True):
            feeds[i.name] = arr
    return run


def torch_variant(vocab: int, embed: int, hidden: int) -> Step | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    emb, lstm = torch.nn.Embedding(vocab, embed), torch.nn.LSTM(embed, hidden)
    out = torch.nn.Linear(hidden, vocab)
    state = [torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden)]
    tok = torch.tensor([[REST]])

    @torch.inference_mode()
    def run() -> None:
        y, (h, c) = lstm(emb(tok), (state[0], state[1]))
        out(y)
        state[0], state[1] = h, c
    return run


def measure(fn: Step, n: int) -> np.ndarray:
    times = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        times[i] = clock() - t0
    return times / 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="bundled name or .onnx path (default: factory LSTM)")
    ap.add_argument("--hidden", type=int, default=256, help="factory LSTM hidden size")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--block", type=int, default=300, help="steps per variant per round")
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory()
    embed = 64
    if args.model:
        path = str(catalog.resolve(args.model))
    else:
        from liveduet.testkit.factory import lstm_model

        path = str(lstm_model(Path(tmp.name) / "bench.onnx", melody_codec(),
                              hidden=args.hidden, embed=embed))
    model = StepModel(path)
    variants: dict[str, Step] = {
        "stepmodel": stepmodel_variant(model),
        "bare-iobind": bare_variant(model),
        "default-opts": default_opts_variant(path),
        "plain-run": plain_run_variant(path),
    }
    if not args.model:
        eager = torch_variant(model.vocab_size, embed, args.hidden)
        if eager is not None:
            variants["torch-eager"] = eager
    for fn in variants.values():  # warm up
        measure(fn, 200)
    samples: dict[str, list[np.ndarray]] = {k: [] for k in variants}
    order = list(variants)
    rng = random.Random(0)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(measure(variants[name], args.block))
    report(samples, path)
    return 0


def report(samples: dict[str, list[np.ndarray]], path: str) -> None:
    print(f"model {path}; {len(next(iter(samples.values())))} interleaved rounds")
    stats = {k: np.concatenate(v) for k, v in samples.items()}
    base = stats["stepmodel"]
    b50, b99 = np.percentile(base, 50), np.percentile(base, 99)
    print(f"{'variant':<14}{'p50 us':>9}{'p99 us':>9}{'p50/step':>10}{'p99/step':>10}")
    for name, t in stats.items():
        p50, p99 = np.percentile(t, 50), np.percentile(t, 99)
        print(f"{name:<14}{p50:>9.1f}{p99:>9.1f}{p50 / b50:>10.2f}{p99 / b99:>10.2f}")
    bare = np.percentile(stats["bare-iobind"], 50)
    print(f"wrapper overhead at p50: {b50 - bare:.1f} us ({(b50 / bare - 1) * 100:.1f}% over bare)")


if __name__ == "__main__":
    sys.exit(main())
