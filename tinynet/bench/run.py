"""One ``tinynet bench`` run: every (device, model, implementation, batch size), the width sweep
and the fixed cost per step, as one JSON document of records (``report.py`` turns it into tables).

A record holds one configuration's per-epoch figures, their median and spread, the FLOP rate
against the float32 matmul peak measured in the same run, and the loss trend. Figures derived
from the peak are only derived where they can be true (:func:`peak_figures`).
"""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import sys

import numpy as np

import tinynet as tn

from ..runtime import allocator_settings, blas_thread_count, set_blas_threads
from .harness import (
    matmul_peak_gflops, peak_rss_mb, run_tinynet, summarize, time_steps, tinynet_fixed_step,
)
from .references import numpy_fixed_step, run_numpy, run_torch, torch_fixed_step, torch_status
from .threads import THREAD_ENV_VARS, choose_threads
from .workloads import FIXED_BATCH, FIXED_SIZES, MLP_SIZES, mlp_sizes, step_flops, synthetic_data

SWEEP_SAMPLES = 6_144  # 12 batches of 512: at W=4096 one step is ~26 GFLOP, so few samples
FIXED_STEPS = {False: (2_000, 5), True: (50, 3)}  # (steps, repeats) for a full / --quick run
PEAK_MATMUL_N = {"cuda": 4096}  # the size of the peak's product; 1024 elsewhere (--quick too)


