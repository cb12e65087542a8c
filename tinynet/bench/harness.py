"""The timing machinery of ``tinynet bench``, and tinynet's own measurements.

* :func:`timed_epochs`: one untimed warm-up epoch, then the timed ones, then (outside any timed
  region) a short pass under ``tracemalloc`` for the peak of host memory allocated by training.
* :func:`run_tinynet`: tinynet's epochs, a hand-written loop that mirrors ``tn.train.fit`` with a
  clock around each phase (data, forward with the loss read, backward, optimizer); the device is
  synchronised before every clock read, so queued GPU work is charged to the phase that queued
  it; bytes copied between host and device are counted.
* :func:`time_steps`: microseconds per call of a step function (the fixed cost per step).
* :func:`matmul_peak_gflops`: the float32 matmul rate that FLOP rates are compared with.

The reference implementations (NumPy, PyTorch) are in ``references.py``.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
import tracemalloc

import numpy as np  # host data only

import tinynet as tn

from .workloads import (
    FIXED_SIZES, MLP_SIZES, fixed_step_data, tinynet_step, tinynet_training,
)

TRACED_STEPS = 20  # a steady training loop reaches its peak within the first step


def summarize(samples: list) -> dict:
    """Median, min, max and count of ``samples``."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "repeats": len(samples)}


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def traced_peak_bytes(fn) -> int:
    """The peak of memory allocated (and traced by ``tracemalloc``) while ``fn()`` runs, above
    what was traced when it started. NumPy reports its array buffers to tracemalloc, so this
    covers activations, gradients and temporaries; memory allocated before (weights, data)
    is not counted. Tracing slows allocations: call it outside timed regions."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:  # leave a trace the caller started (python -X tracemalloc) running
            tracemalloc.stop()


def matmul_peak_gflops(device: tn.Device, n: int = 1024, repeats: int = 5) -> float:
    """The best float32 ``n x n`` matmul rate through tinynet on ``device``, in GFLOP/s.

    ``n`` must be large enough for the BLAS to reach its speed (1024 on a CPU): a smaller
    product measures a lower "peak" than the training steps then reach, and every figure derived
    from it (% of peak, the overhead per step) would be wrong.
    """
    a, b = tn.randn(n, n, device=device), tn.randn(n, n, device=device)
    times = []
    with tn.no_grad():
        for _ in range(repeats + 1):
            device.synchronize()
            start = time.perf_counter()
            a @ b
            device.synchronize()
            times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times[1:]) / 1e9


def timed_epochs(run_one, epochs: int, traced: bool) -> list:
    """One untimed warm-up epoch, then ``epochs`` timed ones: one dict per timed epoch; the
    first carries the warm-up's mean loss (``warmup_loss``) so the loss trend spans all epochs,
    and, if ``traced``, the traced peak of an untimed pass of up to ``TRACED_STEPS`` steps run
    after the timed epochs (``peak_traced_bytes``), so tracing never slows a timed epoch.

    ``run_one(max_steps=None)`` runs one epoch and returns ``{"seconds", "losses", ...}``.
    """
    warm = run_one()
    gc.collect()
    timed = [run_one() for _ in range(epochs)]
    timed[0]["warmup_loss"] = statistics.fmean(warm["losses"])
    if traced:
        timed[0]["peak_traced_bytes"] = traced_peak_bytes(lambda: run_one(TRACED_STEPS))
    return timed


def batch_starts(samples: int, batch: int, max_steps: int | None = None) -> range:
    """Where each full batch of an epoch starts (the last partial batch is dropped)."""
    return range(0, samples - batch + 1, batch)[:max_steps]


# --- tinynet ------------------------------------------------------------------------------------

def run_tinynet(model: str, x: np.ndarray, y: np.ndarray, batch: int, epochs: int,
                device: tn.Device, seed: int = 0, sizes: tuple = MLP_SIZES) -> list:
    """Time ``epochs`` epochs (after one warm-up) of tinynet; one dict per epoch."""
    net, opt, loss_fn = tinynet_training(model, sizes, device, seed)
    order_rng = np.random.default_rng(seed)
    on_host = device.type == "cpu"
    clock, sync = time.perf_counter, device.synchronize

    def one_epoch(max_steps: int | None = None) -> dict:
        phases = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
        to_device = from_device = 0
        losses = []
        order = order_rng.permutation(len(y))
        sync()
        start = clock()
        for lo in batch_starts(len(y), batch, max_steps):  # full batches only, like drop_last
            t0 = clock()
            idx = order[lo:lo + batch]
            xb, yb = x[idx], y[idx]
            # wrap without a copy (a move on a GPU), as DataLoader's one fancy-index per batch
            xt, yt = tn.as_tensor(xb, device=device), tn.as_tensor(yb, device=device)
            if not on_host:
                to_device += xb.nbytes + yb.nbytes
            sync()
            t1 = clock()
            loss = loss_fn(net(xt), yt)
            losses.append(loss.item())  # synchronises, like fit's per-batch loss read
            from_device += 0 if on_host else 4
            t2 = clock()
            opt.zero_grad()
            loss.backward()
            sync()
            t3 = clock()
            opt.step()
            sync()
            t4 = clock()
            for name, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3),
                               ("optimizer", t3, t4)):
                phases[name] += b - a
        sync()
        return {"seconds": clock() - start, "phases": phases, "losses": losses,
                "host_to_device_bytes": to_device, "device_to_host_bytes": from_device}

    # device memory (CuPy) is not traced: only host NumPy memory is ("standin" is NumPy inside)
    return timed_epochs(one_epoch, epochs, traced=device.type != "cuda")


def tinynet_fixed_step(dev: str):
    """One whole training step of the MLP ``FIXED_SIZES`` at ``FIXED_BATCH`` in tinynet on
    ``dev``, as a function, with the inputs already on the device (no data movement is timed)."""
    x, y = fixed_step_data()
    device = tn.device(dev)
    net, opt, loss_fn = tinynet_training("mlp", FIXED_SIZES, device)
    xt, yt = tn.tensor(x, device=device), tn.tensor(y, device=device)
    return lambda: tinynet_step(net, opt, loss_fn, xt, yt)


def tinynet_trial_us(model: str, x: np.ndarray, y: np.ndarray, batch: int, device: tn.Device,
                     sizes: tuple, steps: tuple = (3, 10)) -> float:
    """:func:`trial_step_us` of a fresh benchmark ``model``."""
    net, opt, loss_fn = tinynet_training(model, sizes, device)
    return trial_step_us(net, opt, loss_fn, x, y, batch, device, steps)


def trial_step_us(net, opt, loss_fn, x: np.ndarray, y: np.ndarray, batch: int,
                  device: tn.Device, steps: tuple = (3, 10)) -> float:
    """Median microseconds of a training step of ``net`` on batches of the host arrays ``x, y``
    over ``steps = (warm-up, timed)`` steps (warm-up excluded), with whatever BLAS thread count
    is set now. ``tinynet train --threads auto`` times its own model with it."""
    warmup, timed = steps
    batches = max(1, len(y) // batch)
    times = []
    for k in range(warmup + timed):
        lo = (k % batches) * batch
        xt = tn.as_tensor(x[lo:lo + batch], device=device)
        yt = tn.as_tensor(y[lo:lo + batch], device=device)
        device.synchronize()
        start = time.perf_counter()
        tinynet_step(net, opt, loss_fn, xt, yt)
        device.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:]) * 1e6


def time_steps(step, steps: int, repeats: int) -> dict:
    """Microseconds per call of ``step()`` where each call is timed on its own: the median of
    each repeat of ``steps`` calls is one sample (robust to a stray collection), and the mean
    over all calls is kept too. Warm-up calls (momentum buffers, caches, allocator) come first."""
    for _ in range(max(10, steps // 10)):
        step()
    clock = time.perf_counter
    medians, total = [], 0.0
    for _ in range(repeats):
        gc.collect()
        times = []
        for _ in range(steps):
            start = clock()
            step()
            times.append(clock() - start)
        medians.append(statistics.median(times) * 1e6)
        total += sum(times)
    return {"us_per_step": summarize(medians), "mean_us_per_step": total / (steps * repeats) * 1e6}
