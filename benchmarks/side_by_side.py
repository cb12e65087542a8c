"""Two revisions of tinynet timed side by side in one process: per-op overhead and an MLP epoch.

    git worktree add /tmp/base main        # or: git archive REV | tar -x -C /tmp/base
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/side_by_side.py --base /tmp/base

The checkout this script belongs to is imported as ``tinynet``; the other one (``--base``) is
loaded from its ``tinynet/`` folder under the module name ``tinynet_base`` (tinynet's core uses
relative imports only, so both live in one interpreter). Each measurement alternates the two,
round after round (in turn first), so a machine that slows down or speeds up hits both equally;
the figure to read is the ratio new/base of the medians, not any absolute time. Run it with one
BLAS thread. The clock is the process's CPU time by default (``--clock wall`` for
``perf_counter``): on a shared machine, time spent waiting for a core is not the code's.

Measured:

* per-op forward + backward (microseconds) of ``op_overhead.py``'s chains on (16, 16) float32
  tensors, by chain differencing (``_timing.time_difference``): the fixed cost of
  ``.sum().backward()`` cancels out, and a partner op's cost is subtracted as there;
* whole steps (``--only steps``), each timed per call, median per round: tensor creation from a
  list (and a trip to the stand-in device and back), one training step of the 784-256-128-10 MLP
  at batch 32 with Adam and with SGD momentum (forward, loss, ``loss.item()``, zero_grad,
  backward, step), and one ``tn.train.fit`` epoch of 10 such batches (loader, callbacks,
  metrics);
* one training epoch of a 784-256-128-10 ReLU MLP, batch 32, cross entropy, Adam (2,048 random
  samples: 64 steps of zero_grad, forward, loss, backward, step);
* with ``--only rnn`` (and only then): forward + backward of an LSTM (64 -> 128, batch 32) over
  50 and 400 steps and of the MNIST-1D GRU's shape (40 -> 6, batch 100, 40 steps), per call.

Without a thread variable set, the script starts itself again with one BLAS thread (the count
only holds if set before NumPy loads).

No asserts: it prints a Markdown table (and ``--json`` writes the records).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

import _timing
import op_overhead
import tinynet as tn


def load_base(path: str):
    """Import ``path``/tinynet as the package ``tinynet_base``."""
    init = os.path.join(path, "tinynet", "__init__.py")
    spec = importlib.util.spec_from_file_location("tinynet_base", init,
                                                  submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["tinynet_base"] = module
    spec.loader.exec_module(module)
    return module


# --- per-op chains: op_overhead.py's cases, run on either revision -----------------------------


def chain_fn(lib, case, rng, shape=(16, 16)):
    return op_overhead.tinynet_chain(case, rng.standard_normal(shape).astype("float32"),
                                     case.params(shape, rng), lib=lib)


# --- the MLP epoch ------------------------------------------------------------------------------

def epoch_fn(lib, rng, n: int = 2048, batch: int = 32):
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(784, 256), lib.nn.ReLU(), lib.nn.Linear(256, 128),
                              lib.nn.ReLU(), lib.nn.Linear(128, 10))
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x = rng.standard_normal((n, 784)).astype("float32")
    y = rng.integers(0, 10, n)
    batches = [(lib.tensor(x[i:i + batch]), lib.tensor(y[i:i + batch]))
               for i in range(0, n, batch)]
    loss_fn = lib.nn.functional.cross_entropy

    def run():
        for xb, yb in batches:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    return run


# --- whole steps: creation, an MLP training step, a fit epoch -----------------------------------

def creation_fn(lib, move: bool):
    """20 tensors from a host list (``move``: each to the stand-in device and back)."""
    host = [[1.0, 2.0], [3.0, 4.0]]

    def run():
        for _ in range(20):
            t = lib.tensor(host)
            if move:
                t.to("standin").cpu()
    return run


def _mlp(lib):
    lib.manual_seed(0)
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def step_fn(lib, optimizer: str):
    """One training step of the 784-256-128-10 MLP at batch 32, as ``fit`` runs it."""
    model = _mlp(lib)
    opt = (lib.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    loss_fn = lib.nn.CrossEntropyLoss()
    x, y = lib.randn(32, 784), lib.randint(0, 10, (32,))

    def run():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.item()
        loss.backward()
        opt.step()
    return run


def fit_fn(lib, batches: int = 10):
    """One ``fit`` epoch of the MLP with SGD momentum: ``batches`` batches of 32 (no bar)."""
    model = _mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = lib.data.TensorDataset(lib.randn(32 * batches, 784),
                                  lib.randint(0, 10, (32 * batches,)))
    loader = lib.data.DataLoader(data, batch_size=32, shuffle=True, seed=0)
    loss_fn = lib.nn.CrossEntropyLoss()
    return lambda: lib.train.fit(model, loss_fn, opt, loader, epochs=1, progress=False)


STEPS = [("20 x tn.tensor(list)", lambda lib: creation_fn(lib, False)),
         ("20 x tn.tensor(list).to('standin').cpu()", lambda lib: creation_fn(lib, True)),
         ("MLP step, Adam, batch 32", lambda lib: step_fn(lib, "adam")),
         ("MLP step, SGD momentum, batch 32", lambda lib: step_fn(lib, "sgd")),
         ("fit epoch: MLP, SGD momentum, 10 batches of 32", fit_fn)]


def rnn_fn(lib, mode: str, seq: int, batch: int = 32, inputs: int = 64, hidden: int = 128):
    """Forward and backward of a one-layer ``mode`` (LSTM, GRU) over ``seq`` steps (gradients
    zeroed each call): where the per-step slicing of the input shows in backward."""
    lib.manual_seed(0)
    layer = getattr(lib.nn, mode)(inputs, hidden)
    x = lib.randn(seq, batch, inputs)

    def run():
        layer.zero_grad()
        out, _ = layer(x)
        out.sum().backward()
    return run


RNN_STEPS = [("LSTM 64->128, seq 50, batch 32: forward + backward",
              lambda lib: rnn_fn(lib, "LSTM", 50)),
             ("LSTM 64->128, seq 400, batch 32: forward + backward",
              lambda lib: rnn_fn(lib, "LSTM", 400)),
             ("GRU 40->6, seq 40, batch 100: forward + backward",
              lambda lib: rnn_fn(lib, "GRU", 40, batch=100, inputs=40, hidden=6))]


def _median(samples):
    return float(np.median(samples))


def _per_step(fn, short: int, long: int, clock) -> float:
    """Seconds per step of ``fn(n)``: ``fn(short)`` and ``fn(long)`` back to back, differenced
    (``_timing.time_difference``'s method, on the chosen clock)."""
    start = clock()
    fn(short)
    mid = clock()
    fn(long)
    return ((clock() - mid) - (mid - start)) / (long - short)


def _in_turn(fns: dict, rounds: int, timed) -> dict:
    """``timed(fn)`` for every library, ``rounds`` times, alternating which one goes first."""
    samples = {k: [] for k in fns}
    for r in range(rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            samples[k].append(timed(fns[k]))
    return samples


def measure(libs: dict, rounds: int, quick: bool, clock=time.process_time, only=None,
            epoch_rounds=None, samples_per_epoch=None) -> list[dict]:
    """Alternate the libraries within every round; per-op figures in us (net of the partner op,
    as in op_overhead.py), epochs in ms (and the median of the per-round new/base ratios)."""
    records = []
    rng = np.random.default_rng(0)
    if only in (None, "ops"):
        records += _per_op(libs, rounds, quick, clock, rng)
    if only in (None, "steps"):
        records += _steps(libs, rounds, 10 if quick else 60, clock)
    if only in (None, "epoch"):
        n = samples_per_epoch or (512 if quick else 2048)
        records.append(_epochs(libs, epoch_rounds or rounds, clock, rng, n))
    if only == "rnn":  # on request only: the long sequence takes a while
        records += _steps(libs, rounds, 3 if quick else 10, clock, RNN_STEPS)
    return records


def _per_op(libs, rounds, quick, clock, rng) -> list[dict]:
    records = []
    short, long = (4, 24) if quick else (10, 60)
    per_op = {}
    for case in op_overhead.CASES:
        fns = {k: chain_fn(lib, case, rng) for k, lib in libs.items()}
        for fn in fns.values():  # warm-up
            fn(short)
            fn(long)
        samples = _in_turn(fns, 5 * rounds, lambda fn: _per_step(fn, short, long, clock))
        per_op[case.name] = {k: 1e6 * _median(v) for k, v in samples.items()}
    for case in op_overhead.CASES:
        net = {k: t - (per_op[case.partner][k] if case.partner else 0.0)
               for k, t in per_op[case.name].items()}
        records.append({"what": f"{case.name}: {case.note}", "unit": "us (16, 16)", **net})
    return records


def _steps(libs, rounds, calls, clock, steps=None) -> list[dict]:
    """Per workload: each revision's median us per call in every round, and the median of the
    per-round new/base ratios."""
    def median_us(fn):
        times = []
        for _ in range(calls):
            start = clock()
            fn()
            times.append(clock() - start)
        return 1e6 * _median(times)

    records = []
    for name, make in steps or STEPS:
        fns = {k: make(lib) for k, lib in libs.items()}
        for fn in fns.values():  # warm-up: caches, optimizer state, allocator
            for _ in range(max(3, calls // 5)):
                fn()
        samples = _in_turn(fns, rounds, median_us)
        paired = [new / base for new, base in zip(samples["new"], samples["base"])]
        records.append({"what": name, "unit": "us per call",
                        **{k: _median(v) for k, v in samples.items()},
                        "paired_ratio_median": _median(paired)})
    return records


def _epochs(libs, rounds, clock, rng, n) -> dict:
    fns = {k: epoch_fn(lib, rng, n=n) for k, lib in libs.items()}
    for fn in fns.values():
        fn()  # warm-up: caches, allocator

    def epoch(fn):
        start = clock()
        fn()
        return clock() - start

    samples = _in_turn(fns, rounds, epoch)
    paired = [new / base for new, base in zip(samples["new"], samples["base"])]
    return {"what": f"MLP epoch 784-256-128-10, batch 32, Adam, {n} samples", "unit": "ms",
            **{k: 1e3 * _median(v) for k, v in samples.items()},
            "paired_ratio_median": _median(paired)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a checkout of the other revision")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--only", choices=("ops", "steps", "epoch", "rnn"),
                        help="one of the three measurements, or the recurrent layers' forward "
                             "and backward (rnn: only when asked)")
    parser.add_argument("--epoch-rounds", type=int, help="rounds of the epoch (default --rounds)")
    parser.add_argument("--samples", type=int, help="samples per epoch (default 2048)")
    parser.add_argument("--json", help="write the records here")
    args = parser.parse_args(argv)
    if not any(os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")):
        env = dict(os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS")})
        sys.exit(subprocess.run([sys.executable, *sys.argv], env=env, check=False).returncode)
    libs = {"base": load_base(args.base), "new": tn}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    records = measure(libs, args.rounds, args.quick, clock, args.only, args.epoch_rounds,
                      args.samples)
    print(f"threads: {_timing.blas_threads()}; clock: {args.clock}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print("| measurement | unit | base | new | new/base |\n|---|---|---:|---:|---:|")
    for r in records:
        print(f"| {r['what']} | {r['unit']} | {r['base']:.2f} | {r['new']:.2f} | "
              f"{r['new'] / r['base']:.3f} |")
    ratios = [r["new"] / r["base"] for r in records if r["unit"] == "us (16, 16)"]
    if ratios:
        print(f"| per-op, geometric mean of the {len(ratios)} ratios | | | | "
              f"{float(np.exp(np.mean(np.log(ratios)))):.3f} |")
    for r in records:
        if "paired_ratio_median" in r:
            print(f"| {r['what']}: median of the per-round new/base ratios | | | | "
                  f"{r['paired_ratio_median']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": _timing.environment(), "base": args.base,
                       "clock": args.clock, "rounds": args.rounds, "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
