"""What tinynet's autograd costs, measured next to raw NumPy and PyTorch eager in one run.

    python benchmarks/op_overhead.py                 # full run, under a minute on 2 cores
    python benchmarks/op_overhead.py --quick         # smoke run, under 30 s
    python benchmarks/op_overhead.py --json out.json --threads 2
    python benchmarks/op_overhead.py --profile tanh  # cProfile of tinynet's chain of one op
    python benchmarks/op_overhead.py --check         # the three columns' gradients agree?

Three sections, each run in a child process started with the BLAS/OpenMP thread variables set
(they only take effect if set before NumPy and torch load):

1. ``tiny``: microseconds of forward + backward per op on (4,) and (16, 16) float32 tensors, one
   thread. Each op is timed as a chain of n applications followed by ``.sum().backward()``; two
   chain lengths are timed back to back and differenced, so the sum and backward launch (reported
   separately as "fixed") cancel out. Ops that cannot be chained on their own are chained with a
   cheap partner op whose own per-op cost is measured and subtracted (see ``CASES``).
2. ``large``: milliseconds of a (2048, 2048) matmul and of tanh/exp on 4M elements, forward +
   backward, where NumPy does all the work: tinynet should be ~1.0x NumPy.
3. ``mlp``: one training step of a 784 -> 128 -> 10 MLP (log_softmax + NLL), against a hand-written
   NumPy forward/backward and PyTorch, plus the same tinynet step with ``create_graph=True``.

No asserts: this script measures. Markdown tables go to stdout, one JSON record per measurement
to ``runs/benchmarks/op_overhead-<cpu>.json`` (or ``--json``; the published records are in
``benchmarks/results/``). Method and latest results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

import _timing
import tinynet as tn

SHAPES = ((4,), (16, 16))


def _settings(quick: bool) -> dict:
    """Sizes and repeat counts; --quick shrinks everything to stay under 30 s in total."""
    if quick:
        return {"chain": (4, 36), "tiny_repeats": 15, "tiny_warmup": 2, "matmul_n": 1024,
                "elementwise_n": 1 << 20, "matmul_repeats": 3, "elementwise_repeats": 15,
                "large_warmup": 1, "mlp_batches": (64,), "mlp_repeats": 30, "mlp_warmup": 5}
    return {"chain": (10, 110), "tiny_repeats": 100, "tiny_warmup": 5, "matmul_n": 2048,
            "elementwise_n": 1 << 22, "matmul_repeats": 7, "elementwise_repeats": 50,
            "large_warmup": 2, "mlp_batches": (64, 1024), "mlp_repeats": 200, "mlp_warmup": 20}


# --- section 1: tiny ops --------------------------------------------------------------------------
#
# A case is one chain step written three times: for tinynet and torch (the same expression, ``y``
# the running tensor, ``p`` the case's parameters) and for NumPy as a forward that returns
# (output, saved) plus a hand-written backward that returns the gradient for ``y`` and accumulates
# parameter gradients in place into ``grads`` (the cheapest a NumPy engine could do).


@dataclass
class Case:
    name: str
    params: object  # (shape, rng) -> dict of NumPy arrays (float32 ones become leaf tensors)
    tinynet: object  # (y, p) -> y
    torch: object  # (y, p) -> y
    np_forward: object  # (y, p) -> (y, saved)
    np_backward: object  # (g, saved, p, grads) -> g
    partner: str | None = None  # a case chained along with this op; its cost is subtracted
    note: str = ""


def _near_one(shape, rng):
    return rng.uniform(0.999, 1.001, shape).astype("float32")


def _orthogonal(n, rng):
    return np.linalg.qr(rng.standard_normal((n, n)))[0].astype("float32")


def _other_shape(shape):
    return (2, 2) if shape == (4,) else (shape[0] * shape[1],)


def _np_add(g, saved, p, grads):
    grads["b"] += g
    return g


def _np_mul(g, y, p, grads):
    grads["c"] += g * y
    return g * p["c"]


def _np_matmul(g, y, p, grads):
    grads["W"] += np.outer(y, g) if y.ndim == 1 else y.T @ g
    return g @ p["W"].T


def _np_mul_bcast(g, y, p, grads):
    grads["d"] += (g * y).sum(-1, keepdims=True)
    return g * p["d"]


def _np_reduce_forward(y, p, mean):
    s = y.mean(-1, keepdims=True) if mean else y.sum(-1, keepdims=True)
    return s * p["c"], (s, y.shape)


def _np_reduce_backward(g, saved, p, grads, mean):
    s, shape = saved
    grads["c"] += g * s
    gs = (g * p["c"]).sum(-1, keepdims=True)
    if mean:
        gs = gs * (1.0 / shape[-1])
    return np.broadcast_to(gs, shape)


def _np_slice_backward(g, saved, p, grads):
    s, shape = saved
    grads["c"] += g * s
    grad_y = np.zeros(shape, dtype=g.dtype)
    grad_y[..., :1] = (g * p["c"]).sum(-1, keepdims=True)
    return grad_y


def _np_take_backward(g, shape, p, grads):
    grad_y = np.zeros(shape, dtype=g.dtype)
    np.add.at(grad_y, p["perm"], g)  # the generic adjoint of an integer index: repeats add up
    return grad_y


def _np_log_softmax(y, p):
    s = y - y.max(-1, keepdims=True)
    out = s - np.log(np.exp(s).sum(-1, keepdims=True))
    return out, out


def _np_exp_neg(y, p):
    out = np.exp(-y)
    return out, out


def _np_tanh(y, p):
    out = np.tanh(y)
    return out, out


def _np_relu(y, p):
    out = np.maximum(y, 0)
    return out, out


def _np_relu_backward(g, out, p, grads):
    return np.where(out > 0, g, 0)


CASES = [
    Case("add", lambda s, r: {"b": 0.01 * r.standard_normal(s).astype("float32")},
         lambda y, p: y + p["b"], lambda y, p: y + p["b"],
         lambda y, p: (y + p["b"], None), _np_add, note="y + b, b a leaf"),
    Case("mul", lambda s, r: {"c": _near_one(s, r)},
         lambda y, p: y * p["c"], lambda y, p: y * p["c"],
         lambda y, p: (y * p["c"], y), _np_mul, note="y * c, c a leaf"),
    Case("mul_bcast", lambda s, r: {"d": _near_one(s[:-1] + (1,), r)},
         lambda y, p: y * p["d"], lambda y, p: y * p["d"],
         lambda y, p: (y * p["d"], y), _np_mul_bcast, note="y * d, d (..., 1) a leaf"),
    Case("matmul", lambda s, r: {"W": _orthogonal(s[-1], r)},
         lambda y, p: y @ p["W"], lambda y, p: y @ p["W"],
         lambda y, p: (y @ p["W"], y), _np_matmul, note="y @ W, W orthogonal (n, n) leaf"),
    Case("neg", lambda s, r: {}, lambda y, p: -y, lambda y, p: -y,
         lambda y, p: (-y, None), lambda g, s, p, gr: -g, note="-y"),
    Case("exp", lambda s, r: {}, lambda y, p: (-y).exp(), lambda y, p: (-y).exp(),
         _np_exp_neg, lambda g, out, p, gr: -(g * out), partner="neg",
         note="exp(-y): bounded; net of neg"),
    Case("tanh", lambda s, r: {}, lambda y, p: y.tanh(), lambda y, p: y.tanh(),
         _np_tanh, lambda g, out, p, gr: g * (1 - out * out), note="tanh(y)"),
    Case("relu", lambda s, r: {}, lambda y, p: y.relu(), lambda y, p: y.relu(),
         _np_relu, _np_relu_backward, note="relu(y)"),
    Case("sum", lambda s, r: {"c": _near_one(s, r) / s[-1]},
         lambda y, p: y.sum(-1, True) * p["c"], lambda y, p: y.sum(-1, keepdim=True) * p["c"],
         lambda y, p: _np_reduce_forward(y, p, False),
         lambda g, s, p, gr: _np_reduce_backward(g, s, p, gr, False), partner="mul_bcast",
         note="sum(y, -1, keepdims) * c; net of mul_bcast"),
    Case("mean", lambda s, r: {"c": _near_one(s, r)},
         lambda y, p: y.mean(-1, True) * p["c"], lambda y, p: y.mean(-1, keepdim=True) * p["c"],
         lambda y, p: _np_reduce_forward(y, p, True),
         lambda g, s, p, gr: _np_reduce_backward(g, s, p, gr, True), partner="mul_bcast",
         note="mean(y, -1, keepdims) * c; net of mul_bcast"),
    Case("reshape", lambda s, r: {"shapes": (s, _other_shape(s))},
         lambda y, p: y.reshape(p["shapes"][y.shape == p["shapes"][0]]),
         lambda y, p: y.reshape(p["shapes"][y.shape == p["shapes"][0]]),
         lambda y, p: (y.reshape(p["shapes"][y.shape == p["shapes"][0]]), y.shape),
         lambda g, shape, p, gr: g.reshape(shape), note="alternates (16,16) <-> (256,)"),
    Case("getitem", lambda s, r: {"c": _near_one(s, r)},
         lambda y, p: y[..., :1] * p["c"], lambda y, p: y[..., :1] * p["c"],
         lambda y, p: (y[..., :1] * p["c"], (y[..., :1], y.shape)), _np_slice_backward,
         partner="mul_bcast", note="y[..., :1] * c (basic slice); net of mul_bcast"),
    Case("getitem_int", lambda s, r: {"perm": r.permutation(s[0])},
         lambda y, p: y[p["perm"]], lambda y, p: y[p["perm"]],
         lambda y, p: (y[p["perm"]], y.shape), _np_take_backward,
         note="y[perm], perm an int64 permutation of axis 0"),
    Case("log_softmax", lambda s, r: {}, lambda y, p: y.log_softmax(-1),
         lambda y, p: y.log_softmax(-1), _np_log_softmax,
         lambda g, out, p, gr: g - np.exp(out) * g.sum(-1, keepdims=True),
         note="log_softmax(y, -1)"),
]
CASE_BY_NAME = {c.name: c for c in CASES}


def tinynet_chain(case: Case, x0, params, lib=tn):
    """fn(n): n steps of ``case`` on a fresh graph from leaf x, then ``.sum().backward()``.
    ``lib`` is the tinynet module to run (another revision, for benchmarks/side_by_side.py)."""
    x = lib.tensor(x0, requires_grad=True)
    p = {k: lib.tensor(v, requires_grad=True) if getattr(v, "dtype", None) == "float32" else v
         for k, v in params.items()}
    leaves = [x] + [v for v in p.values() if isinstance(v, lib.Tensor)]
    step = case.tinynet

    def run(n):
        for t in leaves:
            t.grad = None
        y = x
        for _ in range(n):
            y = step(y, p)
        y.sum().backward()
        return leaves

    return run


def torch_chain(case: Case, x0, params, torch):
    x = torch.from_numpy(x0.copy()).requires_grad_()
    p = {}
    for k, v in params.items():
        if getattr(v, "dtype", None) == "float32":
            p[k] = torch.from_numpy(v.copy()).requires_grad_()
        elif hasattr(v, "dtype"):
            p[k] = torch.from_numpy(v)
        else:
            p[k] = v
    leaves = [x] + [v for v in p.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    step = case.torch

    def run(n):
        for t in leaves:
            t.grad = None
        y = x
        for _ in range(n):
            y = step(y, p)
        y.sum().backward()
        return leaves

    return run


def numpy_chain(case: Case, x0, params):
    """The same chain with hand-written NumPy forward and backward (the floor for any NumPy
    engine): a tape of saved values, then the backward formulas in reverse order."""
    floats = {k: v for k, v in params.items() if getattr(v, "dtype", None) == "float32"}
    forward, backward = case.np_forward, case.np_backward

    def run(n):
        grads = {k: np.zeros_like(v) for k, v in floats.items()}
        tape = []
        y = x0
        for _ in range(n):
            y, saved = forward(y, params)
            tape.append(saved)
        y.sum()
        g = np.ones_like(y)
        for saved in reversed(tape):
            g = backward(g, saved, params, grads)
        return g, grads

    return run


def run_tiny(cfg: dict, torch, torch_reason: str | None) -> list[dict]:
    n_short, n_long = cfg["chain"]
    records = []
    impls = ["tinynet", "numpy"] + (["torch"] if torch is not None else [])
    for shape in SHAPES:
        for case in CASES:
            rng = np.random.default_rng(0)
            x0 = rng.standard_normal(shape).astype("float32")
            params = case.params(shape, rng)
            for impl in impls:
                if impl == "tinynet":
                    fn = tinynet_chain(case, x0, params)
                elif impl == "torch":
                    fn = torch_chain(case, x0, params, torch)
                else:
                    fn = numpy_chain(case, x0, params)
                steps, _ = _timing.time_difference(fn, n_short, n_long, cfg["tiny_repeats"],
                                                   cfg["tiny_warmup"])
                rec = {"section": "tiny", "case": case.name, "shape": list(shape),
                       "impl": impl, "unit": "us", "step": case.note, "partner": case.partner,
                       "chain_lengths": [n_short, n_long], "raw": _timing.summarize(steps, 1e6)}
                if case.name == "tanh":  # the fixed part: x.sum().backward() on a bare leaf
                    fixed = _timing.time_calls(lambda fn=fn: fn(0), cfg["tiny_repeats"],
                                               cfg["tiny_warmup"])
                    records.append({"section": "tiny", "case": "fixed: x.sum().backward()",
                                    "shape": list(shape), "impl": impl, "unit": "us",
                                    "stats": _timing.summarize(fixed, 1e6)})
                records.append(rec)
            if torch is None:
                records.append({"section": "tiny", "case": case.name, "shape": list(shape),
                                "impl": "torch", "skipped": torch_reason})
    _subtract_partners(records)
    return records


def _subtract_partners(records: list[dict]) -> None:
    """stats = raw per-step cost minus the partner op's median (for chains of two ops)."""
    raw = {(r["case"], tuple(r["shape"]), r["impl"]): r for r in records if "raw" in r}
    for rec in raw.values():
        stats = dict(rec["raw"])
        if rec["partner"] is not None:
            base = raw[(rec["partner"], tuple(rec["shape"]), rec["impl"])]["raw"]["median"]
            for key in ("median", "q1", "q3", "min", "max"):
                stats[key] = stats[key] - base
            rec["partner_median_us"] = base
        rec["stats"] = stats


