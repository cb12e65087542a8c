"""Conv2d forward + backward: tinynet next to PyTorch CPU, one BLAS thread, achieved GFLOP/s.

    python benchmarks/conv.py                  # full run, about 10 s
    python benchmarks/conv.py --quick          # smoke run (batch 4, few repeats), seconds
    python benchmarks/conv.py --threads 2      # BLAS/torch threads (default 1)
    python benchmarks/conv.py --json out.json --cases mnist1,cifar1
    python benchmarks/conv.py --profile cifar3 # cProfile of tinynet's step for one case

Each case is one ``Conv2d`` layer at a realistic size. A step is what training does with it:
``out = conv(x); out.backward(g)`` with ``x.requires_grad`` (so the input gradient is computed,
as in any layer but the first), gradients cleared before each step. PyTorch runs the same layer
with the same weights, input and upstream gradient, and both results are compared (the largest
difference is recorded) before anything is timed. Forward-only time (under no_grad) is measured
too.

Timing: the measurements run in a child process whose environment pins the BLAS/OpenMP thread
count (and keeps glibc from returning freed memory to the OS; see ``_timing.py``) before NumPy and
torch load. Warm-up steps first; then each repeat times one tinynet step and one PyTorch step back
to back, so load from other processes hits both alike; medians with quartiles. The ratio
tinynet/PyTorch is the median over repeats of the ratio of the two back-to-back times (the JSON
has the ratio of the medians' ingredients too).

FLOPs: ``2 * N * C_out * OH * OW * (C_in / groups) * kH * kW`` per forward, three times that for
forward + backward (input gradient, weight gradient). No asserts: this script measures. Markdown
to stdout, one JSON record per measurement to ``runs/benchmarks/conv-<cpu>.json`` (or ``--json``;
the published records are in ``benchmarks/results/``); method and latest results in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import _timing

TARGET = 2.0  # the project's target: tinynet fwd+bwd within 2x of PyTorch CPU


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    c_in: int
    hw: int
    c_out: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    groups: int = 1
    note: str = ""

    @property
    def out_hw(self) -> int:
        return (self.hw + 2 * self.padding - self.kernel) // self.stride + 1

    def flops(self, batch: int) -> int:
        """Multiply-adds x 2 of one forward pass."""
        return (2 * batch * self.c_out * self.out_hw ** 2 * (self.c_in // self.groups)
                * self.kernel ** 2)

    def describe(self) -> str:
        text = (f"{self.hw}x{self.hw}x{self.c_in} -> {self.c_out}, {self.kernel}x{self.kernel}")
        if self.stride != 1:
            text += f" stride {self.stride}"
        if self.padding:
            text += f" pad {self.padding}"
        if self.groups != 1:
            text += f" groups {self.groups}"
        return text


CASES = (
    Case("mnist1", 32, 1, 28, 8, note="first layer of a small MNIST net"),
    Case("mnist2", 32, 8, 14, 16, note="its second layer, after 2x2 pooling"),
    Case("cifar1", 32, 3, 32, 32, padding=1, note="first layer of a CIFAR net"),
    Case("cifar3", 32, 64, 16, 64, padding=1, note="a middle layer of a CIFAR net"),
    Case("strided", 32, 32, 32, 64, stride=2, padding=1, note="a downsampling layer"),
    Case("depthwise", 32, 64, 16, 64, padding=1, groups=64, note="a depthwise layer"),
)
TARGET_CASES = ("mnist1", "mnist2", "cifar1", "cifar3")  # the sizes the target is stated for


def _settings(quick: bool) -> dict:
    if quick:
        return {"batch": 4, "warmup": 1, "repeats": 5}
    return {"batch": None, "warmup": 3, "repeats": 40}


# --- one case -------------------------------------------------------------------------------------


def _make(case: Case, batch: int, torch):
    """tinynet and PyTorch layers with the same weights, input and upstream gradient (float32)."""
    import numpy as np  # noqa: PLC0415 - imported after the thread variables are set

    import tinynet as tn  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, case.c_in, case.hw, case.hw)).astype(np.float32)
    g = rng.standard_normal((batch, case.c_out, case.out_hw, case.out_hw)).astype(np.float32)
    tn.manual_seed(0)
    layer = tn.nn.Conv2d(case.c_in, case.c_out, case.kernel, case.stride, case.padding,
                         groups=case.groups)
    tx, tg = tn.tensor(x, requires_grad=True), tn.tensor(g)

    def tn_step():
        tx.grad = layer.weight.grad = layer.bias.grad = None
        layer(tx).backward(tg)

    def tn_forward():
        with tn.no_grad():
            layer(tx)

    mine = {"step": tn_step, "forward": tn_forward, "tensors": (tx, layer.weight, layer.bias),
            "out": lambda: layer(tx).detach().numpy()}
    if torch is None:
        return mine, None
    ref = torch.nn.Conv2d(case.c_in, case.c_out, case.kernel, case.stride, case.padding,
                          groups=case.groups)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.numpy()))
        ref.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    qx, qg = torch.tensor(x, requires_grad=True), torch.tensor(g)

    def torch_step():
        qx.grad = ref.weight.grad = ref.bias.grad = None
        ref(qx).backward(qg)

    def torch_forward():
        with torch.no_grad():
            ref(qx)

    theirs = {"step": torch_step, "forward": torch_forward, "tensors": (qx, ref.weight, ref.bias),
              "out": lambda: ref(qx).detach().numpy()}
    return mine, theirs


def _differences(mine: dict, theirs: dict) -> dict:
    """Largest |tinynet - PyTorch| of the output and of each gradient, relative to the largest
    |PyTorch| value (float32 rounding of sums of ~C_in * k * k products: ~1e-6)."""
    import numpy as np  # noqa: PLC0415

    mine["step"]()
    theirs["step"]()
    pairs = [("output", mine["out"](), theirs["out"]())]
    for name, a, b in zip(("grad_input", "grad_weight", "grad_bias"), mine["tensors"],
                          theirs["tensors"]):
        pairs.append((name, a.grad.numpy(), b.grad.numpy()))
    return {name: float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
            for name, a, b in pairs}


def run_cases(names: list[str], quick: bool, threads: int, torch, reason) -> list[dict]:
    cfg = _settings(quick)
    records = []
    for case in CASES:
        if case.name not in names:
            continue
        batch = cfg["batch"] or case.batch
        mine, theirs = _make(case, batch, torch)
        diffs = _differences(mine, theirs) if theirs else None
        for mode in ("step", "forward"):
            fns = {"tinynet": mine[mode]}
            if theirs:
                fns["torch"] = theirs[mode]
            samples, _ = _timing.interleaved(fns, cfg["repeats"], cfg["warmup"])
            flops = case.flops(batch) * (3 if mode == "step" else 1)
            paired = None
            if theirs:  # each repeat's two steps ran back to back, under the same load
                paired = _timing.summarize([t / q for t, q in zip(samples["tinynet"],
                                                                   samples["torch"])])
            for impl, times in samples.items():
                stats = _timing.summarize(times, 1e3)
                records.append({
                    "case": case.name, "layer": asdict(case), "batch": batch, "mode": mode,
                    "impl": impl, "unit": "ms", "stats": stats, "gflop": flops / 1e9,
                    "gflops_per_s": flops / (stats["median"] / 1e3) / 1e9,
                    "max_rel_diff_vs_torch": diffs if impl == "tinynet" else None,
                    "paired_ratio_to_torch": paired if impl == "tinynet" else None})
        if torch is None:
            records.append({"case": case.name, "impl": "torch", "skipped": reason})
    return records


def run_child(names: list[str], quick: bool, threads: int, out_path: str) -> None:
    """Child process: the thread variables are set by the parent; measure and write JSON."""
    torch, reason = _timing.import_torch(threads)
    records = run_cases(names, quick, threads, torch, reason)
    _timing.write_records(out_path, records, "conv", torch, threads, quick)


# --- report ---------------------------------------------------------------------------------------


def _header(env: dict) -> str:
    git = env.get("git") or {}
    revision = git.get("commit", "unknown")[:10] + (" + local changes"
                                                    if git.get("tinynet_modified") else "")
    blas = env["blas"]
    return (f"{env['cpu']} ({env['logical_cpus']} logical CPUs), Python {env['python']}, NumPy "
            f"{env['numpy']} ({blas.get('name')} {blas.get('version')}), torch "
            f"{env.get('torch', 'absent')}; tinynet {revision}; {env['date']}; threads: "
            f"{env['threads']}; load average at the end: "
            f"{', '.join(f'{v:.2f}' for v in env['load_average'] or [])}")


def report(records: list[dict]) -> str:
    timed = [r for r in records if "stats" in r]
    if not timed:
        return "no measurements"
    index = {(r["case"], r["mode"], r["impl"]): r for r in timed}
    title = ("Conv2d forward + backward (input, weight and bias gradients), float32, "
             "milliseconds: median [IQR]")
    head = ("| case | layer (batch N) | GFLOP | tinynet | PyTorch | tinynet GFLOP/s "
            "| PyTorch GFLOP/s | tinynet/PyTorch | forward only: tinynet/PyTorch |")
    lines = [_header(timed[0]["env"]), "", title, "", head,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case in CASES:
        mine = index.get((case.name, "step", "tinynet"))
        if mine is None:
            continue
        theirs = index.get((case.name, "step", "torch"))
        f_mine = index.get((case.name, "forward", "tinynet"))

        def ratio(a):
            paired = a and a["paired_ratio_to_torch"]
            return "-" if not paired else f"{paired['median']:.2f}"

        layer = f"{case.describe()} (N={mine['batch']})"
        lines.append(
            f"| {case.name} | {layer} | {mine['gflop']:.3f} | {_timing.median_iqr(mine)} | {_timing.median_iqr(theirs)} "
            f"| {mine['gflops_per_s']:.1f} | "
            f"{'-' if theirs is None else format(theirs['gflops_per_s'], '.1f')} "
            f"| {ratio(mine)} | {ratio(f_mine)} |")
    diffs = [(r["case"], r["max_rel_diff_vs_torch"]) for r in timed
             if r["impl"] == "tinynet" and r["mode"] == "step" and r["max_rel_diff_vs_torch"]]
    if diffs:
        worst = max(max(d.values()) for _, d in diffs)
        lines += ["", (f"Largest relative difference from PyTorch over all outputs and "
                       f"gradients: {worst:.1e} (float32).")]
    met = [index[(c, "step", "tinynet")]["paired_ratio_to_torch"]["median"]
           for c in TARGET_CASES
           if (index.get((c, "step", "tinynet")) or {}).get("paired_ratio_to_torch")]
    if met:
        verdict = "met" if max(met) <= TARGET else "NOT met"
        lines += [(f"Target (tinynet/PyTorch <= {TARGET} on {', '.join(TARGET_CASES)}): "
                   f"{verdict} (worst {max(met):.2f}).")]
    for reason in sorted({r["skipped"] for r in records if "skipped" in r}):
        lines += ["", f"PyTorch column skipped: {reason}"]
    return "\n".join(lines)


# --- entry point ----------------------------------------------------------------------------------


def profile(name: str, quick: bool) -> None:
    case = next(c for c in CASES if c.name == name)
    mine, _ = _make(case, _settings(quick)["batch"] or case.batch, None)
    _timing.print_profile(mine["step"], warmup=3, calls=10, top=15)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 4, few repeats (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES),
                        help="comma-separated subset of: " + ", ".join(c.name for c in CASES))
    parser.add_argument("--json", help="where to write the JSON records (default: "
                                       "runs/benchmarks/conv-<cpu>.json)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator thresholds alone (see _timing.py)")
    parser.add_argument("--profile", metavar="CASE", help="cProfile tinynet's step and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure here, write JSON
    args = parser.parse_args(argv)
    names = args.cases.split(",")
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")

    if args.profile:
        profile(args.profile, args.quick)
        return
    if args.child:
        run_child(names, args.quick, args.threads, args.child)
        return

    _timing.warn_if_loaded()
    records = _timing.records_from_child(
        __file__, ["--cases", args.cases, "--threads", str(args.threads)]
        + (["--quick"] if args.quick else []), args.threads, not args.default_malloc)
    print(report(records))
    _timing.save_records(records, args.json, "conv")


if __name__ == "__main__":
    main()
