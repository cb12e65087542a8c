"""Epoch benchmarks: tinynet against a hand-written NumPy MLP and PyTorch, on the CPU and a GPU.

``tinynet bench`` (and ``benchmarks/epoch.py``) trains the MLP 784-256-128-10 on MNIST-shaped
synthetic data and the small CNN of the benchmarks (conv 3x3x8, ReLU, max-pool 2, conv 3x3x16,
ReLU, max-pool 2, linear to 10) with SGD momentum and cross-entropy, and times whole epochs:

* a warm-up epoch is excluded; the median of the measured epochs is reported with its spread;
* each epoch runs a hand-written loop that mirrors ``tn.train.fit`` with a clock around each
  phase (data, forward with the loss read, backward, optimizer); the device is synchronised
  before every clock read, so queued GPU work is charged to the phase that queued it;
* matrix-product FLOPs per epoch give GFLOP/s, as a fraction of a float32 matmul peak measured
  in the same run; bytes copied between host and device are counted in the loop;
* after the timed epochs, a short untimed pass runs under ``tracemalloc`` (NumPy reports its
  allocations to it): the peak of memory allocated during training steps (``peak_traced_mib``).

Also measured: a width sweep (``--widths``: the MLP 784-W-(W/2)-10 at ``--sweep-batch``); the
fixed cost of one training step (``fixed_step_us``: the same three-layer loop at 16-16-16-10,
batch 8, where arithmetic is negligible); and BLAS threads as a lever (``--threads 1,2`` runs
everything once per thread count, each in its own process; ``auto`` times a few steps with one
thread and with all of them and runs each tinynet record with the faster).

The labels are a fixed random linear function of the inputs, so training is real (the loss goes
down) while the pixel values, which do not affect timing, cost nothing to make. Host NumPy is used
here only for that data, the hand-written NumPy reference and the report; tinynet's own timing
runs through tinynet. The report (tables, crossover, plot) is in ``tinynet.bench_report``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np  # host data, the hand-written reference and the report only

import tinynet as tn

from .backend import synchronize
from .runtime import allocator_settings, blas_thread_count, keep_freed_memory, set_blas_threads

MLP_SIZES = (784, 256, 128, 10)
LR, MOMENTUM = 0.01, 0.9
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_MARK = "TINYNET_BENCH_CHILD"  # set in the child process that runs with pinned threads
EXTRA_ENVIRONMENT = None  # optional callable returning more environment fields (benchmarks/)
# How a child process is started: argv after "bench" is appended. benchmarks/epoch.py sets its
# own script here so that its children keep its extra environment fields.
CHILD_COMMAND = [sys.executable, "-m", "tinynet", "bench"]

SWEEP_SAMPLES = 6_144  # 12 batches of 512: at W=4096 one step is ~26 GFLOP, so few samples
FIXED_SIZES, FIXED_BATCH = (16, 16, 16, 10), 8  # arithmetic negligible: what is left is fixed
FIXED_STEPS = {False: (2_000, 5), True: (50, 3)}  # (steps, repeats) for a full / --quick run
TRACED_STEPS = 20  # a steady training loop reaches its peak within the first step
AUTO_TRIAL = (3, 10)  # (warm-up, timed) steps of each thread count that --threads auto tries
AUTO_ROUNDS = 3  # the thread counts take turns this many times
AUTO_MARGIN = 0.1  # more threads are chosen only when at least 10% faster than fewer


# --- FLOP counts ------------------------------------------------------------------------------

def linear_flops(batch: int, in_features: int, out_features: int, input_grad: bool = True) -> int:
    """Matrix-product FLOPs of one training step of a linear layer (multiply-add = 2 FLOPs).

    Forward ``x @ W.T`` and the weight gradient ``g.T @ x`` are ``2*B*I*O`` each; the input
    gradient ``g @ W`` is another ``2*B*I*O`` unless the input needs no gradient (first layer).
    """
    return 2 * batch * in_features * out_features * (3 if input_grad else 2)


def conv_flops(batch: int, c_in: int, c_out: int, kernel: int, out_hw: int,
               input_grad: bool = True) -> int:
    """Matrix-product FLOPs of one training step of a square conv layer, as im2col matmuls."""
    return linear_flops(batch * out_hw * out_hw, c_in * kernel * kernel, c_out, input_grad)


def step_flops(model: str, batch: int, sizes: tuple = MLP_SIZES) -> int:
    """Matrix-product FLOPs of one training step of ``"mlp"`` (layer widths ``sizes``, input
    first) or ``"cnn"`` (``sizes`` ignored) at ``batch``."""
    if model == "mlp":
        pairs = itertools.pairwise(sizes)
        return sum(linear_flops(batch, i, o, k > 0) for k, (i, o) in enumerate(pairs))
    return (conv_flops(batch, 1, 8, 3, 28, False) + conv_flops(batch, 8, 16, 3, 14)
            + linear_flops(batch, 16 * 7 * 7, 10))


def mlp_sizes(width: int) -> tuple:
    """The swept MLP 784-W-(W/2)-10; ``mlp_sizes(256)`` is the standard network."""
    return (784, width, width // 2, 10)


# --- models and data --------------------------------------------------------------------------

def build_tinynet(model: str, sizes: tuple = MLP_SIZES) -> tn.nn.Module:
    """The benchmark network in tinynet (no dropout: the three implementations compute alike);
    the MLP has layer widths ``sizes`` with a ReLU between linear layers."""
    nn = tn.nn
    if model == "mlp":
        layers = []
        for k, (i, o) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.ReLU()] if k else []
            layers.append(nn.Linear(i, o))
        return nn.Sequential(*layers)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def build_torch(model: str, sizes: tuple = MLP_SIZES, seed: int = 0):
    """The same network in PyTorch, with the initial weights tinynet draws with ``seed``."""
    import torch

    tn.manual_seed(seed)
    src = build_tinynet(model, sizes)
    nn = torch.nn
    if model == "mlp":
        layers = []
        for k, (i, o) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.ReLU()] if k else []
            layers.append(nn.Linear(i, o))
        net = nn.Sequential(*layers)
    else:
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    with torch.no_grad():
        for p, q in zip(net.parameters(), src.parameters(), strict=True):
            p.copy_(torch.from_numpy(q.numpy()))
    return net


def numpy_reference(sizes: tuple = MLP_SIZES, seed: int = 0) -> NumpyMLP:
    """The hand-written NumPy MLP with the initial weights tinynet draws with ``seed``."""
    tn.manual_seed(seed)
    linears = [m for m in build_tinynet("mlp", sizes).modules() if isinstance(m, tn.nn.Linear)]
    return NumpyMLP([m.weight.numpy() for m in linears], [m.bias.numpy() for m in linears])


def synthetic_data(model: str, samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped float32 inputs and int64 labels from a fixed random linear teacher."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, 784), dtype=np.float32)
    y = np.argmax(x @ rng.standard_normal((784, 10), dtype=np.float32), axis=1).astype(np.int64)
    return (x.reshape(samples, 1, 28, 28) if model == "cnn" else x), y


class NumpyMLP:
    """A hand-written NumPy MLP with manual backprop and SGD momentum: the NumPy ceiling.

    Args:
        weights: ``(out, in)`` float32 matrices, as ``tn.nn.Linear`` stores them.
        biases: the matching bias vectors.
    """

    def __init__(self, weights: list, biases: list):
        self.params = [np.array(p, dtype=np.float32) for pair in zip(weights, biases)
                       for p in pair]
        self.velocity = [None] * len(self.params)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list]:
        """Mean cross-entropy of a batch and the gradients of every parameter."""
        ws, bs = self.params[0::2], self.params[1::2]
        acts = [x]
        for k, (w, b) in enumerate(zip(ws, bs)):
            h = acts[-1] @ w.T
            h += b
            if k < len(ws) - 1:
                np.maximum(h, 0, out=h)
            acts.append(h)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
        g = exp / total
        g[rows, y] -= 1
        g /= len(y)
        grads = [None] * len(self.params)
        for k in range(len(ws) - 1, -1, -1):
            grads[2 * k] = g.T @ acts[k]
            grads[2 * k + 1] = g.sum(axis=0)
            if k:
                g = g @ ws[k]
                g *= acts[k] > 0
        return loss, grads

    def step(self, grads: list, lr: float = LR, momentum: float = MOMENTUM) -> None:
        """SGD with (Polyak) momentum, in place, as ``tn.optim.SGD`` does it."""
        for i, (p, g) in enumerate(zip(self.params, grads)):
            v = self.velocity[i]
            if v is None:
                v = self.velocity[i] = g.copy()
            else:
                v *= momentum
                v += g
            p -= lr * v


# --- timing helpers ---------------------------------------------------------------------------

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
    """The best float32 ``n x n`` matmul rate through tinynet on ``device``, in GFLOP/s."""
    a, b = tn.randn(n, n, device=device), tn.randn(n, n, device=device)
    times = []
    with tn.no_grad():
        for _ in range(repeats + 1):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times[1:]) / 1e9


def _epochs(run_one, epochs: int, traced: bool) -> list:
    """One untimed warm-up epoch, then ``epochs`` timed ones: one dict per timed epoch; the
    first carries the warm-up's mean loss (``warmup_loss``) so the loss trend spans all epochs,
    and, if ``traced``, the traced peak of an untimed pass of up to ``TRACED_STEPS`` steps run
    after the timed epochs (``peak_traced_bytes``), so tracing never slows a timed epoch."""
    warm = run_one()
    gc.collect()
    timed = [run_one() for _ in range(epochs)]
    timed[0]["warmup_loss"] = statistics.fmean(warm["losses"])
    if traced:
        timed[0]["peak_traced_bytes"] = traced_peak_bytes(lambda: run_one(TRACED_STEPS))
    return timed


# --- the three implementations ----------------------------------------------------------------

def _tinynet_training(model: str, sizes: tuple, device: tn.Device, seed: int = 0) -> tuple:
    """The benchmark network on ``device`` (seeded weights), its SGD-momentum optimizer and the
    cross-entropy loss: what every tinynet measurement here trains."""
    tn.manual_seed(seed)
    net = build_tinynet(model, sizes).to(device)
    return net, tn.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM), tn.nn.CrossEntropyLoss()


def _tinynet_step(net, opt, loss_fn, xt, yt) -> None:
    """One training step as ``fit`` runs it: forward, loss read, zero_grad, backward, step."""
    loss = loss_fn(net(xt), yt)
    loss.item()
    opt.zero_grad()
    loss.backward()
    opt.step()


def run_tinynet(model: str, x: np.ndarray, y: np.ndarray, batch: int, epochs: int,
                device: tn.Device, seed: int = 0, sizes: tuple = MLP_SIZES) -> list:
    """Time ``epochs`` epochs (after one warm-up) of tinynet; one dict per epoch."""
    net, opt, loss_fn = _tinynet_training(model, sizes, device, seed)
    order_rng = np.random.default_rng(seed)
    on_host = device.type == "cpu"
    clock = time.perf_counter

    def one_epoch(max_steps: int | None = None) -> dict:
        phases = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
        to_device = from_device = 0
        losses = []
        order = order_rng.permutation(len(y))
        synchronize(device)
        start = clock()
        # full batches only, like drop_last
        for lo in range(0, len(y) - batch + 1, batch)[:max_steps]:
            t0 = clock()
            idx = order[lo:lo + batch]
            xb, yb = x[idx], y[idx]
            # wrap without a copy (a move on a GPU), as DataLoader's one fancy-index per batch
            xt, yt = tn.as_tensor(xb, device=device), tn.as_tensor(yb, device=device)
            if not on_host:
                to_device += xb.nbytes + yb.nbytes
            synchronize(device)
            t1 = clock()
            loss = loss_fn(net(xt), yt)
            losses.append(loss.item())  # synchronises, like fit's per-batch loss read
            from_device += 0 if on_host else 4
            t2 = clock()
            opt.zero_grad()
            loss.backward()
            synchronize(device)
            t3 = clock()
            opt.step()
            synchronize(device)
            t4 = clock()
            for name, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3),
                               ("optimizer", t3, t4)):
                phases[name] += b - a
        synchronize(device)
        return {"seconds": clock() - start, "phases": phases, "losses": losses,
                "host_to_device_bytes": to_device, "device_to_host_bytes": from_device}

    # device memory (CuPy) is not traced: only host NumPy memory is ("standin" is NumPy inside)
    return _epochs(one_epoch, epochs, traced=device.type != "cuda")


def run_numpy(x: np.ndarray, y: np.ndarray, batch: int, epochs: int, seed: int = 0,
              sizes: tuple = MLP_SIZES) -> list:
    """Time the hand-written NumPy MLP (same initial weights as tinynet's with ``seed``)."""
    ref = numpy_reference(sizes, seed)
    order_rng = np.random.default_rng(seed)

    def one_epoch(max_steps: int | None = None) -> dict:
        losses = []
        order = order_rng.permutation(len(y))
        start = time.perf_counter()
        for lo in range(0, len(y) - batch + 1, batch)[:max_steps]:
            idx = order[lo:lo + batch]
            loss, grads = ref.loss_and_grads(x[idx], y[idx])
            ref.step(grads)
            losses.append(loss)
        return {"seconds": time.perf_counter() - start, "losses": losses}

    return _epochs(one_epoch, epochs, traced=True)


def torch_status(device: str) -> str | None:
    """None when PyTorch can run on ``device`` ("cpu" or "cuda"), else why not."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if device == "cuda" and not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    return None


def run_torch(model: str, x: np.ndarray, y: np.ndarray, batch: int, epochs: int, device: str,
              seed: int = 0, sizes: tuple = MLP_SIZES) -> list:
    """Time PyTorch eager with the same network, initial weights, optimizer and batch order."""
    import torch

    net = build_torch(model, sizes, seed).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    order_rng = np.random.default_rng(seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def one_epoch(max_steps: int | None = None) -> dict:
        losses = []
        order = order_rng.permutation(len(y))
        sync()
        start = time.perf_counter()
        for lo in range(0, len(y) - batch + 1, batch)[:max_steps]:
            idx = order[lo:lo + batch]
            xt = torch.from_numpy(x[idx]).to(device)
            yt = torch.from_numpy(y[idx]).to(device)
            opt.zero_grad()
            loss = loss_fn(net(xt), yt)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sync()
        return {"seconds": time.perf_counter() - start, "losses": losses}

    # PyTorch's allocator does not report to tracemalloc: a traced figure would be meaningless
    return _epochs(one_epoch, epochs, traced=False)


# --- fixed cost per training step -------------------------------------------------------------

def _fixed_step(impl: str, dev: str):
    """One whole training step of the MLP ``FIXED_SIZES`` at ``FIXED_BATCH`` with ``impl`` on
    ``dev``, as a function: forward, loss read, zero_grad, backward, SGD momentum step, with the
    inputs already on the device (no data movement is timed)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((FIXED_BATCH, FIXED_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, FIXED_SIZES[-1], FIXED_BATCH)
    if impl == "numpy":
        ref = numpy_reference(FIXED_SIZES)

        def step():
            _, grads = ref.loss_and_grads(x, y)  # the loss is already read: a Python float
            ref.step(grads)
    elif impl == "tinynet":
        device = tn.device(dev)
        net, opt, loss_fn = _tinynet_training("mlp", FIXED_SIZES, device)
        xt, yt = tn.tensor(x, device=device), tn.tensor(y, device=device)

        def step():
            _tinynet_step(net, opt, loss_fn, xt, yt)
    else:
        import torch

        net = build_torch("mlp", FIXED_SIZES).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

        def step():
            opt.zero_grad()
            loss = loss_fn(net(xt), yt)
            loss.backward()
            opt.step()
            loss.item()  # last, so that on a GPU the whole step has finished (it synchronises)
    return step


def measure_fixed_cost(impl: str, dev: str, steps: int, repeats: int) -> dict:
    """Microseconds per training step of ``impl`` on ``dev`` at sizes where arithmetic is
    negligible: each step is timed on its own; the median of each repeat of ``steps`` steps is
    one sample (robust to a stray collection), and the mean over all steps is kept too."""
    step = _fixed_step(impl, dev)
    for _ in range(max(10, steps // 10)):  # warm-up: momentum buffers, caches, allocator
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
    return {"impl": impl, "device": dev, "sizes": list(FIXED_SIZES), "batch_size": FIXED_BATCH,
            "steps": steps, "us_per_step": summarize(medians),
            "mean_us_per_step": total / (steps * repeats) * 1e6}


# --- --threads auto ---------------------------------------------------------------------------

def _tinynet_trial_us(model: str, x: np.ndarray, y: np.ndarray, batch: int, device: tn.Device,
                      sizes: tuple) -> float:
    """Median microseconds of a tinynet training step over ``AUTO_TRIAL`` steps (warm-up
    excluded), with whatever BLAS thread count is set now."""
    warmup, timed = AUTO_TRIAL
    net, opt, loss_fn = _tinynet_training(model, sizes, device)
    batches = max(1, len(y) // batch)
    times = []
    for k in range(warmup + timed):
        lo = (k % batches) * batch
        xt = tn.as_tensor(x[lo:lo + batch], device=device)
        yt = tn.as_tensor(y[lo:lo + batch], device=device)
        synchronize(device)
        start = time.perf_counter()
        _tinynet_step(net, opt, loss_fn, xt, yt)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:]) * 1e6


def choose_threads(model: str, x: np.ndarray, y: np.ndarray, batch: int, device: tn.Device,
                   sizes: tuple) -> tuple[int, dict]:
    """The BLAS thread count (1 or all logical CPUs) whose trial steps are faster, and the
    trial figures (us per step, keyed by thread count). Leaves the chosen count set.

    The counts take turns over ``AUTO_ROUNDS`` rounds (a slow drift of the machine hits both) and
    each gets the median of its rounds. More threads must win by ``AUTO_MARGIN``: one thread is
    the reproducible setting (on a 2-vCPU VM the second "CPU" is often a hyperthread of the same
    core, and OpenBLAS's waiting threads slow the NumPy work between products)."""
    rounds: dict = {}
    for _ in range(AUTO_ROUNDS):
        for n in sorted({1, os.cpu_count() or 1}):
            if set_blas_threads(n):  # a count the library did not take is not tried under its name
                rounds.setdefault(n, []).append(_tinynet_trial_us(model, x, y, batch, device,
                                                                  sizes))
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


# --- records ----------------------------------------------------------------------------------

def environment() -> dict:
    """Versions, machine and thread counts, for every JSON record."""
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
    if EXTRA_ENVIRONMENT is not None:
        env["extra"] = EXTRA_ENVIRONMENT()
    return env


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
           "matmul_gflop_per_epoch": flops / 1e9, "gflop_per_s": flops / med / 1e9,
           "matmul_peak_gflop_per_s": peak,
           "fraction_of_peak": flops / med / 1e9 / peak if peak else None,
           "overhead_us_per_step": (med - flops / (peak * 1e9)) / iters * 1e6 if peak else None,
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


# --- the run ----------------------------------------------------------------------------------

def _samples(model: str, quick: bool, batch_sizes: list) -> int:
    if quick:  # a few hundred samples, and at least two batches of the largest size
        return max(384 if model == "mlp" else 256, 2 * max(batch_sizes, default=1))
    return 60_000 if model == "mlp" else 10_000


def _cuda_missing() -> str | None:
    """None when tinynet can use a CUDA device, else why not."""
    if tn.cuda.is_available():
        return None
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed"
    return "CuPy sees no CUDA device"


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


def run_bench(models: list, devices: list, batch_sizes: list, epochs: int, quick: bool = False,
              say=print, *, widths: list = (), sweep_batches: list = (512,),
              sweep_samples: int | None = None, threads=None, fixed: bool = True) -> dict:
    """Run every (model, device, implementation, batch size), the width sweep if ``widths``, and
    the fixed cost per step if ``fixed``; return the JSON document.

    ``threads`` is recorded as asked (a count set before this process loaded NumPy, or None);
    ``"auto"`` makes each tinynet record on a host device pick its BLAS thread count.
    """
    records, missing, peaks, fixed_rows = [], {}, {}, []
    auto = threads == "auto"
    if auto and not ((now := blas_thread_count()) is not None and set_blas_threads(now)):
        missing["threads-auto"] = ("no way to switch BLAS threads at run time (neither "
                                   "threadpoolctl nor OpenBLAS's C API): ran with the default")
        auto = False
    for dev in devices:
        if dev == "cuda" and (why := _cuda_missing()) is not None:
            missing["cuda"] = why
            continue
        device = tn.device(dev)
        peaks[dev] = matmul_peak_gflops(device, n=256 if quick else (4096 if dev == "cuda"
                                                                      else 1024))
        say(f"{dev}: float32 matmul peak {peaks[dev]:.1f} GFLOP/s")
        impls = ["tinynet"]
        if dev == "cpu":
            impls.append("numpy")
        if dev in ("cpu", "cuda"):
            why = torch_status(dev)
            if why is None:
                impls.append("torch")
            else:
                missing[f"torch-{dev}"] = why
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
    _add_ratios(records)
    return {"environment": environment(), "epochs_measured": epochs, "quick": quick,
            "threads": threads, "widths": list(widths),
            "sweep_batch_sizes": list(sweep_batches) if widths else [],
            "matmul_peak_gflop_per_s": peaks, "missing": missing, "records": records,
            "fixed_step_us": fixed_rows}


def _add_ratios(records: list) -> None:
    """``time_vs_tinynet``: each record's median epoch time over tinynet's on the same device,
    for the same series, model, width, batch size and thread setting."""
    def key(r):
        return r["series"], r["model"], r["width"], r["device"], r["batch_size"], r["threads"]

    base = {key(r): r["epoch_seconds"]["median"] for r in records if r["impl"] == "tinynet"}
    for r in records:
        ref = base.get(key(r))
        r["time_vs_tinynet"] = r["epoch_seconds"]["median"] / ref if ref else None


def merge_thread_runs(docs: list) -> dict:
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
    return {"environment": environment(), "epochs_measured": head["epochs_measured"],
            "quick": head["quick"], "threads": [doc["threads"] for doc in docs],
            "widths": head["widths"], "sweep_batch_sizes": head["sweep_batch_sizes"],
            "runs": [{k: doc[k] for k in ("threads", "environment", "matmul_peak_gflop_per_s",
                                          "missing")} for doc in docs],
            "missing": missing, "records": records,
            "fixed_step_us": [row for doc in docs for row in doc["fixed_step_us"]]}


# --- command line -----------------------------------------------------------------------------

def _csv(kind, minimum: int | None = None):
    """An argparse type: a comma-separated list of ``kind``, each at least ``minimum``."""
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, "
                                             f"got {text!r}") from None
        if minimum is not None and any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"every value must be at least {minimum}, got {text}")
        return values
    return parse


def _thread_settings(text: str) -> list:
    """``--threads``: comma-separated positive counts and/or ``auto``, without repeats."""
    settings = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part != "auto" and not (part.isdigit() and int(part) > 0):
            raise argparse.ArgumentTypeError(
                f"expected positive thread counts or auto, got {part!r}")
        value = part if part == "auto" else int(part)
        if value not in settings:
            settings.append(value)
    if not settings:
        raise argparse.ArgumentTypeError("expected positive thread counts or auto")
    return settings


def add_parser(commands) -> None:
    """Add the ``bench`` subcommand to the ``tinynet`` subparsers ``commands``."""
    bench = commands.add_parser(
        "bench", help="time training epochs: tinynet vs NumPy and PyTorch, CPU vs GPU",
        description="Time MLP and CNN training epochs (median of measured epochs after a warm-up) "
                    "for tinynet, a hand-written NumPy MLP and PyTorch, on the CPU and a GPU; "
                    "optionally an MLP width sweep; the fixed cost of one training step.")
    add = bench.add_argument
    add("--device", type=_csv(str), default=["cpu", "cuda"],
        help="comma-separated: cpu, cuda, standin (default: cpu,cuda)")
    add("--model", type=_csv(str), default=["mlp", "cnn"], help="mlp, cnn (default: both)")
    add("--batch-sizes", type=_csv(int, 1), default=[32, 128, 512], help="default: 32,128,512")
    add("--epochs", type=int, default=None, help="measured epochs (default 3; 1 with --quick)")
    add("--quick", action="store_true", help="a few hundred samples: a smoke test in seconds")
    add("--out", metavar="DIR", default=None, help="folder for bench.json, bench.md, bench.png")
    add("--threads", type=_thread_settings, default=None,
        help="BLAS (and torch) threads: a count, a comma list (one process per count, e.g. 1,2) "
             "or auto (per tinynet record: 1 or all threads, whichever a short trial finds "
             "faster)")
    add("--widths", type=_csv(int, 2), default=[],
        help="MLP width sweep: 784-W-(W/2)-10 for each W, e.g. 256,512,1024,2048,4096 "
             "(default: no sweep)")
    add("--sweep-batch", type=_csv(int, 1), default=[512],
        help="batch sizes of the width sweep (default: 512)")
    add("--sweep-samples", type=int, default=None,
        help=f"samples per epoch of the width sweep (default {SWEEP_SAMPLES:,}; "
             "a few hundred with --quick)")
    add("--no-fixed", action="store_true",
        help="skip the fixed cost per training step (16-16-16-10 MLP, batch 8)")
    add("--default-malloc", action="store_true",
        help="leave glibc's allocator as it is (by default freed memory is kept for reuse, as "
             "tinynet train does: tinynet.backend.keep_freed_memory)")
    add("--records-only", action="store_true", help=argparse.SUPPRESS)  # children of --threads


def _child_command(argv: list) -> list:
    """The command line that reruns this bench in a child process (``argv`` after "bench")."""
    rest = argv[argv.index("bench") + 1:] if "bench" in argv else list(argv)
    return [*CHILD_COMMAND, *rest]


def _child_env(threads) -> dict:
    """The environment of a child: thread variables set to ``threads`` (a count) before NumPy
    loads, and the mark that tells the child not to spawn another."""
    env = dict(os.environ, **{CHILD_MARK: "1"})
    if threads != "auto":
        env.update({k: str(threads) for k in THREAD_ENV_VARS})
    return env


def _pin_threads(threads: int, argv: list) -> int | None:
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
    import subprocess

    return subprocess.run(_child_command(argv), env=_child_env(threads), check=False).returncode


def _run_thread_children(settings: list, argv: list) -> list | int:
    """Run the bench once per thread setting, each in its own child process (thread variables
    set before NumPy loads: two-thread runs swing between processes, so each count gets a
    fresh one); return their documents, or the exit status of the first that failed."""
    import subprocess

    docs = []
    with tempfile.TemporaryDirectory(prefix="tinynet-bench-") as tmp:
        for setting in settings:
            out = Path(tmp) / f"threads-{setting}"
            cmd = [*_child_command(argv), "--threads", str(setting), "--out", str(out),
                   "--records-only"]  # later options win over the ones repeated from argv
            status = subprocess.run(cmd, env=_child_env(setting), check=False).returncode
            if status:
                return status
            docs.append(json.loads((out / "bench.json").read_text()))
    return docs


def main(args, argv: list) -> int:
    """Run ``tinynet bench`` with parsed ``args`` (``argv`` reruns it with pinned threads)."""
    from .bench_report import crossover_table, fixed_cost_table, markdown_table, plot

    for name in args.model:
        if name not in ("mlp", "cnn"):
            print(f"tinynet bench: error: unknown model {name!r}", file=sys.stderr)
            return 2
    for name in args.device:
        if name not in ("cpu", "cuda", "standin"):
            print(f"tinynet bench: error: unknown device {name!r}", file=sys.stderr)
            return 2
    if args.sweep_samples is not None and args.sweep_samples < 1:
        print("tinynet bench: error: --sweep-samples must be positive", file=sys.stderr)
        return 2
    if not args.default_malloc:
        # All implementations run in this process, so all get the same allocator.
        keep_freed_memory()
    if args.threads is not None and len(args.threads) > 1:
        docs = _run_thread_children(args.threads, argv)
        if isinstance(docs, int):
            return docs
        doc = merge_thread_runs(docs)
    else:
        setting = args.threads[0] if args.threads else None
        if isinstance(setting, int):
            status = _pin_threads(setting, argv)
            if status is not None:
                return status
        epochs = args.epochs or (1 if args.quick else 3)
        doc = run_bench(args.model, args.device, args.batch_sizes, epochs, args.quick,
                        say=lambda *a: print(*a, file=sys.stderr), widths=args.widths,
                        sweep_batches=args.sweep_batch, sweep_samples=args.sweep_samples,
                        threads=setting, fixed=not args.no_fixed)
    out = Path(args.out or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    if args.records_only:  # a child of --threads a,b: the parent writes the report
        return 0
    parts = [markdown_table(doc), fixed_cost_table(doc), crossover_table(doc)]
    table = "\n\n".join(p for p in parts if p)
    print(table)
    (out / "bench.md").write_text(table + "\n")
    print(plot(doc, out / "bench.png"))
    print(f"records: {out / 'bench.json'}")
    return 0
