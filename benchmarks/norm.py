"""BatchNorm and LayerNorm: the primitives with a written-out backward next to the composed versions
they replaced (``tinynet/testing/norm_reference.py``), in one process, one BLAS thread.

    python benchmarks/norm.py                       # ~1 minute on 2 cores
    python benchmarks/norm.py --quick               # smoke run, a few seconds
    python benchmarks/norm.py --json benchmarks/results/norm-amd-epyc-2cpu.json

Each case is forward + backward (``y.backward(g)``) of a layer in training mode on float32 input
that requires grad: ``BatchNorm2d(16)`` on (32, 16, 8, 8) (running statistics updated, as in a
CNN epoch), ``BatchNorm1d(128)`` on (32, 128), ``LayerNorm(128)`` on (32, 128), and the eval-mode
``BatchNorm2d``; then whole SGD training steps of models with those layers (the digits CNN with
two ``BatchNorm2d``, MLPs with ``BatchNorm1d`` and ``LayerNorm``). The two implementations run in alternating rounds (so a drift of the machine
hits both alike); the figure is the median over rounds of the per-round ratio primitive /
composed (< 1: the primitive is faster). PyTorch CPU is a third column when installed. Then the
stand-in device's array calls (~ GPU kernel launches) for the same forward + backward.

No asserts: this script measures. Results in benchmarks/README.md.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads

import argparse
import statistics

import _timing
import numpy as np

import tinynet as tn
import tinynet.nn.functional as F
from tinynet.testing.norm_reference import composed_batch_norm, composed_layer_norm

CASES = (  # name, input shape, layer kind, training
    ("BatchNorm2d train", (32, 16, 8, 8), "bn", True),
    ("BatchNorm2d eval", (32, 16, 8, 8), "bn", False),
    ("BatchNorm1d train", (32, 128), "bn", True),
    ("LayerNorm", (32, 128), "ln", True),
)


def make_step(impl: str, shape, kind: str, training: bool, device="cpu"):
    """A closure running forward + backward once, with ``impl`` = "primitive" or "composed"."""
    rng = np.random.default_rng(0)
    c = shape[1] if kind == "bn" else shape[-1]
    x = tn.tensor(rng.standard_normal(shape, dtype=np.float32), device=device, requires_grad=True)
    g = tn.tensor(rng.standard_normal(shape, dtype=np.float32), device=device)
    w = tn.tensor(rng.uniform(0.5, 1.5, c).astype(np.float32), device=device, requires_grad=True)
    b = tn.tensor(rng.standard_normal(c, dtype=np.float32), device=device, requires_grad=True)
    rm = tn.zeros(c, device=device)
    rv = tn.ones(c, device=device)
    if kind == "ln":
        fn = F.layer_norm if impl == "primitive" else composed_layer_norm

        def run():
            x.grad = w.grad = b.grad = None  # zero_grad(set_to_none=True): nothing accumulates
            fn(x, (c,), w, b).backward(g)
    else:
        fn = F.batch_norm if impl == "primitive" else composed_batch_norm

        def run():
            x.grad = w.grad = b.grad = None
            fn(x, rm, rv, w, b, training, 0.1, 1e-5).backward(g)
    return run, (x, w, b)


def torch_step(torch, shape, kind: str, training: bool):
    rng = np.random.default_rng(0)
    c = shape[1] if kind == "bn" else shape[-1]
    x = torch.tensor(rng.standard_normal(shape, dtype=np.float32), requires_grad=True)
    g = torch.tensor(rng.standard_normal(shape, dtype=np.float32))
    if kind == "ln":
        layer = torch.nn.LayerNorm(c)
    else:
        layer = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c)
        layer.train(training)

    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).backward(g)
    return run


# --- whole training steps: the same model with either implementation --------------------------
STEPS = (  # name, model builder, input shape
    ("CNN step (digits cnn, 2 BatchNorm2d)", lambda: tn.models.cnn(), (32, 1, 8, 8)),
    ("MLP step (64-128-BN1d-64-BN1d-10)", lambda: tn.nn.Sequential(
        tn.nn.Linear(64, 128), tn.nn.BatchNorm1d(128), tn.nn.ReLU(), tn.nn.Linear(128, 64),
        tn.nn.BatchNorm1d(64), tn.nn.ReLU(), tn.nn.Linear(64, 10)), (32, 64)),
    ("MLP step (64-128-LayerNorm-10)", lambda: tn.nn.Sequential(
        tn.nn.Linear(64, 128), tn.nn.LayerNorm(128), tn.nn.ReLU(), tn.nn.Linear(128, 10)),
     (32, 64)),
)


class _Composed(tn.nn.Module):
    """Runs ``layer`` (a LayerNorm) through the composed function."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        return composed_layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)


def make_train_step(impl: str, build, shape):
    """One SGD training step (forward, cross entropy, backward, update) of ``build()``; with
    ``impl="composed"`` every BatchNorm runs ``composed_batch_norm`` and every LayerNorm
    ``composed_layer_norm``."""
    tn.manual_seed(0)
    model = build()
    if impl == "composed":
        for module in list(model.modules()):
            for name, child in list(module._modules.items()):
                if isinstance(child, tn.nn.LayerNorm):
                    module._modules[name] = _Composed(child)
                elif isinstance(child, (tn.nn.BatchNorm1d, tn.nn.BatchNorm2d)):
                    child._batch_norm = composed_batch_norm  # the instance's function
    opt = tn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = tn.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = tn.tensor(rng.standard_normal(shape, dtype=np.float32))
    y = tn.tensor(rng.integers(0, 10, shape[0]))

    def run():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return run