def environment(extra=None) -> dict:
    """Versions, machine and thread counts, for every JSON record; ``extra()`` (if given) adds
    the caller's own fields under ``"extra"``."""
    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "logical_cpus": os.cpu_count(), "numpy": np.__version__,
           "tinynet": getattr(tn, "__version__", None),
           "thread_env": {k: os.environ.get(k) for k in THREAD_ENV_VARS},
           "blas_threads": blas_thread_count(),  # what the library reports, not what was asked
           # glibc thresholds set by keep_freed_memory (None: the default allocator, or the
           # MALLOC_* variables below, set from outside)
           "allocator": allocator_settings(),
           "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}
    try:
        env["blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - older NumPy: the record just lacks it
        env["blas"] = None
    if torch_status("cpu") is None:
        import torch

        env["torch"], env["torch_threads"] = torch.__version__, torch.get_num_threads()
    if tn.cuda.is_available():
        import cupy

        env["cupy"] = cupy.__version__
        env["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        env["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        env["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    if extra is not None:
        env["extra"] = extra()
    return env


def peak_figures(flops: float, seconds: float, iterations: int, peak: float | None) -> dict:
    """What the matmul peak says about a run of ``flops`` matrix-product FLOPs in ``seconds``.

    ``gflop_per_s``; ``fraction_of_peak``; ``overhead_us_per_step``: the time per step beyond
    what the products would take at the peak. A run can never be faster than the true peak, so
    when it was faster than the *measured* one (``peak_exceeded``) that measurement was low (a
    busy machine, a product too small to reach the BLAS's speed): the fraction is kept, but
    the overhead, which would come out negative, is not derived (None).
    """
    rate = flops / seconds / 1e9
    if not peak:
        return {"gflop_per_s": rate, "fraction_of_peak": None, "overhead_us_per_step": None,
                "peak_exceeded": False}
    exceeded = rate > peak
    overhead = None if exceeded else (seconds - flops / (peak * 1e9)) / iterations * 1e6
    return {"gflop_per_s": rate, "fraction_of_peak": rate / peak,
            "overhead_us_per_step": overhead, "peak_exceeded": exceeded}


def make_record(model: str, impl: str, device: str, batch: int, samples: int, epochs: list,
                peak: float | None, sizes: tuple = MLP_SIZES, series: str = "batch",
                threads=None, blas_threads: int | None = None, **extra) -> dict:
    """One JSON record: per-epoch figures, their median and spread, FLOP rate and loss trend.

    ``series`` is ``"batch"`` (the batch-size runs) or ``"width"`` (the width sweep); ``threads``
    is what was asked (a count, ``"auto"`` or None) and ``blas_threads`` what the BLAS reported;
    ``extra`` fields (``--threads auto``'s choice) are added as they are.
    """
    times = [e["seconds"] for e in epochs]
    iters = len(epochs[0]["losses"])
    med = statistics.median(times)
    flops = step_flops(model, batch, sizes) * iters
    traced = epochs[0].get("peak_traced_bytes")
    rec = {"model": model, "series": series, "width": sizes[1] if model == "mlp" else None,
           "sizes": list(sizes) if model == "mlp" else None, "impl": impl, "device": device,
           "batch_size": batch, "threads": threads, "blas_threads": blas_threads,
           "samples": iters * batch, "iterations": iters, "epoch_seconds": summarize(times),
           "samples_per_s": iters * batch / med, "iterations_per_s": iters / med,
           "matmul_gflop_per_epoch": flops / 1e9, "matmul_peak_gflop_per_s": peak,
           **peak_figures(flops, med, iters, peak),
           # mean batch loss of the warm-up epoch and of the last measured epoch
           "loss_first": epochs[0]["warmup_loss"],
           "loss_last": statistics.fmean(epochs[-1]["losses"]),
           "peak_rss_mib": peak_rss_mb(),
           "peak_traced_mib": traced / (1 << 20) if traced is not None else None, **extra}
    rec["loss_decreased"] = rec["loss_last"] < rec["loss_first"]
    if "phases" in epochs[0]:
        rec["phases_seconds"] = {k: statistics.median(e["phases"][k] for e in epochs)
                                 for k in epochs[0]["phases"]}
        rec["host_to_device_bytes"] = epochs[0]["host_to_device_bytes"]
        rec["device_to_host_bytes"] = epochs[0]["device_to_host_bytes"]
    if device.startswith("cuda") and impl == "tinynet":
        import cupy

        rec["gpu_pool_bytes"] = cupy.get_default_memory_pool().total_bytes()
    return rec


def measure_fixed_cost(impl: str, dev: str, steps: int, repeats: int) -> dict:
    """Microseconds per training step of ``impl`` on ``dev`` at sizes where arithmetic is
    negligible (the MLP ``FIXED_SIZES`` at ``FIXED_BATCH``: forward, loss read, zero_grad,
    backward, SGD momentum step, inputs already on the device)."""
    step = {"tinynet": lambda: tinynet_fixed_step(dev), "numpy": numpy_fixed_step,
            "torch": lambda: torch_fixed_step(dev)}[impl]()
    return {"impl": impl, "device": dev, "sizes": list(FIXED_SIZES), "batch_size": FIXED_BATCH,
            "steps": steps, **time_steps(step, steps, repeats)}


def _samples(model: str, quick: bool, batch_sizes: list) -> int:
    if quick:  # a few hundred samples, and at least two batches of the largest size
        return max(384 if model == "mlp" else 256, 2 * max(batch_sizes, default=1))
    return {"mlp": 60_000, "cnn": 10_000}.get(model, 4_000)  # MNIST-1D (CNN, GRU): 4,000


def _measure(impl: str, model: str, sizes: tuple, data: tuple, batch: int, dev: str,
             epochs: int, peak: float, series: str, threads, auto: bool) -> dict:
    """Run one (implementation, model, sizes, batch) on ``dev`` and make its record; with
    ``auto``, a tinynet record on a host device first picks its BLAS thread count."""
    x, y = data
    device = tn.device(dev)
    extra, before = {}, blas_thread_count()
    if auto and impl == "tinynet" and dev != "cuda":
        chosen, trial = choose_threads(model, x, y, batch, device, sizes)
        extra = {"threads_chosen": chosen, "threads_trial_us_per_step": trial}
    try:
        if impl == "tinynet":
            eps = run_tinynet(model, x, y, batch, epochs, device, sizes=sizes)
        elif impl == "numpy":
            eps = run_numpy(x, y, batch, epochs, sizes=sizes)
        else:
            eps = run_torch(model, x, y, batch, epochs, dev, sizes=sizes)
        blas = blas_thread_count()
    finally:
        if extra:  # the other implementations run with the process's default count
            set_blas_threads(before)
    return make_record(model, impl, dev, batch, len(y), eps, peak, sizes, series, threads,
                       blas, **extra)


def _implementations(dev: str, missing: dict) -> list:
    """tinynet everywhere; the NumPy ceiling on the CPU; PyTorch on cpu/cuda when it can run."""
    impls = ["tinynet"] + (["numpy"] if dev == "cpu" else [])
    if dev in ("cpu", "cuda"):
        why = torch_status(dev)
        if why is None:
            impls.append("torch")
        else:
            missing[f"torch-{dev}"] = why
    return impls


def run_bench(models: list, devices: list, batch_sizes: list, epochs: int, quick: bool = False,
              say=print, *, widths: list = (), sweep_batches: list = (512,),
              sweep_samples: int | None = None, threads=None, fixed: bool = True,
              missing: dict | None = None, extra_environment=None) -> dict:
    """Run every (model, device, implementation, batch size), the width sweep if ``widths``, and
    the fixed cost per step if ``fixed``; return the JSON document.

    ``devices`` must be usable (the command line checks ``cuda`` first); ``missing`` holds what
    was left out before this call, with the reason. ``threads`` is recorded as asked (a count set
    before this process loaded NumPy, or None); ``"auto"`` makes each tinynet record on a host
    device pick its BLAS thread count. ``extra_environment()`` adds fields to the environment.
    """
    records, peaks, fixed_rows = [], {}, []
    missing = dict(missing or {})
    auto = threads == "auto"
    if auto and not ((now := blas_thread_count()) is not None and set_blas_threads(now)):
        missing["threads-auto"] = ("no way to switch BLAS threads at run time (neither "
                                   "threadpoolctl nor OpenBLAS's C API): ran with the default")
        auto = False
    for dev in devices:
        device = tn.device(dev)
        peaks[dev] = matmul_peak_gflops(device, n=PEAK_MATMUL_N.get(device.type, 1024))
        say(f"{dev}: float32 matmul peak {peaks[dev]:.1f} GFLOP/s")
        impls = _implementations(dev, missing)
        if fixed:
            for impl in impls:
                row = measure_fixed_cost(impl, dev, *FIXED_STEPS[quick])
                row.update(threads=threads, blas_threads=blas_thread_count())
                fixed_rows.append(row)
                say(f"  fixed cost {impl:8s} {row['us_per_step']['median']:.0f} us/step")
        runs = []  # (model, sizes, data, batch, series)
        for model in models:
            data = synthetic_data(model, _samples(model, quick, batch_sizes))
            for batch in batch_sizes:
                if batch > len(data[1]):
                    missing[f"{model}-b{batch}"] = f"batch larger than the {len(data[1])} samples"
                else:
                    runs.append((model, MLP_SIZES, data, batch, "batch"))
        if widths:
            n = sweep_samples or (_samples("mlp", True, sweep_batches) if quick
                                  else SWEEP_SAMPLES)
            data = synthetic_data("mlp", n)
            for width, batch in itertools.product(widths, sweep_batches):
                if batch > n:
                    missing[f"mlp-w{width}-b{batch}"] = f"batch larger than the {n} samples"
                else:
                    runs.append(("mlp", mlp_sizes(width), data, batch, "width"))
        for model, sizes, data, batch, series in runs:
            for impl in impls:
                if impl == "numpy" and model != "mlp":
                    continue
                rec = _measure(impl, model, sizes, data, batch, dev, epochs, peaks[dev], series,
                               threads, auto)
                records.append(rec)
                width = f" w{rec['width']}" if series == "width" else ""
                say(f"  {model}{width} b{batch} {impl:8s} {rec['epoch_seconds']['median']:.3f} s")
    add_ratios(records)
    return {"environment": environment(extra_environment), "epochs_measured": epochs,
            "quick": quick, "threads": threads, "widths": list(widths),
            "sweep_batch_sizes": list(sweep_batches) if widths else [],
            "matmul_peak_gflop_per_s": peaks, "missing": missing, "records": records,
            "fixed_step_us": fixed_rows}


def add_ratios(records: list) -> None:
    """``time_vs_tinynet``: each record's median epoch time over tinynet's on the same device,
    for the same series, model, width, batch size and thread setting."""
    def key(r):
        return r["series"], r["model"], r["width"], r["device"], r["batch_size"], r["threads"]

    base = {key(r): r["epoch_seconds"]["median"] for r in records if r["impl"] == "tinynet"}
    for r in records:
        ref = base.get(key(r))
        r["time_vs_tinynet"] = r["epoch_seconds"]["median"] / ref if ref else None


def merge_thread_runs(docs: list, extra_environment=None) -> dict:
    """One document from the documents of a ``--threads a,b,...`` run (one process each).

    Records and fixed-cost entries are concatenated (each carries its ``threads``); records are
    ordered so that the same configuration at each thread count sits together. Each process's
    environment, matmul peak and missing list stay under ``runs``; ``missing`` is their union
    (a reason that differs between thread counts is kept once per count).
    """
    missing: dict = {}
    for doc in docs:
        for key, why in doc["missing"].items():
            if missing.get(key, why) == why:
                missing[key] = why
            else:
                missing[f"{key} (threads {doc['threads']})"] = why
    records = [r for doc in docs for r in doc["records"]]
    first: dict = {}  # first position of each device and model, to keep the run's order
    for r in records:
        first.setdefault(r["device"], len(first))
        first.setdefault(r["model"], len(first))
    records.sort(key=lambda r: (first[r["device"]], r["series"] == "width", first[r["model"]],
                                r["width"] or 0, r["batch_size"]))  # stable: impl order stays
    head = docs[0]
    return {"environment": environment(extra_environment),
            "epochs_measured": head["epochs_measured"], "quick": head["quick"],
            "threads": [doc["threads"] for doc in docs],
            "widths": head["widths"], "sweep_batch_sizes": head["sweep_batch_sizes"],
            "runs": [{k: doc[k] for k in ("threads", "environment", "matmul_peak_gflop_per_s",
                                          "missing")} for doc in docs],
            "missing": missing, "records": records,
            "fixed_step_us": [row for doc in docs for row in doc["fixed_step_us"]]}
