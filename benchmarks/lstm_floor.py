"""How close can NumPy get to PyTorch's fused CPU LSTM? A hand-written NumPy LSTM layer next to
tinynet's ``LSTM`` and PyTorch's, forward + backward, one BLAS thread, same weights and data.

    python benchmarks/lstm_floor.py            # about 20 seconds on 2 cores
    python benchmarks/lstm_floor.py --quick    # smoke run, a few seconds
    python benchmarks/lstm_floor.py --json out.json

The workload is ``rnn_speed.py``'s ``lstm`` case without the head and the optimizer:
``LSTM(64, 128)`` over 50 steps, batch 32, the gradient of ``sum(h_last * g)`` with respect to
every weight (the input needs none, as in training). The NumPy column is the fastest plain NumPy
this author could write for it: the input projection of all steps in one product, one
``(32, 128) @ (128, 512)`` product per step forward and backward with both operands in the layout
OpenBLAS reads fastest, every activation written with ``out=`` into arrays made once, all four
activations from one ``tanh``, the weight gradients in one product over all steps. It is what a
NumPy library could reach with no per-op overhead at all: the floor of the NumPy approach. If that
floor is above PyTorch's time, no NumPy-level change to tinynet meets a "<= 1.0x PyTorch" LSTM
target; only a compiled kernel for the gate loop would. Before timing, the three gradients are
compared (largest relative difference, float32).

Timing as in ``rnn_speed.py``: a child process pins the threads (and glibc's allocator) before
NumPy and torch load; warm-up, then repeats that time the three back to back; ratios are medians
of the per-repeat ratios. Markdown to stdout, JSON records to
``runs/benchmarks/lstm_floor-<cpu>.json`` (or ``--json``). No asserts: this script measures.
"""

from __future__ import annotations

import argparse

import _timing

L, B, I, H = 50, 32, 64, 128