def measure(rounds: int, per_round: int, warmup: int, torch) -> list[dict]:
    records = []
    for name, shape, kind, training in CASES:
        runs = {impl: make_step(impl, shape, kind, training)[0]
                for impl in ("composed", "primitive")}
        if torch is not None:
            runs["torch"] = torch_step(torch, shape, kind, training)
        for run in runs.values():
            _timing.time_calls(run, 1, warmup)
        samples = {impl: [] for impl in runs}
        for _ in range(rounds):  # alternating: each round times every implementation once
            for impl, run in runs.items():
                samples[impl].append(statistics.median(_timing.time_calls(run, per_round, 0)))
        ratios = [p / c for p, c in zip(samples["primitive"], samples["composed"])]
        rec = {"case": name, "shape": list(shape), "training": training,
               "us": {impl: _timing.summarize(s, 1e6) for impl, s in samples.items()},
               "ratio_primitive_over_composed": _timing.summarize(ratios)}
        if torch is not None:
            rec["ratio_primitive_over_torch"] = _timing.summarize(
                [p / t for p, t in zip(samples["primitive"], samples["torch"])])
        records.append(rec)
    return records


def measure_steps(rounds: int, per_round: int, warmup: int) -> list[dict]:
    records = []
    for name, build, shape in STEPS:
        runs = {impl: make_train_step(impl, build, shape) for impl in ("composed", "primitive")}
        for run in runs.values():
            _timing.time_calls(run, 1, warmup)
        samples = {impl: [] for impl in runs}
        for _ in range(rounds):
            for impl, run in runs.items():
                samples[impl].append(statistics.median(_timing.time_calls(run, per_round, 0)))
        ratios = [p / c for p, c in zip(samples["primitive"], samples["composed"])]
        records.append({"case": name, "shape": list(shape), "training": True,
                        "us": {impl: _timing.summarize(s, 1e6) for impl, s in samples.items()},
                        "ratio_primitive_over_composed": _timing.summarize(ratios)})
    return records


def count_calls() -> list[dict]:
    """Array calls and host syncs on the stand-in device for one forward + backward."""
    records = []
    for name, shape, kind, training in CASES:
        rec = {"case": name, "shape": list(shape), "training": training}
        for impl in ("composed", "primitive"):
            run, _ = make_step(impl, shape, kind, training, device="standin")
            run()  # once-per-process work out of the count
            with tn.backend.count_calls() as counts:
                run()
            rec[impl] = {"array_calls": counts.array_calls, "syncs": counts.syncs}
        records.append(rec)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rounds, per_round, warmup = (5, 20, 10) if args.quick else (31, 50, 50)
    torch, why = _timing.import_torch(1)
    if torch is None:
        print(f"(no PyTorch column: {why})")
    records = measure(rounds, per_round, warmup, torch)
    steps = measure_steps(rounds, max(per_round // 5, 4), warmup // 5 + 2)
    print("| case | shape | composed (us) | primitive (us) | ratio primitive / composed |"
          + (" PyTorch (us) | ratio primitive / PyTorch |" if torch else ""))
    print("|---|---|---|---|---|" + ("---|---|" if torch else ""))
    for r in records:
        row = (f"| {r['case']} | {tuple(r['shape'])} | {r['us']['composed']['median']:.0f} | "
               f"{r['us']['primitive']['median']:.0f} | "
               f"{r['ratio_primitive_over_composed']['median']:.2f} "
               f"[{r['ratio_primitive_over_composed']['q1']:.2f}, "
               f"{r['ratio_primitive_over_composed']['q3']:.2f}] |")
        if torch is not None:
            row += (f" {r['us']['torch']['median']:.0f} | "
                    f"{r['ratio_primitive_over_torch']['median']:.2f} |")
        print(row)
    print("\n| training step (SGD, batch 32) | composed (us) | primitive (us) | "
          "ratio primitive / composed |")
    print("|---|---|---|---|")
    for r in steps:
        ratio = r["ratio_primitive_over_composed"]
        print(f"| {r['case']} | {r['us']['composed']['median']:.0f} | "
              f"{r['us']['primitive']['median']:.0f} | {ratio['median']:.2f} "
              f"[{ratio['q1']:.2f}, {ratio['q3']:.2f}] |")
    calls = count_calls()
    print("\n| case (stand-in device) | composed: array calls | primitive: array calls | "
          "host syncs (both) |")
    print("|---|---|---|---|")
    for r in calls:
        print(f"| {r['case']} | {r['composed']['array_calls']} | {r['primitive']['array_calls']} | "
              f"{r['composed']['syncs']}, {r['primitive']['syncs']} |")
    path = args.json or _timing.default_results_path("norm")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    out = ([dict(r, kind="time") for r in records] + [dict(r, kind="step") for r in steps]
           + [dict(r, kind="standin_calls") for r in calls])
    _timing.write_records(path, out, "norm", torch, 1, args.quick)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
