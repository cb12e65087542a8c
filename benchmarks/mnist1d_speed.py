"""MNIST-1D training steps: tinynet next to PyTorch CPU, one BLAS thread, the paper's recipe.

    python benchmarks/mnist1d_speed.py                 # the CNN, a few seconds
    python benchmarks/mnist1d_speed.py --quick         # smoke run, seconds
    python benchmarks/mnist1d_speed.py --json benchmarks/results/mnist1d_speed-<machine>.json
    python benchmarks/mnist1d_speed.py --profile cnn   # cProfile of tinynet's step

A step is one update of the paper's recipe (docs/mnist1d.md): a batch of 100 signals of the
embedded MNIST-1D training set, taken in order, forward, cross entropy, ``zero_grad``, backward,
Adam (lr 1e-2). Both libraries train the same model from the same initial weights on the same
batches; before timing, the first losses are compared (float32, so equal to rounding).

Models (``MODELS``; one entry each, so that other MNIST-1D models can be added as rows):

* ``cnn``: ``tn.models.mnist1d_cnn()`` (Conv1d 1->25 k5 s2 p1, Conv1d 25->25 k3 s2 p1 twice,
  ReLU after each, Linear 125->10; 5,210 parameters) and the paper's ``ConvBase`` in PyTorch.
  The project's target: tinynet / PyTorch <= 1.2 per step.

Timing: the measurements run in a child process whose environment pins the BLAS/OpenMP thread
count (and keeps glibc from returning freed memory to the OS; ``_timing.py``) before NumPy and
torch load. After warm-up steps, each round times ``--steps`` tinynet steps and then as many
PyTorch steps, back to back, so load from other processes hits both alike; the ratio is the
median over rounds of the two times' ratio. No asserts: this script measures. Markdown to stdout,
JSON records to ``runs/benchmarks/mnist1d_speed-<cpu>.json`` (or ``--json``); the published
records are in ``benchmarks/results/``, the summary in benchmarks/README.md.
"""

from __future__ import annotations

import argparse

import _timing

TARGETS = {"cnn": 1.2}  # tinynet / PyTorch per training step
BATCH, LR = 100, 1e-2


def _torch_cnn(torch):
    """The paper's ConvBase (notebooks/models.py of greydanus/mnist1d)."""
    nn = torch.nn

    class ConvBase(nn.Module):
        def __init__(self, channels=25):
            super().__init__()
            self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
            self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
            self.linear = nn.Linear(5 * channels, 10)

        def forward(self, x):
            h = self.conv1(x.view(-1, 1, x.shape[-1])).relu()
            h = self.conv3(self.conv2(h).relu()).relu()
            return self.linear(h.view(h.shape[0], -1))

    return ConvBase()


MODELS = {"cnn": ("mnist1d_cnn", _torch_cnn)}  # name -> (tn.models builder, torch builder)


def _make(name: str, torch):
    """tinynet's and PyTorch's step functions (PyTorch's None without torch), from the same
    weights, each walking the training set in order, and their first losses."""
    import numpy as np  # noqa: PLC0415 - after the parent set the thread variables

    import tinynet as tn  # noqa: PLC0415

    tn.manual_seed(0)
    model = getattr(tn.models, MODELS[name][0])()
    train, _ = tn.datasets.mnist1d()
    x, y = train.tensors
    batches = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(y), BATCH)]
    loss_fn, opt = tn.nn.CrossEntropyLoss(), tn.optim.Adam(model.parameters(), lr=LR)
    state = {"step": 0}

    def tn_step():
        xb, yb = batches[state["step"] % len(batches)]
        state["step"] += 1
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    if torch is None:
        return tn_step, None, None
    theirs = MODELS[name][1](torch)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in model.state_dict().items()})
    tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())
    t_loss_fn, t_opt = torch.nn.CrossEntropyLoss(), torch.optim.Adam(theirs.parameters(), lr=LR)
    t_state = {"step": 0}

    def torch_step():
        i = t_state["step"] * BATCH % len(ty)
        t_state["step"] += 1
        loss = t_loss_fn(theirs(tx[i:i + BATCH]), ty[i:i + BATCH])
        t_opt.zero_grad()
        loss.backward()
        t_opt.step()
        return loss

    first = [(float(tn_step().item()), float(torch_step().item())) for _ in range(3)]
    diff = max(abs(a - b) / abs(b) for a, b in first)
    return tn_step, torch_step, float(np.float64(diff))


