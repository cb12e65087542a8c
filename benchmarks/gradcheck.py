"""What one gradient-check example costs: tinynet's checks next to ``torch.autograd.gradcheck``.

    python benchmarks/gradcheck.py            # a minute or two on 2 cores
    python benchmarks/gradcheck.py --quick    # smoke run, a few seconds

A property test runs one check per hypothesis example, so the time of one check on one input is
the figure that decides how many examples a suite can afford. For each case (the same function
and the same float64 inputs in both libraries, one BLAS/torch thread), the median time of one
call of:

* ``check_gradients`` (``tn.gradcheck`` plus its in-place/aliasing watch) and ``tn.gradcheck``
  without the watch (``check_inplace=False``), next to ``torch.autograd.gradcheck`` (full
  Jacobians, its default);
* second order: ``check_gradients(..., second_order=True)`` next to ``gradcheck`` followed by
  ``gradgradcheck`` in PyTorch;
* fast mode (``fast_mode=True`` in both).

No asserts: this script measures. A Markdown table goes to stdout, the JSON records to
``benchmarks/results/gradcheck-<cpu>.json``. Results and what they decided: benchmarks/README.md
and docs/testing.md.
"""

from __future__ import annotations

import argparse
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads: one BLAS thread, as the suite runs

import numpy as np  # noqa: E402

import _timing  # noqa: E402
import tinynet as tn  # noqa: E402
import tinynet.nn.functional as F  # noqa: E402
from tinynet.testing import check_gradients  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _cases(torch):
    """name -> (input shapes, tinynet fn, torch fn): the same math, written in each library."""
    tf = torch.nn.functional if torch is not None else None
    return {
        "tanh (3, 4)": ([(3, 4)], lambda x: x.tanh(), lambda x: x.tanh()),
        "sum of squares (16,)": ([(16,)], lambda x: (x * x).sum(), lambda x: (x * x).sum()),
        "softmax (4, 6)": ([(4, 6)], lambda x: x.softmax(axis=-1), lambda x: x.softmax(dim=-1)),
        "matmul (4, 5) @ (5, 3)": ([(4, 5), (5, 3)], lambda a, b: a @ b, lambda a, b: a @ b),
        "tanh(x @ w + b), x (4, 5)": (
            [(4, 5), (5, 3), (3,)], lambda x, w, b: (x @ w + b).tanh(),
            lambda x, w, b: (x @ w + b).tanh()),
        "conv2d (1, 2, 5, 5) * (3, 2, 3, 3)": (
            [(1, 2, 5, 5), (3, 2, 3, 3)], lambda x, w: F.conv2d(x, w, padding=1),
            lambda x, w: tf.conv2d(x, w, padding=1)),
    }


def measure(name, shapes, fn, tfn, torch, repeats: int, warmup: int) -> dict:
    rng = np.random.default_rng(0)
    hosts = [rng.uniform(-1.5, 1.5, s) for s in shapes]
    xs = [tn.tensor(h, dtype=tn.float64, requires_grad=True) for h in hosts]
    calls = {
        "tinynet": lambda: check_gradients(fn, *xs),
        "tinynet_no_watch": lambda: tn.gradcheck(fn, xs, check_inplace=False),
        "tinynet_second": lambda: check_gradients(fn, *xs, second_order=True),
        "tinynet_fast": lambda: check_gradients(fn, *xs, fast_mode=True),
    }
    if torch is not None:
        ts = [torch.tensor(h, dtype=torch.float64, requires_grad=True) for h in hosts]
        ag = torch.autograd
        calls["torch"] = lambda: ag.gradcheck(tfn, ts)
        calls["torch_second"] = lambda: ag.gradcheck(tfn, ts) and ag.gradgradcheck(tfn, ts)
        calls["torch_fast"] = lambda: ag.gradcheck(tfn, ts, fast_mode=True)
    out = {}
    for label, call in calls.items():
        out[label] = _timing.summarize(_timing.time_calls(call, repeats, warmup), 1e3)
    return out


def _pair(med: dict, ours: str, theirs: str) -> str:
    """``ours | theirs | ratio`` table cells (n/a without PyTorch)."""
    if theirs not in med:
        return f"{med[ours]:.2f} | n/a | n/a"
    return f"{med[ours]:.2f} | {med[theirs]:.2f} | {med[ours] / med[theirs]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per measurement")
    parser.add_argument("--quick", action="store_true", help="3 timed calls: a smoke run")
    parser.add_argument("--json", default=None, help="where to write the records")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    warmup = 1 if args.quick else 2
    torch, why = _timing.import_torch(1)
    if torch is None:
        print(f"(no PyTorch column: {why})")
    records = []
    print("| case | elements in / out | tinynet (ms) | no watch (ms) | PyTorch (ms) | ratio | "
          "2nd order tinynet (ms) | 2nd order PyTorch (ms) | ratio | fast tinynet (ms) | "
          "fast PyTorch (ms) | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (shapes, fn, tfn) in _cases(torch).items():
        res = measure(name, shapes, fn, tfn, torch, repeats, warmup)
        n_in = sum(int(np.prod(s)) for s in shapes)
        n_out = fn(*[tn.zeros(s, dtype=tn.float64) for s in shapes]).numel()
        med = {k: v["median"] for k, v in res.items()}
        first = _pair(med, "tinynet", "torch").split(" | ")
        print(f"| {name} | {n_in} / {n_out} | {first[0]} | {med['tinynet_no_watch']:.2f} | "
              f"{first[1]} | {first[2]} | {_pair(med, 'tinynet_second', 'torch_second')} | "
              f"{_pair(med, 'tinynet_fast', 'torch_fast')} |")
        records.append({"case": name, "inputs": shapes, "n_in": n_in, "n_out": n_out,
                        "unit": "ms", "results": res})
    path = args.json or os.path.join(HERE, "results", f"gradcheck-{_timing.machine_slug()}.json")
    if not args.quick or args.json:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _timing.write_records(path, records, "gradcheck", torch, 1, args.quick)
        print(f"\nrecords: {path}")


if __name__ == "__main__":
    main()