# --- section 2: large tensors ---------------------------------------------------------------------


def run_large(cfg: dict, torch, torch_reason: str | None) -> list[dict]:
    rng = np.random.default_rng(0)
    n, m = cfg["matmul_n"], cfg["elementwise_n"]
    a0 = rng.standard_normal((n, n)).astype("float32")
    b0 = rng.standard_normal((n, n)).astype("float32")
    ga = rng.standard_normal((n, n)).astype("float32")
    v0 = rng.uniform(-2, 2, m).astype("float32")
    gv = rng.standard_normal(m).astype("float32")

    def np_matmul():
        c = a0 @ b0
        return c, ga @ b0.T, a0.T @ ga

    def np_tanh():
        y = np.tanh(v0)
        return y, gv * (1 - y * y)

    def np_exp():
        y = np.exp(v0)
        return y, gv * y

    def tn_case(op, inputs, grad):
        leaves = [tn.tensor(a, requires_grad=True) for a in inputs]
        g = tn.tensor(grad)

        def run():
            for t in leaves:
                t.grad = None
            op(*leaves).backward(g)

        return run

    def torch_case(op, inputs, grad):
        leaves = [torch.from_numpy(a.copy()).requires_grad_() for a in inputs]
        g = torch.from_numpy(grad)

        def run():
            for t in leaves:
                t.grad = None
            op(*leaves).backward(g)

        return run

    workloads = [
        (f"matmul ({n}, {n}) @ ({n}, {n})", np_matmul, lambda a, b: a @ b, (a0, b0), ga,
         cfg["matmul_repeats"]),
        (f"tanh ({m},)", np_tanh, lambda v: v.tanh(), (v0,), gv, cfg["elementwise_repeats"]),
        (f"exp ({m},)", np_exp, lambda v: v.exp(), (v0,), gv, cfg["elementwise_repeats"]),
    ]
    records = []
    for name, np_fn, op, inputs, grad, repeats in workloads:
        fns = {"tinynet": tn_case(op, inputs, grad), "numpy": np_fn}
        if torch is not None:
            fns["torch"] = torch_case(op, inputs, grad)
        for impl, fn in fns.items():
            samples = _timing.time_calls(fn, repeats, cfg["large_warmup"])
            records.append({"section": "large", "case": name, "impl": impl, "unit": "ms",
                            "stats": _timing.summarize(samples, 1e3)})
        if torch is None:
            records.append({"section": "large", "case": name, "impl": "torch",
                            "skipped": torch_reason})
    return records