def run_child(names: list, quick: bool, threads: int, out_path: str) -> None:
    torch, reason = _timing.import_torch(threads)
    steps, rounds, warmup = (5, 5, 10) if quick else (40, 15, 80)
    records = []
    for name in names:
        mine, theirs, diff = _make(name, torch)
        fns = {"tinynet": mine} | ({"torch": theirs} if theirs else {})
        samples, _ = _timing.interleaved(fns, rounds, warmup, calls=steps)
        paired = None
        if theirs:
            paired = _timing.summarize([a / b for a, b in zip(samples["tinynet"],
                                                              samples["torch"])])
        for impl, times in samples.items():
            records.append({"model": name, "impl": impl, "batch": BATCH, "unit": "ms",
                            "steps_per_round": steps, "stats": _timing.summarize(times, 1e3),
                            "paired_ratio_to_torch": paired if impl == "tinynet" else None,
                            "first_losses_max_rel_diff": diff if impl == "tinynet" else None,
                            "target": TARGETS.get(name)})
        if theirs is None:
            records.append({"model": name, "impl": "torch", "skipped": reason})
    _timing.write_records(out_path, records, "mnist1d_speed", torch, threads, quick)


def report(records: list) -> str:
    timed = [r for r in records if "stats" in r]
    if not timed:
        return "no measurements"
    env = timed[0]["env"]
    lines = [(f"{env['cpu']} ({env['logical_cpus']} logical CPUs), NumPy {env['numpy']}, torch "
              f"{env.get('torch', 'absent')}, threads {env['threads']}, {env['date']}"), "",
             "MNIST-1D training step (batch 100, Adam), milliseconds: median [IQR]", "",
             "| model | tinynet | PyTorch | tinynet/PyTorch (paired) | target | met |",
             "|---|---:|---:|---:|---:|---|"]
    index = {(r["model"], r["impl"]): r for r in timed}
    for name in MODELS:
        mine = index.get((name, "tinynet"))
        if mine is None:
            continue
        theirs = index.get((name, "torch"))
        paired = mine["paired_ratio_to_torch"]
        ratio = "-" if paired is None else f"{paired['median']:.2f}"
        target = mine["target"]
        met = "-" if paired is None or target is None else \
            ("yes" if paired["median"] <= target else "no")
        lines.append(f"| {name} | {_timing.median_iqr(mine)} | {_timing.median_iqr(theirs)} | {ratio} | {target} | {met} |")
        if mine["first_losses_max_rel_diff"] is not None:
            lines.append(f"\nFirst three losses, largest relative difference tinynet vs PyTorch: "
                         f"{mine['first_losses_max_rel_diff']:.1e} (float32).")
    for reason in sorted({r["skipped"] for r in records if "skipped" in r}):
        lines += ["", f"PyTorch column skipped: {reason}"]
    return "\n".join(lines)


def profile(name: str) -> None:
    mine, _, _ = _make(name, None)
    _timing.print_profile(mine, warmup=20, calls=200)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--quick", action="store_true", help="few steps (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    parser.add_argument("--json", help="where to write the JSON records (default: "
                                       "runs/benchmarks/mnist1d_speed-<cpu>.json)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator thresholds alone (see _timing.py)")
    parser.add_argument("--profile", metavar="MODEL", help="cProfile tinynet's step and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure here, write JSON
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = set(names) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    if args.profile:
        profile(args.profile)
        return
    if args.child:
        run_child(names, args.quick, args.threads, args.child)
        return
    _timing.warn_if_loaded()
    records = _timing.records_from_child(
        __file__, ["--models", ",".join(names), "--threads", str(args.threads)]
        + (["--quick"] if args.quick else []), args.threads, not args.default_malloc)
    print(report(records))
    _timing.save_records(records, args.json, "mnist1d_speed")


if __name__ == "__main__":
    main()
