"""BLAS threads as a lever in ``tinynet bench``: pinning a count, one child process per count,
and ``--threads auto``.

A thread count only takes full effect if it is set before NumPy loads OpenBLAS, so
``--threads 1,2`` runs the whole bench once per count in a fresh child process with the thread
variables set; a single count is pinned in this process (threadpoolctl) or, without threadpoolctl,
in a child process too. ``--threads auto`` times a few tinynet steps with one thread and with all
of them, per record, and runs the record with the faster (see :func:`choose_threads`).

The command that starts a child is a parameter (``child_command``): ``benchmarks/epoch.py`` passes
its own script so that its children keep its extra environment fields.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

import tinynet as tn

from ..runtime import blas_thread_count, set_blas_threads
from .harness import tinynet_trial_us

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_MARK = "TINYNET_BENCH_CHILD"  # set in the child process that runs with pinned threads
DEFAULT_CHILD_COMMAND = (sys.executable, "-m", "tinynet", "bench")  # argv after "bench" follows
AUTO_TRIAL = (3, 10)  # (warm-up, timed) steps of each thread count that --threads auto tries
AUTO_ROUNDS = 3  # the thread counts take turns this many times
AUTO_MARGIN = 0.1  # more threads are chosen only when at least 10% faster than fewer


def choose_threads(model: str, x: np.ndarray, y: np.ndarray, batch: int, device: tn.Device,
                   sizes: tuple) -> tuple[int, dict]:
    """The BLAS thread count (1 or all logical CPUs) whose trial steps of the benchmark
    ``model`` are faster, and the trial figures: :func:`faster_thread_count`."""
    return faster_thread_count(
        lambda: tinynet_trial_us(model, x, y, batch, device, sizes, AUTO_TRIAL))


def faster_thread_count(trial_us: Callable[[], float]) -> tuple[int, dict]:
    """The BLAS thread count (1 or all logical CPUs) under which ``trial_us()`` (microseconds
    per step of a few training steps) is lower, and the trial figures (us per step, keyed by
    thread count). Leaves the chosen count set; ``tinynet train --threads auto`` uses it too.

    The counts take turns over ``AUTO_ROUNDS`` rounds (a slow drift of the machine hits both) and
    each gets the median of its rounds. More threads must win by ``AUTO_MARGIN``: one thread is
    the reproducible setting (on a 2-vCPU VM the second "CPU" is often a hyperthread of the same
    core, and OpenBLAS's waiting threads slow the NumPy work between products)."""
    rounds: dict = {}
    for _ in range(AUTO_ROUNDS):
        for n in sorted({1, os.cpu_count() or 1}):
            if set_blas_threads(n):  # a count the library did not take is not tried under its name
                rounds.setdefault(n, []).append(trial_us())
    if not rounds:  # nothing could be set (run_bench checked that switching works): keep as is
        return blas_thread_count(), {}
    trial = {n: statistics.median(us) for n, us in rounds.items()}
    best = min(trial)  # the fewest threads ...
    for n in sorted(trial):  # ... unless more are clearly faster
        if trial[n] < (1 - AUTO_MARGIN) * trial[best]:
            best = n
    trial = {str(n): us for n, us in trial.items()}  # JSON keys
    set_blas_threads(best)
    return best, trial


def child_command(argv: list, command=DEFAULT_CHILD_COMMAND) -> list:
    """The command line that reruns this bench in a child process (``argv`` after "bench")."""
    rest = argv[argv.index("bench") + 1:] if "bench" in argv else list(argv)
    return [*command, *rest]


def child_env(threads) -> dict:
    """The environment of a child: thread variables set to ``threads`` (a count) before NumPy
    loads, and the mark that tells the child not to spawn another."""
    env = dict(os.environ, **{CHILD_MARK: "1"})
    if threads != "auto":
        env.update({k: str(threads) for k in THREAD_ENV_VARS})
    return env


def pin_threads(threads: int, argv: list, command=DEFAULT_CHILD_COMMAND) -> int | None:
    """Pin BLAS threads in this process (threadpoolctl), or rerun in a child process with the
    thread variables set before NumPy loads; returns the child's exit status in that case."""
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        return None
    except ImportError:
        pass
    if os.environ.get(CHILD_MARK):
        return None  # the variables were set before this process imported NumPy
    return subprocess.run(child_command(argv, command), env=child_env(threads),
                          check=False).returncode


def run_thread_children(settings: list, argv: list,
                        command=DEFAULT_CHILD_COMMAND) -> list | int:
    """Run the bench once per thread setting, each in its own child process (thread variables
    set before NumPy loads: two-thread runs swing between processes, so each count gets a
    fresh one); return their documents, or the exit status of the first that failed."""
    docs = []
    with tempfile.TemporaryDirectory(prefix="tinynet-bench-") as tmp:
        for setting in settings:
            out = Path(tmp) / f"threads-{setting}"
            cmd = [*child_command(argv, command), "--threads", str(setting), "--out", str(out),
                   "--records-only"]  # later options win over the ones repeated from argv
            status = subprocess.run(cmd, env=child_env(setting), check=False).returncode
            if status:
                return status
            docs.append(json.loads((out / "bench.json").read_text()))
    return docs
