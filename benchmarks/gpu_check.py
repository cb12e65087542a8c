"""The one command for a GPU machine: versions, the device tests, CPU/GPU parity, ``tinynet train``
and the CPU-vs-GPU bench grid, written as files ready to commit.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu-h200             # < 8 min, 1 GPU
    python benchmarks/gpu_check.py --device standin --quick --out /tmp/check      # dry run, CPU

Stages, each in its own process with its own time limit (a CUDA error can poison a process, and a
hang must not eat the others' minutes), in this order:

1. ``env``: Python, NumPy, CuPy, the CUDA runtime and driver versions, the device's name and
   memory, PyTorch (and whether it sees CUDA).
2. ``probes``: what usually breaks or costs on a first GPU run: the cost of one tiny launch and of
   one host read; a training step's wall time at batch 32/128/512 with and without a per-step
   ``loss.item()``; the launches and syncs per step (counted on the stand-in, which counts what
   a GPU would launch); scatter-add in float32/float64; an out-of-range label (must raise at the
   next read); a DLPack round trip with PyTorch; the GPU memory peak.
3. ``parity``: one epoch of the MLP 784-256-128-10 (Adam, batch 128) on the CPU and on the device
   from one seed: the same initial weights (checked), the same batch order, and per parameter the
   largest difference after the epoch (float32 with cuBLAS is not bit-identical: it says how close).
4. ``tests``: ``pytest --device cuda -m gpu --maxfail N`` (the device-parametrised suite on cuda,
   ``-x`` by default; on the stand-in, the kernel and budget tests).
5. ``train``: ``tinynet train --device cuda``, its log and history.
6. ``bench``: ``tinynet bench`` on the CPU and the device, MLP (784-256-128-10) and CNN at batch
   32/128/512 and the MLP width sweep 256/1024/4096 at the same batches, with PyTorch (CPU and
   CUDA) side by side when it is installed; run as a few smaller invocations so that one that runs
   out of time still leaves the others' records.

Files written in ``--out`` (8, a few hundred KB together): ``summary.json`` (every stage's status,
time and results), ``summary.md`` (the same, to read), ``pytest.log``, ``pytest.xml`` (JUnit),
``train.log``, ``bench.json``, ``bench.md``, ``bench.png`` (without matplotlib, bench.md says so
instead). Exit status 0 when every stage passed, 1 when one failed or ran out of time, 2 when the
device cannot be used (no CuPy, no GPU). Nothing here needs the network; run it from the checkout
(``PYTHONPATH`` is set for the children).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import tinynet as tn  # noqa: E402

# Seconds per stage on a GPU machine (the whole check under 8 minutes), and in --quick mode.
LIMITS = {"env": (30, 60), "probes": (60, 60), "parity": (45, 60), "tests": (150, 120),
          "train": (40, 60), "bench": (110, 120)}
# The tests that exercise the GPU code paths most, run first so that a time-out cuts the rest.
CORE_TESTS = ("test_kernels.py", "test_ops.py", "test_losses.py", "test_layers.py",
              "test_optim.py", "test_tensor.py", "test_autograd.py", "test_conv.py",
              "test_normalization.py", "test_rnn.py", "test_train.py")
GRACE = 20  # seconds a command gets after its time-out interrupt to write its reports
STAGES = tuple(LIMITS)


# --- the driver ---------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the files (made if missing)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "standin"),
                        help="cuda (default), or standin for a dry run on a CPU")
    parser.add_argument("--quick", action="store_true", help="small sizes: a dry run in seconds")
    parser.add_argument("--maxfail", type=int, default=1,
                        help="stop the tests after this many failures (default 1: pytest -x)")
    parser.add_argument("--only", type=lambda s: s.split(","), default=list(STAGES),
                        help=f"comma-separated stages to run (default all: {','.join(STAGES)})")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # a child process runs one stage
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage:
        return run_stage_here(args.stage, args.device, args.quick, out)
    unknown = [s for s in args.only if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}: use {', '.join(STAGES)}")
    if args.device == "cuda" and not tn.cuda.is_available():
        print(f"gpu_check: the cuda device cannot be used: {_cuda_reason()}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    summary = {"device": args.device, "quick": args.quick, "started": time.strftime("%Y-%m-%d "
               "%H:%M:%S"), "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
               "stages": {}}
    for stage in STAGES:
        if stage not in args.only:
            continue
        limit = LIMITS[stage][1 if args.quick else 0]
        print(f"[{time.perf_counter() - started:5.0f}s] {stage} (limit {limit} s)", flush=True)
        result = STAGE_RUNNERS[stage](args, out, limit)
        summary["stages"][stage] = result
        print(f"        {result['status']} in {result['seconds']:.1f} s"
              + (f": {result['error']}" if result.get("error") else ""), flush=True)
    summary["seconds"] = time.perf_counter() - started
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    print((out / "summary.md").read_text())
    return 0 if all(s["status"] == "ok" for s in summary["stages"].values()) else 1


def _cuda_reason() -> str:
    try:
        tn.zeros(1, device="cuda")
    except RuntimeError as error:
        return str(error).splitlines()[0]
    return "CuPy sees no CUDA device"


def child_env() -> dict:
    """The children's environment: this checkout first on the path, no network needed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_command(command: list, limit: float, log: Path | None = None) -> dict:
    """Run ``command`` with a time limit; its output to ``log`` (or kept in the result)."""
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as child:
        try:
            output, _ = child.communicate(timeout=limit)
            code = child.returncode
            status = "ok" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            # Interrupt first (pytest then writes its summary and JUnit file), kill if it hangs.
            child.send_signal(signal.SIGINT)
            try:
                output, _ = child.communicate(timeout=GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                output, _ = child.communicate()
            code, status = None, "timeout"
    result = {"status": status, "returncode": code, "seconds": time.perf_counter() - start,
              "command": " ".join(command)}
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {result['command']}\n{output}\n[{status}, {result['seconds']:.1f} s]\n\n")
    else:
        result["output_tail"] = output[-3000:]
    if status != "ok":
        result["error"] = (f"exit status {code}" if code is not None else
                           f"ran past its {limit} s limit") + f": {_last_line(output)}"
    return result


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def in_child(stage: str):
    """A stage run in a child process: ``gpu_check.py --stage NAME``, its results as JSON."""
    def run(args, out: Path, limit: float) -> dict:
        command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--device",
                   args.device, "--out", str(out)] + (["--quick"] if args.quick else [])
        result = run_command(command, limit)
        produced = out / f".{stage}.json"
        if produced.exists():
            result["results"] = json.loads(produced.read_text())
            produced.unlink()
            failed = result["results"].pop("failed", None)
            if failed and result["status"] == "ok":
                result["status"], result["error"] = "failed", failed
        if result["status"] == "ok":
            result.pop("output_tail", None)
        return result
    return run