# --- section 3: an MLP training step --------------------------------------------------------------


def run_mlp(cfg: dict, torch, torch_reason: str | None) -> list[dict]:
    records = []
    for batch in cfg["mlp_batches"]:
        rng = np.random.default_rng(0)
        x0 = rng.standard_normal((batch, 784)).astype("float32")
        labels = rng.integers(0, 10, batch)
        rows = np.arange(batch)
        init = {"W1": (0.05 * rng.standard_normal((784, 128))).astype("float32"),
                "b1": np.zeros(128, "float32"),
                "W2": (0.1 * rng.standard_normal((128, 10))).astype("float32"),
                "b2": np.zeros(10, "float32")}

        def np_step(p=init, x=x0, labels=labels, rows=rows, batch=batch):
            z1 = x @ p["W1"] + p["b1"]  # (B, 128)
            h = np.maximum(z1, 0)
            z2 = h @ p["W2"] + p["b2"]  # (B, 10)
            s = z2 - z2.max(-1, keepdims=True)
            logp = s - np.log(np.exp(s).sum(-1, keepdims=True))
            loss = -logp[rows, labels].mean()
            dz2 = np.exp(logp)  # softmax - onehot, over B
            dz2[rows, labels] -= 1
            dz2 *= 1.0 / batch
            grads = {"W2": h.T @ dz2, "b2": dz2.sum(0)}
            dz1 = np.where(z1 > 0, dz2 @ p["W2"].T, 0)
            grads["W1"] = x.T @ dz1
            grads["b1"] = dz1.sum(0)
            return loss, grads

        tp = {k: tn.tensor(v, requires_grad=True) for k, v in init.items()}
        tx = tn.tensor(x0)

        def tn_step(create_graph, p=tp, x=tx, index=(rows, labels)):
            for t in p.values():
                t.grad = None
            h = (x @ p["W1"] + p["b1"]).relu()  # (B, 128)
            logp = (h @ p["W2"] + p["b2"]).log_softmax(-1)  # (B, 10)
            loss = -logp[index].mean()
            loss.backward(create_graph=create_graph)
            return loss

        fns = {"tinynet": lambda: tn_step(False), "tinynet create_graph": lambda: tn_step(True),
               "numpy": np_step}
        if torch is not None:
            qp = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in init.items()}
            qx = torch.from_numpy(x0)
            qindex = (torch.from_numpy(rows), torch.from_numpy(labels))

            def torch_step(p=qp, x=qx, index=qindex):
                for t in p.values():
                    t.grad = None
                h = (x @ p["W1"] + p["b1"]).relu()
                logp = (h @ p["W2"] + p["b2"]).log_softmax(-1)
                loss = -logp[index].mean()
                loss.backward()
                return loss

            fns["torch"] = torch_step
        name = f"MLP step {batch}x784 -> 128 -> 10"
        for impl, fn in fns.items():
            samples = _timing.time_calls(fn, cfg["mlp_repeats"], cfg["mlp_warmup"])
            records.append({"section": "mlp", "case": name, "impl": impl, "unit": "ms",
                            "stats": _timing.summarize(samples, 1e3)})
        if torch is None:
            records.append({"section": "mlp", "case": name, "impl": "torch",
                            "skipped": torch_reason})
    return records


