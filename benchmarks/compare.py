"""Is a change slower? Two checkouts of tinynet timed side by side in one process.

    git worktree add /tmp/tinynet-main main
    python benchmarks/compare.py /tmp/tinynet-main            # this checkout vs that one
    python benchmarks/compare.py /tmp/tinynet-main --json out.json

The other checkout is imported under another name (``tinynet_base``), so both run in the same
process on the same data: their measurements alternate (A B A B ...), so a slow drift of a shared
machine hits both alike, and the figure reported is the median of the per-round ratios
(this checkout's time over the other's: below 1.00 is faster). BLAS runs with one thread (set
before NumPy loads), as every per-op figure in benchmarks/README.md.

What is timed (medians of many calls per round):

* ``op overhead``: forward + backward of a chain of 20 small ops on (16, 16) float32 tensors, for
  a few ops where the framework's per-op cost dominates (mul, add, tanh, matmul, sum, getitem),
  tensor creation (``tn.tensor``) and a trip to the stand-in device and back;
* ``MLP step``: one training step of the MLP 784-256-128-10 at batch 32 (forward, cross entropy,
  ``loss.item()``, zero_grad, backward, optimizer step) with Adam and with SGD momentum, as
  ``fit`` runs it; and one whole ``fit`` epoch of 10 such steps (loader, callbacks, metrics).

Only the engine's public API is used (``tn.tensor``, ops, ``nn``, ``optim``), so any two
checkouts that share it can be compared. No asserts: this script measures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

THREADS_VAR = "OPENBLAS_NUM_THREADS"


def load_checkout(root: str, name: str):
    """The ``tinynet`` package of the checkout at ``root``, imported as ``name``."""
    init = os.path.join(root, "tinynet", "__init__.py")
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- workloads: each returns a function of no arguments that runs one measured unit -----------

def op_chain(tn, op: str, length: int = 20):
    """Forward + backward of ``length`` applications of ``op`` on a (16, 16) tensor."""
    x = tn.tensor([[0.01 * (i + j) for j in range(16)] for i in range(16)], requires_grad=True)
    w = tn.tensor([[0.05 if i == j else 0.001 for j in range(16)] for i in range(16)])
    step = {"mul": lambda y: y * 0.99, "add": lambda y: y + 0.01, "tanh": lambda y: y.tanh(),
            "matmul": lambda y: y @ w, "sum": lambda y: y.sum(axis=0) + y,
            "getitem": lambda y: y[1:] + y[:1]}[op]

    def run():
        y = x
        for _ in range(length):
            y = step(y)
        y.sum().backward()
        x.grad = None
    return run


def creation(tn, move: bool):
    """Tensor creation from host data (``move``: and a trip to the stand-in device and back)."""
    host = [[1.0, 2.0], [3.0, 4.0]]

    def run():
        for _ in range(20):
            t = tn.tensor(host)
            if move:
                t.to("standin").cpu()
    return run


def mlp_step(tn, optimizer: str):
    """One training step of the 784-256-128-10 MLP at batch 32."""
    tn.manual_seed(0)
    nn = tn.nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = (tn.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else tn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    loss_fn = nn.CrossEntropyLoss()
    x = tn.randn(32, 784)
    y = tn.randint(0, 10, (32,))

    def run():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.item()
        loss.backward()
        opt.step()
    return run


def fit_epoch(tn, batches: int = 10):
    """One ``tn.train.fit`` epoch of the MLP with SGD momentum: ``batches`` batches of 32 from a
    DataLoader, callbacks and metrics included (no progress bar)."""
    tn.manual_seed(0)
    nn = tn.nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt = tn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = tn.data.TensorDataset(tn.randn(32 * batches, 784), tn.randint(0, 10, (32 * batches,)))
    loader = tn.data.DataLoader(data, batch_size=32, shuffle=True, seed=0)
    return lambda: tn.train.fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=1,
                                progress=False)


WORKLOADS = [(f"op overhead: chain of 20 {op}", lambda tn, op=op: op_chain(tn, op))
             for op in ("mul", "add", "tanh", "matmul", "sum", "getitem")]
WORKLOADS += [("op overhead: 20 x tn.tensor(list)", lambda tn: creation(tn, False)),
              ("op overhead: 20 x tn.tensor(list).to('standin').cpu()",
               lambda tn: creation(tn, True)),
              ("MLP step, Adam, batch 32", lambda tn: mlp_step(tn, "adam")),
              ("MLP step, SGD momentum, batch 32", lambda tn: mlp_step(tn, "sgd")),
              ("fit epoch: MLP, SGD momentum, 10 batches of 32", fit_epoch)]


def median_us(run, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def compare(this, base, rounds: int, calls: int) -> list:
    """Per workload: both checkouts' median us per call in each round, and the ratios."""
    rows = []
    for name, make in WORKLOADS:
        runs = {"this": make(this), "base": make(base)}
        for run in runs.values():  # warm-up: caches, optimizer state, allocator
            for _ in range(max(3, calls // 5)):
                run()
        samples = {"this": [], "base": []}
        for r in range(rounds):
            order = ("this", "base") if r % 2 == 0 else ("base", "this")
            for key in order:
                samples[key].append(median_us(runs[key], calls))
        ratios = [a / b for a, b in zip(samples["this"], samples["base"])]
        rows.append({"workload": name, "us_this": statistics.median(samples["this"]),
                     "us_base": statistics.median(samples["base"]),
                     "ratio": statistics.median(ratios), "ratio_min": min(ratios),
                     "ratio_max": max(ratios), "rounds": rounds, "calls_per_round": calls})
        print(f"| {name} | {rows[-1]['us_base']:.0f} | {rows[-1]['us_this']:.0f} | "
              f"{rows[-1]['ratio']:.3f} ({rows[-1]['ratio_min']:.2f}-{rows[-1]['ratio_max']:.2f}) |",
              flush=True)
    return rows


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the other checkout (its folder holds tinynet/)")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds (default 9)")
    parser.add_argument("--calls", type=int, default=60, help="calls per round (default 60)")
    parser.add_argument("--json", metavar="PATH", help="write the rows here as JSON")
    args = parser.parse_args(argv)
    if os.environ.get(THREADS_VAR) != "1":  # the thread count only holds if set before NumPy
        env = dict(os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", THREADS_VAR,
                                                    "MKL_NUM_THREADS")})
        return subprocess.run([sys.executable, *sys.argv], env=env, check=False).returncode
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    this = load_checkout(here, "tinynet")
    base = load_checkout(os.path.abspath(args.base), "tinynet_base")
    print(f"this: {here}\nbase: {os.path.abspath(args.base)}\n")
    print("| workload | base us | this us | this / base (min-max over rounds) |\n|---|---|---|---|")
    rows = compare(this, base, args.rounds, args.calls)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"this": here, "base": os.path.abspath(args.base), "rows": rows}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