def run_tests(args, out: Path, limit: float) -> dict:
    """The device-parametrised suite on the device (on the stand-in: the kernel and budget
    tests, which cover the same fused-kernel paths in seconds)."""
    for name in ("pytest.log", "pytest.xml"):
        (out / name).unlink(missing_ok=True)
    if args.device == "cuda":
        files = sorted(p.name for p in (ROOT / "tests").glob("test_*.py"))
        ordered = [f for f in CORE_TESTS if f in files] + [f for f in files if f not in CORE_TESTS]
        selection = ["--device", "cuda", "-m", "gpu", *(f"tests/{f}" for f in ordered)]
    else:
        selection = ["--device", "standin", "tests/test_kernels.py", "tests/test_budgets.py"]
    command = [sys.executable, "-m", "pytest", *selection, "-q", "-p", "no:cacheprovider",
               f"--maxfail={args.maxfail}", f"--junitxml={out / 'pytest.xml'}", "-rfE"]
    result = run_command(command, limit, out / "pytest.log")
    result["counts"] = junit_counts(out / "pytest.xml")
    return result


def junit_counts(path: Path) -> dict | None:
    """Passed/failed/errors/skipped from a JUnit file (None when pytest did not write one)."""
    if not path.exists():
        return None
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def run_train(args, out: Path, limit: float) -> dict:
    """``tinynet train --device ...``: the log, and the run's history and result (the
    checkpoints stay in a temporary folder)."""
    log = out / "train.log"
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        epochs = "1" if args.quick else "5"
        command = [sys.executable, "-m", "tinynet", "train", "--device", args.device,
                   "--epochs", epochs, "--out", str(Path(tmp) / "run"), "--seed", "0"]
        result = run_command(command, limit, log)
        run = Path(tmp) / "run"
        if (run / "config.json").exists():
            result["config"] = json.loads((run / "config.json").read_text())
        if (run / "history.csv").exists():
            result["history_csv"] = (run / "history.csv").read_text()
    return result


