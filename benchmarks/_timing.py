"""Shared timing and environment helpers for the scripts in ``benchmarks/``.

Every benchmark here follows the same recipe (nanoGPT's ``bench.py`` style): warm up first, then
time many repeats with ``time.perf_counter`` and report the median with its spread. Each result is
one JSON record that carries the machine and library versions it came from (:func:`environment`).

Thread counts must be fixed *before* NumPy (OpenBLAS) and PyTorch are imported, so scripts that
pin threads set the environment variables of :data:`THREAD_ENV_VARS` and run their measurements
in a child process (see ``op_overhead.py``). :func:`blas_threads` reads back what OpenBLAS really
uses, so a record never claims a thread count it did not run with.
"""

from __future__ import annotations

import ctypes
import datetime
import gc
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


# glibc returns every freed block above 128 KiB to the OS by default and maps a fresh one on the
# next allocation; on VMs where a page fault costs microseconds this turns a 4 MB temporary into
# milliseconds of faults, and which framework pays depends on allocation order. A high mmap/trim
# threshold keeps freed memory for reuse, the steady state of a training loop.
STEADY_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def child_env(threads: int, steady_malloc: bool = True) -> dict:
    """A copy of ``os.environ`` with every BLAS/OpenMP thread variable set to ``threads`` and, if
    asked, glibc's allocator told to keep freed memory (:data:`STEADY_MALLOC_ENV`)."""
    env = dict(os.environ)
    for name in THREAD_ENV_VARS:
        env[name] = str(threads)
    if steady_malloc:
        env.update(STEADY_MALLOC_ENV)
    return env


# --- timing ---------------------------------------------------------------------------------------


def time_calls(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    The garbage collector stays on (a framework that makes many objects pays for it in real use
    too), but a full collection runs before timing starts so that leftovers of earlier
    measurements are not charged to this one.
    """
    for _ in range(warmup):
        fn()
    gc.collect()
    samples = []
    clock = time.perf_counter
    for _ in range(repeats):
        start = clock()
        fn()
        samples.append(clock() - start)
    return samples


def time_difference(fn: Callable[[int], object], n_short: int, n_long: int, repeats: int,
                    warmup: int) -> tuple[list[float], list[float]]:
    """Per-step seconds of ``fn(n)``, isolated from its fixed cost by differencing two lengths.

    ``fn(n)`` does ``n`` steps plus some fixed work (setup, a final reduction, launching backward).
    Each repeat times ``fn(n_short)`` and ``fn(n_long)`` back to back (so slow drifts of the
    machine hit both alike) and yields ``(t_long - t_short) / (n_long - n_short)``.

    Returns:
        (per-step samples, fixed-cost samples ``t_short - n_short * per_step``), in seconds.
    """
    for _ in range(warmup):
        fn(n_short)
        fn(n_long)
    gc.collect()
    steps, fixed = [], []
    clock = time.perf_counter
    for _ in range(repeats):
        start = clock()
        fn(n_short)
        mid = clock()
        fn(n_long)
        end = clock()
        t_short, t_long = mid - start, end - mid
        step = (t_long - t_short) / (n_long - n_short)
        steps.append(step)
        fixed.append(t_short - n_short * step)
    return steps, fixed


def summarize(samples: list[float], scale: float = 1.0) -> dict:
    """Median, quartiles, min and max of ``samples`` (multiplied by ``scale``, e.g. 1e6 for us)."""
    values = sorted(s * scale for s in samples)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "min": values[0],
            "max": values[-1], "repeats": len(values)}


# --- the machine and the libraries ----------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_slug() -> str:
    """A file-name-safe name for this kind of machine: the CPU model and its logical CPU count."""
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-") or "cpu"
    return f"{slug}-{os.cpu_count()}cpu"


def default_results_path(benchmark: str) -> str:
    """Where a benchmark writes its records when ``--json`` is not given:
    ``runs/benchmarks/<benchmark>-<machine>.json`` under the current folder (``runs/`` is
    git-ignored, so a run never leaves untracked files in a checkout). The figures published in
    ``benchmarks/results/`` were written there with ``--json``."""
    return os.path.join("runs", "benchmarks", f"{benchmark}-{machine_slug()}.json")


def blas_threads() -> dict | None:
    """The thread count OpenBLAS (the one NumPy loaded) reports, read through its C API.

    Uses threadpoolctl when it is installed; otherwise looks for a loaded OpenBLAS in
    /proc/self/maps and calls its ``*openblas_get_num_threads*`` function. Returns None when
    neither works (another BLAS, another OS).
    """
    try:
        import threadpoolctl  # noqa: PLC0415 - optional

        return {"source": "threadpoolctl", "pools": threadpoolctl.threadpool_info()}
    except ImportError:
        pass
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        if not path.startswith("/"):
            continue
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas_", "openblas_", ""):
            for suffix in ("64_", ""):
                name = f"{prefix}get_num_threads{suffix}" if prefix else "openblas_get_num_threads"
                func = getattr(lib, name, None)
                if func is not None:
                    func.restype = ctypes.c_int
                    return {"source": "ctypes", "library": path, "threads": func()}
    return None


def git_revision() -> dict | None:
    """The commit the measured code came from, and whether tinynet/ had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "tinynet"], cwd=root,
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "tinynet_modified": bool(changed)}