# --- running the sections, reporting ----------------------------------------------------------


def run_section(section: str, quick: bool, threads: int, out_path: str) -> None:
    """Child process: thread variables are already set by the parent; measure, write JSON."""
    torch, reason = _timing.import_torch(threads)
    runner = {"tiny": run_tiny, "large": run_large, "mlp": run_mlp}[section]
    records = runner(_settings(quick), torch, reason)
    _timing.write_records(out_path, records, "op_overhead", torch, threads, quick)


def _ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def _fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def _median(index, key):
    rec = index.get(key)
    return rec["stats"]["median"] if rec and "stats" in rec else None


def add_ratios(records: list[dict]) -> None:
    index = {(r["section"], r["case"], tuple(r.get("shape", ())), r["impl"]): r for r in records}
    for (section, case, shape, impl), rec in index.items():
        if not impl.startswith("tinynet") or "stats" not in rec:
            continue
        mine = rec["stats"]["median"]
        rec["ratio_to_numpy"] = _ratio(mine, _median(index, (section, case, shape, "numpy")))
        rec["ratio_to_torch"] = _ratio(mine, _median(index, (section, case, shape, "torch")))


def _header(env: dict) -> str:
    git = env.get("git") or {}
    revision = git.get("commit", "unknown")[:10]
    if git.get("tinynet_modified"):
        revision += " + local changes"
    blas = env["blas"]
    return (f"Machine: {env['cpu']} ({env['logical_cpus']} logical CPUs), Python {env['python']}, "
            f"NumPy {env['numpy']} ({blas.get('name')} {blas.get('version')}), torch "
            f"{env.get('torch', 'absent')}; tinynet {revision}; {env['date']}")