def bench_invocations(device: str, quick: bool) -> list:
    """``tinynet bench`` runs of the grid, each small enough that a time-out loses little."""
    devices = f"cpu,{device}"
    common = ["--device", devices, "--epochs", "1", "--no-fixed"]
    if quick:
        return [["--model", "mlp", "--batch-sizes", "32", "--quick", "--widths", "256",
                 "--sweep-batch", "32", *common]]
    return [["--model", "mlp", "--batch-sizes", "32,128,512", *common],
            ["--model", "cnn", "--batch-sizes", "32,128,512", *common],
            ["--model", "mlp", "--batch-sizes", "512", "--widths", "256,1024,4096",
             "--sweep-batch", "32,128,512", *common],
            ["--model", "mlp", "--batch-sizes", "32", "--quick", "--device", devices,
             "--epochs", "1"]]  # the fixed cost per step, on a few hundred samples


def run_bench(args, out: Path, limit: float) -> dict:
    """The grid as several ``tinynet bench`` runs sharing the stage's time, merged into one
    bench.json (records, with each run's own options), bench.md and bench.png."""
    start = time.perf_counter()
    runs, docs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, options in enumerate(bench_invocations(args.device, args.quick)):
            left = limit - (time.perf_counter() - start)
            if left < 5:
                runs.append({"status": "timeout", "options": options, "seconds": 0.0,
                             "error": "no time left in the stage"})
                continue
            folder = Path(tmp) / f"run{i}"
            command = [sys.executable, "-m", "tinynet", "bench", *options, "--out", str(folder)]
            result = run_command(command, left)
            result["options"] = options
            result.pop("output_tail", None) if result["status"] == "ok" else None
            runs.append(result)
            if (folder / "bench.json").exists():
                docs.append(json.loads((folder / "bench.json").read_text()))
    merged = merge_bench(docs)
    (out / "bench.json").write_text(json.dumps(merged, indent=1) + "\n")
    try:
        from tinynet.bench.report import crossover_table, fixed_cost_table, markdown_table, plot

        parts = [markdown_table(merged), fixed_cost_table(merged), crossover_table(merged)]
        plotted = plot(merged, out / "bench.png")  # or why not (matplotlib missing)
        if not (out / "bench.png").exists():
            parts.append(plotted)
        (out / "bench.md").write_text("\n\n".join(p for p in parts if p) + "\n")
    except Exception as error:  # noqa: BLE001 - the records are what matters
        (out / "bench.md").write_text(f"report failed: {error!r}\n")
    status = "ok" if all(r["status"] == "ok" for r in runs) else (
        "timeout" if any(r["status"] == "timeout" for r in runs) else "failed")
    result = {"status": status, "seconds": time.perf_counter() - start, "runs": runs,
              "records": len(merged["records"])}
    bad = [r for r in runs if r["status"] != "ok"]
    if bad:
        result["error"] = f"{len(bad)} of {len(runs)} bench runs: {bad[0].get('error')}"
    return result


