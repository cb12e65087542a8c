"""What ``optimizer.step()`` costs, next to the same update written directly in NumPy.

    python benchmarks/optim_step.py            # about a minute
    python benchmarks/optim_step.py --quick    # smoke run, a few seconds

For each optimizer (SGD with momentum, Adam, RMSprop, Adagrad) and each parameter set, the time of
one ``step()`` (as shipped, with the multi-tensor path of ``tinynet/optim/flat.py`` turned off:
"loop only", and forced on: "flat only") is compared with:

* *NumPy loop*: the same update formula, written as plainly as possible over the list of arrays
  (in-place ops, no state dicts, no groups): the floor for a per-parameter implementation;
* *NumPy flat*: the same update on ONE contiguous array holding every parameter: the floor of a
  "flat" (multi-tensor) path, which saves the per-parameter Python work but would need every
  parameter to live as a view of one buffer;
* *PyTorch*: ``torch.optim`` on CPU (default for-loop implementation), when installed.

Parameter sets: ``mlp`` (784 -> 256 -> 128 -> 10: 6 tensors, 235k elements) and ``many-small``
(40 tensors of 32x32 and 32: 42k elements), where per-parameter Python work weighs most.

No asserts: this script measures. A Markdown table goes to stdout, the JSON records to
``runs/benchmarks/optim_step-<cpu>.json`` (or ``--json``; the published records are in
``benchmarks/results/``). Results and what they decided: docs/optim.md.
"""

from __future__ import annotations

import argparse
import json
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads; the updates are elementwise anyway

import numpy as np  # noqa: E402

import _timing  # noqa: E402
import tinynet as tn  # noqa: E402

SHAPES = {
    "mlp": [(256, 784), (256,), (128, 256), (128,), (10, 128), (10,)],
    "many-small": [(32, 32), (32,)] * 20,
}
CONFIGS = {
    "SGD(momentum=0.9)": dict(lr=0.01, momentum=0.9),
    "Adam": dict(lr=1e-3),
    "RMSprop": dict(lr=1e-3),
    "Adagrad": dict(lr=1e-2),
}


def numpy_update(name: str):
    """The update of one array (w, g, state list) in place, as plainly as NumPy allows."""
    if name.startswith("SGD"):
        def sgd(w, g, s, t):
            b = s[0]
            b *= 0.9
            b += g
            w -= 0.01 * b
        return sgd, 1
    if name == "Adam":
        def adam(w, g, s, t):
            m, v = s
            m += 0.1 * (g - m)
            v *= 0.999
            v += 0.001 * g * g
            denom = np.sqrt(v)
            denom /= (1 - 0.999**t) ** 0.5
            denom += 1e-8
            w += -(1e-3 / (1 - 0.9**t)) * m / denom
        return adam, 2
    if name == "RMSprop":
        def rmsprop(w, g, s, t):
            v = s[0]
            v *= 0.99
            v += 0.01 * g * g
            denom = np.sqrt(v)
            denom += 1e-8
            w += -1e-3 * g / denom
        return rmsprop, 1
    def adagrad(w, g, s, t):
        acc = s[0]
        acc += g * g
        std = np.sqrt(acc)
        std += 1e-10
        w += -1e-2 * g / std
    return adagrad, 1


def measure(shapes, name: str, kwargs: dict, repeats: int, warmup: int) -> dict:
    rng = np.random.default_rng(0)
    host = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 1e-3 for s in shapes]
    out = {}

    default_limit = tn.optim.flat.FLAT_MAX_MEAN_SIZE
    variants = (("tinynet", default_limit), ("tinynet_loop", 0), ("tinynet_flat", 1 << 40))
    for label, limit in variants:  # 0: never flat (the loop); 2^40: always flat
        tn.optim.flat.FLAT_MAX_MEAN_SIZE = limit
        params = [tn.tensor(a, requires_grad=True) for a in host]
        for p, g in zip(params, grads):
            p.grad = tn.tensor(g)
        opt = getattr(tn.optim, name.split("(")[0])(params, **kwargs)
        out[label] = _timing.summarize(_timing.time_calls(opt.step, repeats, warmup), 1e6)
    tn.optim.flat.FLAT_MAX_MEAN_SIZE = default_limit

    update, n_state = numpy_update(name)
    ws = [a.copy() for a in host]
    states = [[np.zeros_like(a) for _ in range(n_state)] for a in host]
    step = [0]

    def loop():
        step[0] += 1
        for w, g, s in zip(ws, grads, states):
            update(w, g, s, step[0])
    out["numpy_loop"] = _timing.summarize(_timing.time_calls(loop, repeats, warmup), 1e6)

    flat_w = np.concatenate([a.ravel() for a in host])
    flat_g = np.concatenate([g.ravel() for g in grads])
    flat_s = [np.zeros_like(flat_w) for _ in range(n_state)]
    flat_step = [0]

    def flat():
        flat_step[0] += 1
        update(flat_w, flat_g, flat_s, flat_step[0])
    out["numpy_flat"] = _timing.summarize(_timing.time_calls(flat, repeats, warmup), 1e6)

    try:
        import torch

        torch.set_num_threads(1)
        tparams = [torch.tensor(a, requires_grad=True) for a in host]
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        topt = getattr(torch.optim, name.split("(")[0])(tparams, **kwargs)
        out["torch"] = _timing.summarize(_timing.time_calls(topt.step, repeats, warmup), 1e6)
    except ImportError:
        out["torch"] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="where to write the records")
    args = parser.parse_args()
    repeats, warmup = (30, 3) if args.quick else (300, 20)
    env = _timing.environment()
    records = []
    print("| parameters | optimizer | tinynet (us) | tinynet, loop only (us) | tinynet, flat only "
          "(us) | NumPy loop (us) | NumPy flat (us) | PyTorch (us) | tinynet / NumPy loop |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for set_name, shapes in SHAPES.items():
        for name, kwargs in CONFIGS.items():
            res = measure(shapes, name, kwargs, repeats, warmup)
            t, tl, tf, lp, fl = (res[k]["median"] for k in (
                "tinynet", "tinynet_loop", "tinynet_flat", "numpy_loop", "numpy_flat"))
            torch_us = f"{res['torch']['median']:.1f}" if res["torch"] else "n/a"
            print(f"| {set_name} | {name} | {t:.1f} | {tl:.1f} | {tf:.1f} | {lp:.1f} | {fl:.1f} | "
                  f"{torch_us} | {t / lp:.2f} |")
            records.append({"benchmark": "optim_step", "parameters": set_name,
                            "n_tensors": len(shapes),
                            "n_elements": int(sum(np.prod(s) for s in shapes)),
                            "optimizer": name, "unit": "us", "results": res, "env": env})
    path = args.json or _timing.default_results_path("optim_step")
    if not args.quick or args.json:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(records, f, indent=1)
        print(f"\nrecords: {path}")


if __name__ == "__main__":
    main()