def _tiny_table(index: dict, threads: int) -> list[str]:
    lines = ["", f"Per-op forward + backward, microseconds (median; threads: {threads})", "",
             "| op | shape | tinynet | NumPy (hand-written) | PyTorch | tinynet/PyTorch "
             "| tinynet/NumPy |", "|---|---|---:|---:|---:|---:|---:|"]
    for shape in SHAPES:
        for name in [c.name for c in CASES] + ["fixed: x.sum().backward()"]:
            t, n, q = (_median(index, ("tiny", name, shape, impl))
                       for impl in ("tinynet", "numpy", "torch"))
            if t is not None:
                lines.append(f"| {name} | {shape} | {_fmt(t, 2)} | {_fmt(n, 2)} | {_fmt(q, 2)} "
                             f"| {_fmt(_ratio(t, q), 2)} | {_fmt(_ratio(t, n), 2)} |")
    return lines


def _timed_table(index: dict, section: str, title: str, cases: list, threads: int) -> list[str]:
    """Milliseconds with IQR; the MLP table adds the create_graph column and its ratio."""
    impls = ["tinynet", "numpy", "torch"]
    higher = section == "mlp"
    if higher:
        impls.insert(1, "tinynet create_graph")
    names = {"numpy": "NumPy", "torch": "PyTorch"}
    head = "| workload | " + " | ".join(names.get(i, i) for i in impls)
    head += " | tinynet/NumPy | tinynet/PyTorch |" + (" create_graph/first-order |" * higher)
    lines = ["", f"{title} (median [IQR]; threads: {threads})", "", head,
             "|---|" + "---:|" * (len(impls) + 2 + higher)]
    for case in cases:
        medians, cells = {}, []
        for impl in impls:
            rec = index.get((section, case, (), impl))
            if rec and "stats" in rec:
                s = rec["stats"]
                medians[impl] = s["median"]
                cells.append(f"{s['median']:.2f} [{s['q1']:.2f}, {s['q3']:.2f}]")
            else:
                cells.append("-")
        t = medians.get("tinynet")
        cells += [_fmt(_ratio(t, medians.get(other)), 2) for other in ("numpy", "torch")]
        if higher:
            cells.append(_fmt(_ratio(medians.get("tinynet create_graph"), t), 2))
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return lines