def merge_bench(docs: list) -> dict:
    """One bench document from several runs (their records concatenated, duplicates of a
    configuration kept once, the first run's environment)."""
    if not docs:
        return {"environment": None, "records": [], "fixed_step_us": [], "missing": {},
                "widths": [], "sweep_batch_sizes": [], "matmul_peak_gflop_per_s": {}}
    merged = dict(docs[0])
    seen, records = set(), []
    for doc in docs:
        for r in doc["records"]:
            key = (r["series"], r["model"], r["width"], r["impl"], r["device"], r["batch_size"])
            if key not in seen:
                seen.add(key)
                records.append(r)
    merged["records"] = records
    merged["fixed_step_us"] = [row for doc in docs for row in doc.get("fixed_step_us", [])]
    merged["widths"] = sorted({w for doc in docs for w in doc.get("widths", [])})
    merged["sweep_batch_sizes"] = sorted({b for doc in docs
                                          for b in doc.get("sweep_batch_sizes", [])})
    for doc in docs[1:]:
        merged["missing"] = {**merged.get("missing", {}), **doc.get("missing", {})}
    return merged


STAGE_RUNNERS = {"env": in_child("env"), "probes": in_child("probes"),
                 "parity": in_child("parity"), "tests": run_tests, "train": run_train,
                 "bench": run_bench}


# --- the stages run in a child process ----------------------------------------------------------

def run_stage_here(stage: str, device: str, quick: bool, out: Path) -> int:
    """Run one in-process stage; every check inside it is isolated (one failing check is
    recorded with its error and the others still run). Writes ``out/.STAGE.json``."""
    checks = {"env": [("versions", env_versions)],
              "probes": [("launch_and_sync_cost", launch_and_sync_cost),
                         ("step_time", step_time), ("launches_per_step", launches_per_step),
                         ("scatter_add", scatter_add), ("bad_label", bad_label),
                         ("dlpack_torch", dlpack_torch)],
              "parity": [("mlp_epoch", epoch_parity)]}[stage]
    results, failed = {}, []
    for name, check in checks:
        start = time.perf_counter()
        try:
            results[name] = check(tn.device(device), quick)
        except Exception as error:  # noqa: BLE001 - record every failure, run every check
            results[name] = {"error": f"{type(error).__name__}: {error}"[:800],
                             "where": traceback.format_exc().splitlines()[-6:]}
            failed.append(name)
        if isinstance(results[name], dict):
            results[name]["seconds"] = round(time.perf_counter() - start, 3)
    if failed:
        results["failed"] = f"{', '.join(failed)}: {results[failed[0]]['error'][:200]}"
    (out / f".{stage}.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


def env_versions(device, quick: bool) -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "numpy": np.__version__, "tinynet_device": str(device), "logical_cpus": os.cpu_count()}
    try:
        info["git_revision"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                              capture_output=True, text=True).stdout.strip()
    except OSError:
        info["git_revision"] = None
    if device.type == "cuda":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(device.index)
        info.update(cupy=cupy.__version__, cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
                    cuda_driver=cupy.cuda.runtime.driverGetVersion(),
                    gpu=props["name"].decode(), gpu_memory_gib=props["totalGlobalMem"] / 2**30,
                    compute_capability=f"{props['major']}.{props['minor']}",
                    cupy_packages=tn.backend.cuda.cupy_distributions())
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    print(json.dumps(info, indent=1))
    return info


def _timed(device, fn, repeats: int) -> float:
    """Seconds per call of ``fn``, the device synchronised before and after."""
    fn()
    device.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    device.synchronize()
    return (time.perf_counter() - start) / repeats


def launch_and_sync_cost(device, quick: bool) -> dict:
    """The cost of one tiny kernel launch (an add on 16 floats, queued back to back) and of one
    host read (``.item()`` of a fresh result: launch + wait + copy)."""
    x = tn.ones(16, device=device)
    launch = _timed(device, lambda: x + 1.0, 200 if quick else 5000)
    read = _timed(device, lambda: (x + 1.0).sum().item(), 50 if quick else 1000)
    return {"tiny_launch_us": launch * 1e6, "launch_add_sum_and_read_us": read * 1e6}


