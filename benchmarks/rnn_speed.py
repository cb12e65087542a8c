"""Recurrent training steps: tinynet next to PyTorch CPU, one BLAS thread, same weights and data.

    python benchmarks/rnn_speed.py                 # full run, about a minute on 2 cores
    python benchmarks/rnn_speed.py --quick         # smoke run, a few seconds
    python benchmarks/rnn_speed.py --cases gru     # gru, lstm (default: both)
    python benchmarks/rnn_speed.py --json out.json
    python benchmarks/rnn_speed.py --profile lstm  # cProfile of tinynet's step for one case

The two workloads of issue 19 (``tinynet.bench.workloads.RECURRENT``):

* ``gru``: the MNIST-1D paper's model, ``tn.models.mnist1d_gru()`` (bidirectional GRU, hidden 6,
  40 steps of one value, ``Linear(480, 10)`` on all outputs), batch 100;
* ``lstm``: ``LSTM(64, 128)`` over 50 steps, ``Linear(128, 10)`` on the last output, batch 32.

A step is one training step: forward, cross-entropy loss, ``zero_grad``, backward, Adam (lr
1e-2). PyTorch runs the same network (weights copied by state dict), the same batch and the same
optimizer; before timing, one step of each is compared (the largest relative difference of the
loss and every gradient is recorded). Timing follows ``conv.py``: a child process pins the
BLAS/OpenMP threads (and glibc's allocator, see ``_timing.py``) before NumPy and torch load;
warm-up steps, then each repeat times one tinynet step and one PyTorch step back to back; the
ratio tinynet/PyTorch is the median over repeats of the ratio of those two times, so load from
other processes hits both alike; each step's CPU time (``time.thread_time``) is recorded too, and
its paired ratio, which load from other processes does not inflate. PyTorch's CPU LSTM is one
fused oneDNN layer (``MkldnnRnnLayer``: forward and backward of all steps in C++); a third column
runs PyTorch with oneDNN off (``torch.backends.mkldnn.flags(enabled=False)``), its per-step path,
the one its GRU takes anyway. Targets: ratio <= 1.0 for both. No asserts: this script
measures. Markdown to stdout, one JSON record per measurement to
``runs/benchmarks/rnn_speed-<cpu>.json`` (or ``--json``; the published records are in
``benchmarks/results/``); method and latest results in benchmarks/README.md.
"""

from __future__ import annotations

import argparse

import _timing

CASES = ("gru", "lstm")
TARGET = 1.0  # the target: a training step no slower than PyTorch CPU's
LR = 1e-2


def _settings(quick: bool) -> dict:
    return {"warmup": 2, "repeats": 5} if quick else {"warmup": 5, "repeats": 40}


def _make(case: str, torch):
    """One training step each of tinynet and PyTorch on the same network, data and optimizer."""
    import numpy as np  # noqa: PLC0415 - imported after the thread variables are set

    import tinynet as tn  # noqa: PLC0415
    from tinynet.bench.workloads import RECURRENT, build_recurrent, build_tinynet  # noqa: PLC0415

    w = RECURRENT[case]
    rng = np.random.default_rng(0)
    shape = (w["batch"], w["seq_len"]) + ((w["input_size"],) if w["input_size"] > 1 else ())
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, w["batch"])
    tn.manual_seed(0)
    net = build_tinynet(case)
    opt = tn.optim.Adam(net.parameters(), lr=LR)
    tx, ty = tn.tensor(x), tn.tensor(y)
    loss_fn = tn.nn.CrossEntropyLoss()

    def tn_step():
        loss = loss_fn(net(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    mine = {"step": tn_step, "net": net}
    if torch is None:
        return mine, None
    ref = build_recurrent(torch.nn, case)
    ref.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                         for k, v in net.state_dict().items()})
    ropt = torch.optim.Adam(ref.parameters(), lr=LR)
    qx, qy = torch.from_numpy(x), torch.from_numpy(y)
    rloss_fn = torch.nn.CrossEntropyLoss()

    def torch_step():
        loss = rloss_fn(ref(qx), qy)
        ropt.zero_grad()
        loss.backward()
        ropt.step()
        return loss

    def torch_step_no_onednn():
        with torch.backends.mkldnn.flags(enabled=False):
            return torch_step()

    return mine, {"step": torch_step, "net": ref, "no_onednn": torch_step_no_onednn}


def _differences(mine: dict, theirs: dict) -> dict:
    """Largest |tinynet - PyTorch| of the first step's loss and of every parameter gradient,
    relative to the largest |PyTorch| value of each (float32: ~1e-6)."""
    import numpy as np  # noqa: PLC0415

    a, b = float(mine["step"]().item()), float(theirs["step"]().item())
    diffs = {"loss": abs(a - b) / abs(b)}
    grads = dict(theirs["net"].named_parameters())
    for name, p in mine["net"].named_parameters():
        q = grads[name].grad.numpy()
        diffs[name] = float(np.abs(p.grad.numpy() - q).max() / max(np.abs(q).max(), 1e-30))
    return diffs