def report(records: list[dict]) -> str:
    """The Markdown tables printed at the end of a run."""
    index = {(r["section"], r["case"], tuple(r.get("shape", ())), r["impl"]): r for r in records}
    lines = [_header(records[0]["env"])]
    titles = {"tiny": None, "large": "Large tensors, forward + backward, milliseconds",
              "mlp": "MLP training step (forward, log_softmax + NLL, backward), milliseconds"}
    for section, title in titles.items():
        mine = [r for r in records if r["section"] == section]
        if not mine:
            continue
        threads = mine[0]["env"]["threads"]
        if title is None:
            lines += _tiny_table(index, threads)
        else:
            cases = list(dict.fromkeys(r["case"] for r in mine))
            lines += _timed_table(index, section, title, cases, threads)
    for reason in sorted({r["skipped"] for r in records if "skipped" in r}):
        lines += ["", f"PyTorch column skipped: {reason}"]
    return "\n".join(lines)


def check_cases() -> None:
    """Print how far tinynet's and PyTorch's gradients are from the hand-written NumPy ones, per
    case, for a chain of 5 steps: the three columns of the tiny table must compute the same."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        torch = None
    for shape in SHAPES:
        for case in CASES:
            rng = np.random.default_rng(1)
            x0 = rng.standard_normal(shape).astype("float32")
            params = case.params(shape, rng)
            grad_x, grads = numpy_chain(case, x0, params)(5)
            diffs = []
            runners = [tinynet_chain(case, x0, params)]
            if torch is not None:
                runners.append(torch_chain(case, x0, params, torch))
            for run in runners:
                leaves = run(5)
                got = [np.asarray(t.grad) for t in leaves]
                want = [grad_x] + list(grads.values())
                diffs += [float(np.abs(g - w).max()) for g, w in zip(got, want)]
            print(f"{case.name:12s} {str(shape):9s} max |grad - NumPy grad| = {max(diffs):.1e}")


def profile(op: str, shape: tuple, quick: bool) -> None:
    """Print where tinynet spends a chain of ``op`` (cProfile, sorted by own time)."""
    import cProfile  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    rng = np.random.default_rng(0)
    case = CASE_BY_NAME[op]
    fn = tinynet_chain(case, rng.standard_normal(shape).astype("float32"), case.params(shape, rng))
    fn(10)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20 if quick else 200):
        fn(100)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 30 s)")
    parser.add_argument("--json", help="where to write the JSON records (default: "
                                       "runs/benchmarks/op_overhead-<cpu>.json)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/torch threads for the large and mlp sections (tiny always "
                             "uses 1)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator thresholds alone (see _timing.py)")
    parser.add_argument("--sections", default="tiny,large,mlp", help="comma-separated subset")
    parser.add_argument("--profile", metavar="OP", help="cProfile tinynet's chain of OP and exit")
    parser.add_argument("--check", action="store_true",
                        help="print how far each column's gradients are from NumPy's, and exit")
    parser.add_argument("--section", help=argparse.SUPPRESS)  # internal: run one section here
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.profile:
        profile(args.profile, (16, 16), args.quick)
        return
    if args.check:
        check_cases()
        return
    if args.section:
        run_section(args.section, args.quick, args.threads, args.out)
        return

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"warning: load average {load:.2f} on {os.cpu_count()} CPUs; other processes will "
              "inflate and scatter these timings (the load is recorded in every JSON record)",
              file=sys.stderr)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.sections.split(","):
            threads = 1 if section == "tiny" else args.threads
            out = os.path.join(tmp, f"{section}.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--section", section,
                   "--threads", str(threads), "--out", out] + (["--quick"] if args.quick else [])
            print(f"running section {section} ({threads} thread(s)) ...", file=sys.stderr)
            subprocess.run(cmd, env=_timing.child_env(threads, not args.default_malloc),
                           check=True)
            with open(out) as f:
                records += json.load(f)
    add_ratios(records)
    print(report(records))
    _timing.save_records(records, args.json, "op_overhead")


if __name__ == "__main__":
    main()