def _mlp_training(device, batch: int, seed: int = 0):
    tn.manual_seed(seed)
    model = tn.models.mlp(784, hidden=(256, 128), num_classes=10, dropout=0.0).to(device)
    opt = tn.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    x = tn.tensor(rng.standard_normal((batch, 784), dtype=np.float32), device=device)
    y = tn.tensor(rng.integers(0, 10, batch), device=device)
    return model, opt, tn.nn.CrossEntropyLoss(), x, y


def step_time(device, quick: bool) -> dict:
    """Milliseconds per training step (Adam, MLP 784-256-128-10, the batch already on the device)
    at three batch sizes, as fit runs it (no read) and with a ``loss.item()`` every step."""
    out = {}
    for batch in (32, 128, 512):
        model, opt, loss_fn, x, y = _mlp_training(device, batch)

        def step(read: bool):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if read:
                loss.item()

        for read in (False, True):
            seconds = _timed(device, lambda read=read: step(read), 5 if quick else 200)
            out[f"batch{batch}_{'item' if read else 'no_read'}_ms"] = seconds * 1e3
    if device.type == "cuda":
        import cupy

        out["gpu_pool_bytes"] = cupy.get_default_memory_pool().total_bytes()
    return out


def launches_per_step(device, quick: bool) -> dict:
    """Array calls (~ launches), syncs and uploads per fit step, counted on the stand-in (the
    counts do not depend on the device: they are what the code asks a GPU to do)."""
    import step_counts

    return {f"{name} {opt}": {k: v for k, v in step_counts.per_step(build, shape, opt).items()
                              if k in ("array_calls", "syncs", "uploads")}
            for name, build, shape, opt in step_counts.CONFIGS[:2 if quick else None]}


def scatter_add(device, quick: bool) -> dict:
    """Repeated indices accumulate in backward (scatter-add), in float32 and float64."""
    out = {}
    for dtype in (tn.float32, tn.float64):
        grads = {}
        for where in ("cpu", device):
            t = tn.tensor(np.arange(6.0), dtype=dtype, device=where, requires_grad=True)
            t[tn.tensor([0, 0, 5, 5, 5, 2], device=where)].sum().backward()
            grads[str(where)] = t.grad.cpu().numpy()
        np.testing.assert_array_equal(grads[str(device)], grads["cpu"])
        out[str(dtype)] = grads["cpu"].tolist()
    return out


def bad_label(device, quick: bool) -> dict:
    """An out-of-range label raises the cross-entropy error at the next read (CUDA does not raise
    for an out-of-range index by itself)."""
    loss = tn.nn.functional.cross_entropy(tn.zeros(2, 3, device=device),
                                          tn.tensor([0, 5], device=device))
    try:
        value = loss.item()
    except ValueError as error:
        return {"raised": str(error)}
    raise AssertionError(f"no error for label 5 of 3 classes: the loss read as {value}")


def dlpack_torch(device, quick: bool) -> dict:
    """Zero-copy exchange with PyTorch on the GPU, both ways."""
    if device.type != "cuda":
        return {"skipped": "DLPack exchange is a CUDA check (stand-in arrays refuse DLPack)"}
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "PyTorch sees no CUDA device"}
    t = tn.arange(6.0, device=device)
    shared = torch.from_dlpack(t)
    back = tn.from_dlpack(torch.arange(4.0, device="cuda"))
    assert shared.device.type == "cuda" and back.device == device
    return {"torch_sum": float(shared.sum().item()), "tinynet_sum": back.sum().item()}