def environment(torch_module=None) -> dict:
    """Versions, machine and thread settings, for the JSON record of every measurement."""
    import numpy as np  # noqa: PLC0415 - imported late so callers can set thread variables first

    blas = {}
    try:
        config = np.show_config(mode="dicts")
        info = config["Build Dependencies"]["blas"]
        blas = {k: info.get(k) for k in ("name", "version", "openblas configuration")}
    except Exception:  # noqa: BLE001 - older NumPy: no dict mode; the record just lacks it
        pass
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas,
        "blas_runtime": blas_threads(),
        "thread_env": {k: os.environ.get(k) for k in THREAD_ENV_VARS},
        "malloc_env": {k: os.environ.get(k) for k in STEADY_MALLOC_ENV},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import tinynet  # noqa: PLC0415

        env["tinynet"] = getattr(tinynet, "__version__", "unknown")
    except ImportError:
        env["tinynet"] = None
    env["git"] = git_revision()
    if torch_module is not None:
        env["torch"] = torch_module.__version__
        env["torch_threads"] = torch_module.get_num_threads()
    return env


def import_torch(threads: int):
    """``(torch, None)`` with its thread count set, or ``(None, reason)`` when it is not usable."""
    try:
        import torch  # noqa: PLC0415 - optional: only a comparison column

        torch.set_num_threads(threads)
        return torch, None
    except Exception as exc:  # noqa: BLE001 - any import failure means: no PyTorch column
        return None, f"torch not importable: {exc}"


def write_records(path: str, records: list, benchmark: str, torch_module, threads: int,
                  quick: bool) -> None:
    """Stamp every record with the benchmark's name and the environment, and write them as JSON."""
    env = environment(torch_module)
    env["threads"] = threads
    env["quick"] = quick
    for rec in records:
        rec["benchmark"] = benchmark
        rec["env"] = env
    with open(path, "w") as f:
        json.dump(records, f)


def warn_if_loaded(what: str = "the load is recorded in every JSON record") -> None:
    """Say on stderr when other processes are running: they inflate and scatter the timings."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"warning: load average {load:.2f} on {os.cpu_count()} CPUs; other processes will "
              f"inflate and scatter these timings ({what})", file=sys.stderr)


def records_from_child(script: str, child_args: list, threads: int, steady_malloc: bool) -> list:
    """Run ``script --child OUT *child_args`` in a fresh process with ``threads`` BLAS threads
    (set before NumPy loads; see :func:`child_env`) and return the records it wrote to OUT."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "records.json")
        cmd = [sys.executable, os.path.abspath(script), "--child", out, *child_args]
        subprocess.run(cmd, env=child_env(threads, steady_malloc), check=True)
        with open(out) as f:
            return json.load(f)


def save_records(records: list, path: str | None, benchmark: str) -> None:
    """Write ``records`` as JSON, one record per line (greppable, and diffs stay readable), to
    ``path`` or :func:`default_results_path`, and say where on stderr."""
    path = path or default_results_path(benchmark)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    print(f"\n{len(records)} records written to {os.path.relpath(path)}", file=sys.stderr)


def median_iqr(record: dict | None) -> str:
    """A record's timing as ``median [q1, q3]`` for a report table (``-`` when absent)."""
    if record is None:
        return "-"
    s = record["stats"]
    return f"{s['median']:.2f} [{s['q1']:.2f}, {s['q3']:.2f}]"


def print_profile(step: Callable[[], object], warmup: int, calls: int, top: int = 20) -> None:
    """cProfile ``calls`` calls of ``step`` (after ``warmup`` untimed ones); print the ``top``
    functions by own time."""
    import cProfile  # noqa: PLC0415 - only when profiling
    import pstats  # noqa: PLC0415

    for _ in range(warmup):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        step()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def interleaved(fns: dict, repeats: int, warmup: int, calls: int = 1) -> tuple[dict, dict]:
    """Time the functions of ``fns`` side by side: ``warmup`` untimed rounds, then ``repeats``
    rounds that each time ``calls`` calls of every function, one function after the other (so
    load from other processes hits them alike). Returns ``(wall, cpu)``: per function, seconds
    per call in every round, by the wall clock and by this thread's CPU time (which load from
    other processes does not inflate)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    gc.collect()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    clock, cpu_clock = time.perf_counter, time.thread_time
    for _ in range(repeats):
        for key, fn in fns.items():
            start, cpu_start = clock(), cpu_clock()
            for _ in range(calls):
                fn()
            wall[key].append((clock() - start) / calls)
            cpu[key].append((cpu_clock() - cpu_start) / calls)
    return wall, cpu