def numpy_lstm(np, x, w_ih, w_hh, b, g):
    """Forward and backward of one LSTM layer over ``x`` (L, B, I) in plain NumPy; returns the
    gradients of ``sum(h_last * g)`` with respect to ``w_ih``, ``w_hh`` and ``b``."""
    G = 4 * H
    dtype = x.dtype
    s = np.full(G, 0.5, dtype=dtype)
    s[2 * H:3 * H] = 1.0  # sigmoid(z) = tanh(z / 2) / 2 + 1 / 2; the cell gate is tanh(z)
    offset = 1 - s
    act = (x.reshape(L * B, I) @ w_ih.T).reshape(L, B, G)
    act += b
    hs = np.zeros((L + 1, B, H), dtype=dtype)  # hs[t] is h_{t-1}
    cs = np.zeros((L + 1, B, H), dtype=dtype)
    tcs = np.empty((L, B, H), dtype=dtype)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    hw = np.empty((B, G), dtype=dtype)
    for t in range(L):
        a = act[t]
        np.matmul(hs[t], w_hh_t, out=hw)
        a += hw
        a *= s
        np.tanh(a, out=a)  # t = tanh(pre * s) ...
        a *= s
        a += offset  # ... and the activations [i, f, n, o] = t * s + (1 - s)
        np.multiply(a[:, H:2 * H], cs[t], out=cs[t + 1])
        cs[t + 1] += a[:, :H] * a[:, 2 * H:3 * H]
        np.tanh(cs[t + 1], out=tcs[t])
        np.multiply(a[:, 3 * H:], tcs[t], out=hs[t + 1])
    d = act * (1 - act)  # sigmoid'(z) = a (1 - a); tanh'(z) = 1 - n^2 for the cell gate
    n = act[:, :, 2 * H:3 * H]
    np.multiply(n, n, out=d[:, :, 2 * H:3 * H])
    np.subtract(1, d[:, :, 2 * H:3 * H], out=d[:, :, 2 * H:3 * H])
    dpre = np.empty((L, B, G), dtype=dtype)
    dh, dc = g.copy(), np.zeros((B, H), dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    for t in range(L - 1, -1, -1):
        a, tc, dz = act[t], tcs[t], dpre[t]
        np.multiply(dh, tc, out=dz[:, 3 * H:])
        np.multiply(tc, tc, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= a[:, 3 * H:]
        tmp *= dh
        dc += tmp
        np.multiply(dc, a[:, 2 * H:3 * H], out=dz[:, :H])
        np.multiply(dc, cs[t], out=dz[:, H:2 * H])
        np.multiply(dc, a[:, :H], out=dz[:, 2 * H:3 * H])
        dc *= a[:, H:2 * H]
        dz *= d[t]
        dh = dz @ w_hh
    flat = dpre.reshape(L * B, G)
    return flat.T @ x.reshape(L * B, I), flat.T @ hs[:-1].reshape(L * B, H), flat.sum(0)


def run_child(quick: bool, threads: int, out_path: str) -> None:
    import numpy as np  # noqa: PLC0415 - after the thread variables are set

    import tinynet as tn  # noqa: PLC0415

    torch, reason = _timing.import_torch(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((L, B, I)).astype(np.float32)
    g = rng.standard_normal((B, H)).astype(np.float32)
    tn.manual_seed(0)
    layer = tn.nn.LSTM(I, H)
    p = {k: v.numpy() for k, v in layer.state_dict().items()}
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    b = p["bias_ih_l0"] + p["bias_hh_l0"]
    tx, tg = tn.tensor(x), tn.tensor(g)

    def tinynet_step():
        layer.zero_grad()
        out, _ = layer(tx)
        (out[-1] * tg).sum().backward()

    def numpy_step():
        return numpy_lstm(np, x, w_ih, w_hh, b, g)

    fns = {"numpy": numpy_step, "tinynet": tinynet_step}
    diffs = {}
    grads = numpy_step()
    tinynet_step()
    ours = (layer.weight_ih_l0.grad.numpy(), layer.weight_hh_l0.grad.numpy(),
            layer.bias_ih_l0.grad.numpy())
    if torch is not None:
        ref = torch.nn.LSTM(I, H)
        ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in p.items()})
        qx, qg = torch.from_numpy(x), torch.from_numpy(g)

        def torch_step():
            ref.zero_grad()
            out, _ = ref(qx)
            (out[-1] * qg).sum().backward()

        fns["torch"] = torch_step
        torch_step()
        theirs = (ref.weight_ih_l0.grad.numpy(), ref.weight_hh_l0.grad.numpy(),
                  ref.bias_ih_l0.grad.numpy())
        for name, got in (("numpy", grads), ("tinynet", ours)):
            diffs[name] = max(float(np.abs(a - c).max() / np.abs(c).max())
                              for a, c in zip(got, theirs))
    cfg = {"warmup": 2, "repeats": 5} if quick else {"warmup": 5, "repeats": 40}
    wall, cpu = _timing.interleaved(fns, cfg["repeats"], cfg["warmup"])
    records = []
    for impl, times in wall.items():
        rec = {"case": "lstm 64->128 seq 50 batch 32, forward + backward", "impl": impl,
               "unit": "ms", "stats": _timing.summarize(times, 1e3),
               "cpu_stats": _timing.summarize(cpu[impl], 1e3),
               "max_rel_diff_vs_torch": diffs.get(impl)}
        if "torch" in wall:
            rec["paired_ratio_to_torch"] = _timing.summarize(
                [a / c for a, c in zip(times, wall["torch"])])
        records.append(rec)
    if torch is None:
        records.append({"impl": "torch", "skipped": reason})
    _timing.write_records(out_path, records, "lstm_floor", torch, threads, quick)


def report(records: list) -> str:
    timed = {r["impl"]: r for r in records if "stats" in r}
    env = next(iter(timed.values()))["env"]
    lines = [f"{env['cpu']}, NumPy {env['numpy']}, torch {env.get('torch', 'absent')}; threads: "
             f"{env['threads']}; {env['date']}", "",
             "LSTM(64, 128), 50 steps, batch 32, forward + backward, float32, ms: median [IQR]",
             "", "| implementation | time | / PyTorch | max rel. diff of the gradients |",
             "|---|---:|---:|---:|"]
    for impl in ("numpy", "tinynet", "torch"):
        r = timed.get(impl)
        if r is None:
            continue
        ratio = r.get("paired_ratio_to_torch")
        diff = r.get("max_rel_diff_vs_torch")
        lines.append(f"| {impl} | {_timing.median_iqr(r)} | "
                     f"{'-' if not ratio else format(ratio['median'], '.2f')} | "
                     f"{'-' if diff is None else format(diff, '.1e')} |")
    for r in records:
        if "skipped" in r:
            lines += ["", f"PyTorch column skipped: {r['skipped']}"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    parser.add_argument("--json", help="where to write the JSON records (default: "
                                       "runs/benchmarks/lstm_floor-<cpu>.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure here, write JSON
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.quick, args.threads, args.child)
        return
    _timing.warn_if_loaded("the ratios are measured side by side")
    records = _timing.records_from_child(
        __file__, ["--threads", str(args.threads)] + (["--quick"] if args.quick else []),
        args.threads, steady_malloc=True)
    print(report(records))
    _timing.save_records(records, args.json, "lstm_floor")


if __name__ == "__main__":
    main()