def epoch_parity(device, quick: bool) -> dict:
    """One epoch of the same training on the CPU and on ``device`` from one seed."""
    n, batch = (512, 128) if quick else (8192, 128)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    results, initial = {}, {}
    for where in ("cpu", device):
        tn.manual_seed(0)  # the same weights: drawn from the seed on each device
        model = tn.models.mlp(784, hidden=(256, 128), num_classes=10, dropout=0.0).to(where)
        initial[str(where)] = [p.cpu().numpy().copy() for p in model.parameters()]
        opt = tn.optim.Adam(model.parameters(), lr=1e-3)
        loader = tn.data.DataLoader(tn.data.TensorDataset(x, y), batch_size=batch,
                                    shuffle=True, seed=0)  # the same batch order
        history = tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=1,
                               progress=False, device=where)
        results[str(where)] = {"loss": history.epochs[0]["loss"],
                               "accuracy": history.epochs[0]["accuracy"],
                               "params": [p.cpu().numpy() for p in model.parameters()]}
    cpu, dev = results["cpu"], results[str(device)]
    same_start = all(np.array_equal(a, b) for a, b in zip(initial["cpu"], initial[str(device)]))
    names = [name for name, _ in tn.models.mlp(784, (256, 128), 10, dropout=0.0)
             .named_parameters()]
    params = []
    for name, a, b in zip(names, cpu["params"], dev["params"]):
        diff = np.abs(a.astype(np.float64) - b)
        params.append({"name": name, "shape": list(a.shape),
                       "max_abs_diff": float(diff.max()),
                       "max_rel_diff": float(diff.max() / max(np.abs(a).max(), 1e-30)),
                       "max_elementwise_rel_diff": float(
                           (diff / (np.abs(a) + 1e-6 * np.abs(a).max())).max())})
    worst = max(p["max_rel_diff"] for p in params)
    result = {"samples": n, "batch_size": batch, "initial_weights_equal": same_start,
              "loss": {"cpu": cpu["loss"], str(device): dev["loss"]},
              "accuracy": {"cpu": cpu["accuracy"], str(device): dev["accuracy"]},
              "max_rel_diff": worst, "params": params}
    if not same_start:
        raise AssertionError(f"the seed gave different initial weights: {result}")
    if not math.isfinite(worst) or worst > 1e-3:
        raise AssertionError(f"parameters differ after one epoch by up to {worst:.3g} "
                             f"(relative to each parameter's largest value): {params}")
    return result


# --- the report -------------------------------------------------------------------------------

def summary_markdown(summary: dict) -> str:
    lines = [f"# GPU check: {summary['device']}{' (quick)' if summary['quick'] else ''}",
             "", f"{summary['started']}, {summary['seconds']:.0f} s: `{summary['command']}`", "",
             "| stage | status | seconds | note |", "|---|---|---:|---|"]
    for name, stage in summary["stages"].items():
        note = stage.get("error", "")
        if name == "tests" and stage.get("counts"):
            c = stage["counts"]
            note = (f"{c['passed']} passed, {c['failures']} failed, {c['errors']} errors, "
                    f"{c['skipped']} skipped. {note}")
        lines.append(f"| {name} | {stage['status']} | {stage['seconds']:.1f} | {note} |")
    env = summary["stages"].get("env", {}).get("results", {}).get("versions", {})
    if env:
        lines += ["", "Versions: " + ", ".join(f"{k} {env[k]}" for k in (
            "gpu", "cupy", "cuda_runtime", "cuda_driver", "numpy", "torch", "python")
            if env.get(k) is not None)]
    parity = summary["stages"].get("parity", {}).get("results", {}).get("mlp_epoch", {})
    if "params" in parity:
        lines += ["", f"Parity (one epoch, {parity['samples']} samples): initial weights equal: "
                  f"{parity['initial_weights_equal']}; loss {parity['loss']}; largest relative "
                  f"difference of a parameter {parity['max_rel_diff']:.3g}"]
    probes = summary["stages"].get("probes", {}).get("results", {})
    for key in ("launch_and_sync_cost", "step_time"):
        if key in probes and "error" not in probes[key]:
            lines += ["", f"{key}: " + ", ".join(
                f"{k} {v:.4g}" for k, v in probes[key].items() if isinstance(v, float))]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