def run_cases(names: list, quick: bool, torch, reason) -> list:
    cfg = _settings(quick)
    records = []
    for case in names:
        mine, theirs = _make(case, torch)
        diffs = _differences(mine, theirs) if theirs else None
        fns = {"tinynet": mine["step"]}
        if theirs:
            fns |= {"torch": theirs["step"], "torch_no_onednn": theirs["no_onednn"]}
        samples, cpu = _timing.interleaved(fns, cfg["repeats"], cfg["warmup"])
        paired = plain = None
        if theirs:
            paired = _timing.summarize([t / q for t, q in zip(samples["tinynet"],
                                                               samples["torch"])])
            plain = _timing.summarize([t / q for t, q in zip(samples["tinynet"],
                                                              samples["torch_no_onednn"])])
        for impl, times in samples.items():
            records.append({"case": case, "impl": impl, "unit": "ms",
                            "stats": _timing.summarize(times, 1e3),
                            "cpu_stats": _timing.summarize(cpu[impl], 1e3),
                            "max_rel_diff_vs_torch": diffs if impl == "tinynet" else None,
                            "paired_ratio_to_torch": paired if impl == "tinynet" else None,
                            "paired_ratio_to_torch_no_onednn":
                                plain if impl == "tinynet" else None,
                            "paired_cpu_ratio_to_torch": _timing.summarize(
                                [t / q for t, q in zip(cpu["tinynet"], cpu["torch"])])
                                if impl == "tinynet" and theirs else None})
        if torch is None:
            records.append({"case": case, "impl": "torch", "skipped": reason})
    return records


def run_child(names: list, quick: bool, threads: int, out_path: str) -> None:
    import warnings  # noqa: PLC0415

    # torch says so each time oneDNN is switched off and on again: nothing to act on here
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
    torch, reason = _timing.import_torch(threads)
    records = run_cases(names, quick, torch, reason)
    _timing.write_records(out_path, records, "rnn_speed", torch, threads, quick)


DESCRIBE = {"gru": "MNIST-1D GRU: bidirectional, hidden 6, 40 steps, batch 100",
            "lstm": "LSTM 64 -> 128, 50 steps, batch 32"}


def report(records: list) -> str:
    timed = [r for r in records if "stats" in r]
    if not timed:
        return "no measurements"
    env = timed[0]["env"]
    git = env.get("git") or {}
    revision = git.get("commit", "unknown")[:10] + (" + local changes"
                                                    if git.get("tinynet_modified") else "")
    load = ", ".join(f"{v:.2f}" for v in env["load_average"] or [])
    lines = [(f"{env['cpu']} ({env['logical_cpus']} logical CPUs), NumPy {env['numpy']}, torch "
              f"{env.get('torch', 'absent')}; tinynet {revision}; {env['date']}; threads: "
              f"{env['threads']}; load average at the end: {load}"), "",
             ("Training step (forward, loss, backward, Adam), float32, milliseconds: median "
              "[IQR]. PyTorch runs its LSTM as one fused oneDNN layer on the CPU (its GRU as "
              "per-step ops); the last columns run it with oneDNN off, its per-step path. "
              "Ratios: median over repeats of back-to-back wall times (CPU times: this thread's, "
              "which load from other processes does not inflate)."),
             "", ("| case | tinynet | PyTorch | tinynet/PyTorch | (CPU time) | target | "
                  "PyTorch, oneDNN off | tinynet/that |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    index = {(r["case"], r["impl"]): r for r in timed}
    worst = []
    for case in CASES:
        mine = index.get((case, "tinynet"))
        if mine is None:
            continue
        theirs = index.get((case, "torch"))

        ratio = mine["paired_ratio_to_torch"]
        if ratio:
            worst.append(ratio["median"])

        def med(r):
            return "-" if not r else format(r["median"], ".2f")

        lines.append(f"| {DESCRIBE[case]} | {_timing.median_iqr(mine)} | {_timing.median_iqr(theirs)} | {med(ratio)} | "
                     f"{med(mine.get('paired_cpu_ratio_to_torch'))} | <= {TARGET} | "
                     f"{_timing.median_iqr(index.get((case, 'torch_no_onednn')))} | "
                     f"{med(mine.get('paired_ratio_to_torch_no_onednn'))} |")
    diffs = [max(r["max_rel_diff_vs_torch"].values()) for r in timed
             if r["impl"] == "tinynet" and r["max_rel_diff_vs_torch"]]
    if diffs:
        lines += ["", (f"Largest relative difference from PyTorch over the first step's loss "
                       f"and gradients: {max(diffs):.1e} (float32).")]
    if worst:
        verdict = "met" if max(worst) <= TARGET else "NOT met"
        lines += [f"Target (tinynet/PyTorch <= {TARGET}): {verdict} (worst {max(worst):.2f})."]
    for reason in sorted({r["skipped"] for r in records if "skipped" in r}):
        lines += ["", f"PyTorch column skipped: {reason}"]
    return "\n".join(lines)


def profile(case: str) -> None:
    mine, _ = _make(case, None)
    _timing.print_profile(mine["step"], warmup=3, calls=10)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: "
                        + ", ".join(CASES))
    parser.add_argument("--json", help="where to write the JSON records (default: "
                                       "runs/benchmarks/rnn_speed-<cpu>.json)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator thresholds alone (see _timing.py)")
    parser.add_argument("--profile", metavar="CASE", help="cProfile tinynet's step and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure here, write JSON
    args = parser.parse_args(argv)
    names = args.cases.split(",")
    unknown = set(names) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if args.profile:
        profile(args.profile)
        return
    if args.child:
        run_child(names, args.quick, args.threads, args.child)
        return
    _timing.warn_if_loaded("the ratios are measured side by side")
    records = _timing.records_from_child(
        __file__, ["--cases", args.cases, "--threads", str(args.threads)]
        + (["--quick"] if args.quick else []), args.threads, not args.default_malloc)
    print(report(records))
    _timing.save_records(records, args.json, "rnn_speed")


if __name__ == "__main__":
    main()
