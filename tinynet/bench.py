"""Epoch benchmarks: tinynet against a hand-written NumPy MLP and PyTorch, on the CPU and a GPU.

``tinynet bench`` (and ``benchmarks/epoch.py``) trains the MLP 784-256-128-10 on MNIST-shaped
synthetic data and the small CNN of the benchmarks (conv 3x3x8, ReLU, max-pool 2, conv 3x3x16,
ReLU, max-pool 2, linear to 10) with SGD momentum and cross-entropy, and times whole epochs:

* a warm-up epoch is excluded; the median of the measured epochs is reported with its spread;
* each epoch runs a hand-written loop that mirrors ``tn.train.fit`` with a clock around each
  phase (data, forward with the loss read, backward, optimizer); the device is synchronised
  before every clock read, so queued GPU work is charged to the phase that queued it;
* matrix-product FLOPs per epoch give GFLOP/s, as a fraction of a float32 matmul peak measured
  in the same run; bytes copied between host and device are counted in the loop.

The labels are a fixed random linear function of the inputs, so training is real (the loss goes
down) while the pixel values, which do not affect timing, cost nothing to make. Host NumPy is used
here only for that data, the hand-written NumPy reference and the report; tinynet's own timing
runs through tinynet.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np  # host data, the hand-written reference and the report only

import tinynet as tn

from .backend import synchronize

MLP_SIZES = (784, 256, 128, 10)
LR, MOMENTUM = 0.01, 0.9
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_MARK = "TINYNET_BENCH_CHILD"  # set in the child process that runs with pinned threads
EXTRA_ENVIRONMENT = None  # optional callable returning more environment fields (benchmarks/)


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


def step_flops(model: str, batch: int) -> int:
    """Matrix-product FLOPs of one training step of ``"mlp"`` or ``"cnn"`` at ``batch``."""
    if model == "mlp":
        pairs = itertools.pairwise(MLP_SIZES)
        return sum(linear_flops(batch, i, o, k > 0) for k, (i, o) in enumerate(pairs))
    return (conv_flops(batch, 1, 8, 3, 28, False) + conv_flops(batch, 8, 16, 3, 14)
            + linear_flops(batch, 16 * 7 * 7, 10))


# --- models and data --------------------------------------------------------------------------

def build_tinynet(model: str) -> tn.nn.Module:
    """The benchmark network in tinynet (no dropout: the three implementations compute alike)."""
    nn = tn.nn
    if model == "mlp":
        a, b, c, d = MLP_SIZES
        return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c), nn.ReLU(),
                             nn.Linear(c, d))
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


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


def _epochs(run_one, epochs: int) -> list:
    """One untimed warm-up epoch, then ``epochs`` timed ones: one dict per timed epoch; the
    first carries the warm-up's mean loss (``warmup_loss``) so the loss trend spans all epochs."""
    warm = run_one()
    gc.collect()
    timed = [run_one() for _ in range(epochs)]
    timed[0]["warmup_loss"] = statistics.fmean(warm["losses"])
    return timed


# --- the three implementations ----------------------------------------------------------------

def run_tinynet(model: str, x: np.ndarray, y: np.ndarray, batch: int, epochs: int,
                device: tn.Device, seed: int = 0) -> list:
    """Time ``epochs`` epochs (after one warm-up) of tinynet; one dict per epoch."""
    tn.manual_seed(seed)
    net = build_tinynet(model).to(device)
    opt = tn.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = tn.nn.CrossEntropyLoss()
    order_rng = np.random.default_rng(seed)
    on_host = device.type == "cpu"
    clock = time.perf_counter

    def one_epoch() -> dict:
        phases = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
        to_device = from_device = 0
        losses = []
        order = order_rng.permutation(len(y))
        synchronize(device)
        start = clock()
        for lo in range(0, len(y) - batch + 1, batch):  # full batches only, like drop_last
            t0 = clock()
            idx = order[lo:lo + batch]
            xb, yb = x[idx], y[idx]
            xt, yt = tn.tensor(xb, device=device), tn.tensor(yb, device=device)
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

    return _epochs(one_epoch, epochs)


def run_numpy(x: np.ndarray, y: np.ndarray, batch: int, epochs: int, seed: int = 0) -> list:
    """Time the hand-written NumPy MLP (same initial weights as tinynet's with ``seed``)."""
    tn.manual_seed(seed)
    linears = [m for m in build_tinynet("mlp").modules() if isinstance(m, tn.nn.Linear)]
    ref = NumpyMLP([m.weight.numpy() for m in linears], [m.bias.numpy() for m in linears])
    order_rng = np.random.default_rng(seed)

    def one_epoch() -> dict:
        losses = []
        order = order_rng.permutation(len(y))
        start = time.perf_counter()
        for lo in range(0, len(y) - batch + 1, batch):
            idx = order[lo:lo + batch]
            loss, grads = ref.loss_and_grads(x[idx], y[idx])
            ref.step(grads)
            losses.append(loss)
        return {"seconds": time.perf_counter() - start, "losses": losses}

    return _epochs(one_epoch, epochs)


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
              seed: int = 0) -> list:
    """Time PyTorch eager with the same network, initial weights, optimizer and batch order."""
    import torch

    tn.manual_seed(seed)
    src = build_tinynet(model)
    nn = torch.nn
    if model == "mlp":
        net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                            nn.Linear(128, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    with torch.no_grad():
        for p, q in zip(net.parameters(), src.parameters()):
            p.copy_(torch.from_numpy(q.numpy()))
    net.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    order_rng = np.random.default_rng(seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def one_epoch() -> dict:
        losses = []
        order = order_rng.permutation(len(y))
        sync()
        start = time.perf_counter()
        for lo in range(0, len(y) - batch + 1, batch):
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

    return _epochs(one_epoch, epochs)


# --- records ----------------------------------------------------------------------------------

def environment() -> dict:
    """Versions, machine and thread counts, for every JSON record."""
    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "logical_cpus": os.cpu_count(), "numpy": np.__version__,
           "tinynet": getattr(tn, "__version__", None),
           "thread_env": {k: os.environ.get(k) for k in THREAD_ENV_VARS}}
    try:
        env["blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - older NumPy: the record just lacks it
        env["blas"] = None
    try:
        import threadpoolctl

        env["blas_threads"] = [p.get("num_threads") for p in threadpoolctl.threadpool_info()]
    except ImportError:
        env["blas_threads"] = None  # no threadpoolctl: thread_env says what was asked for
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
                peak: float | None) -> dict:
    """One JSON record: per-epoch figures, their median and spread, FLOP rate and loss trend."""
    times = [e["seconds"] for e in epochs]
    iters = len(epochs[0]["losses"])
    med = statistics.median(times)
    flops = step_flops(model, batch) * iters
    rec = {"model": model, "impl": impl, "device": device, "batch_size": batch,
           "samples": iters * batch, "iterations": iters, "epoch_seconds": summarize(times),
           "samples_per_s": iters * batch / med, "iterations_per_s": iters / med,
           "matmul_gflop_per_epoch": flops / 1e9, "gflop_per_s": flops / med / 1e9,
           "matmul_peak_gflop_per_s": peak,
           "fraction_of_peak": flops / med / 1e9 / peak if peak else None,
           "overhead_us_per_step": (med - flops / (peak * 1e9)) / iters * 1e6 if peak else None,
           # mean batch loss of the warm-up epoch and of the last measured epoch
           "loss_first": epochs[0]["warmup_loss"],
           "loss_last": statistics.fmean(epochs[-1]["losses"]),
           "peak_rss_mib": peak_rss_mb()}
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
        return max(384 if model == "mlp" else 256, 2 * max(batch_sizes))
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


def run_bench(models: list, devices: list, batch_sizes: list, epochs: int, quick: bool = False,
              say=print) -> dict:
    """Run every (model, device, implementation, batch size) and return the JSON document."""
    records, missing, peaks = [], {}, {}
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
        for model in models:
            x, y = synthetic_data(model, _samples(model, quick, batch_sizes))
            for batch in batch_sizes:
                if batch > len(y):
                    missing[f"{model}-b{batch}"] = f"batch larger than the {len(y)} samples"
                    continue
                for impl in impls:
                    if impl == "numpy" and model != "mlp":
                        continue
                    if impl == "tinynet":
                        eps = run_tinynet(model, x, y, batch, epochs, device)
                    elif impl == "numpy":
                        eps = run_numpy(x, y, batch, epochs)
                    else:
                        eps = run_torch(model, x, y, batch, epochs, dev)
                    rec = make_record(model, impl, dev, batch, len(y), eps, peaks[dev])
                    records.append(rec)
                    say(f"  {model} b{batch} {impl:8s} {rec['epoch_seconds']['median']:.3f} s")
    _add_ratios(records)
    return {"environment": environment(), "epochs_measured": epochs, "quick": quick,
            "matmul_peak_gflop_per_s": peaks, "missing": missing, "records": records}


def _add_ratios(records: list) -> None:
    """``time_vs_tinynet``: each record's median epoch time over tinynet's on the same device."""
    base = {(r["model"], r["device"], r["batch_size"]): r["epoch_seconds"]["median"]
            for r in records if r["impl"] == "tinynet"}
    for r in records:
        ref = base.get((r["model"], r["device"], r["batch_size"]))
        r["time_vs_tinynet"] = r["epoch_seconds"]["median"] / ref if ref else None


# --- the report -------------------------------------------------------------------------------

def markdown_table(doc: dict) -> str:
    """The records as a Markdown table, then what did not run and why."""
    head = ("| model | batch | impl | device | epoch s (median, min-max) | samples/s | it/s | "
            "data / fwd / bwd / opt s | GFLOP/s (% peak) | other us/step | loss first -> last | "
            "time / tinynet |")
    lines = [head, "|" + "---|" * 12]
    for r in doc["records"]:
        e = r["epoch_seconds"]
        ph = r.get("phases_seconds")
        phases = " / ".join(f"{ph[k]:.3f}" for k in ph) if ph else "-"
        frac = r["fraction_of_peak"]
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['impl']} | {r['device']} | "
            f"{e['median']:.3f} ({e['min']:.3f}-{e['max']:.3f}) | {r['samples_per_s']:,.0f} | "
            f"{r['iterations_per_s']:,.0f} | {phases} | {r['gflop_per_s']:.1f} "
            f"({100 * frac:.0f}%) | {r['overhead_us_per_step']:.0f} | "
            f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} | {r['time_vs_tinynet']:.2f} |")
    if doc["missing"]:
        lines.append("")
    for key, why in doc["missing"].items():
        lines.append(f"- {key}: not run ({why})")
    return "\n".join(lines)


def crossover_table(doc: dict) -> str:
    """The batch size from which tinynet on the GPU beats tinynet on the CPU, per model."""
    recs = {(r["model"], r["device"], r["batch_size"]): r["epoch_seconds"]["median"]
            for r in doc["records"] if r["impl"] == "tinynet"}
    devices = {d for _, d, _ in recs}
    if not {"cpu", "cuda"} <= devices:
        why = doc["missing"].get("cuda", "the cuda device was not asked for")
        return f"Crossover (GPU vs CPU): needs a GPU run on both devices ({why})."
    lines = ["| model | batch | cpu s | cuda s | faster |", "|---|---|---|---|---|"]
    for model in sorted({m for m, _, _ in recs}):
        cross = None
        for b in sorted({b for m, _, b in recs if m == model}):
            cpu, gpu = recs.get((model, "cpu", b)), recs.get((model, "cuda", b))
            if cpu is None or gpu is None:
                continue
            if gpu < cpu and cross is None:
                cross = b
            lines.append(f"| {model} | {b} | {cpu:.3f} | {gpu:.3f} | "
                         f"{'cuda' if gpu < cpu else 'cpu'} |")
        lines.append(f"| {model} | crossover | {cross if cross else 'none in range'} | | |")
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> str:
    """Epoch time against batch size, one line per implementation and device; a note if no
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot not written: matplotlib is not installed"
    models = sorted({r["model"] for r in doc["records"]})
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5 * max(1, len(models)), 4),
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        lines: dict = {}
        for r in doc["records"]:
            if r["model"] == model:
                lines.setdefault(f"{r['impl']} ({r['device']})", []).append(
                    (r["batch_size"], r["epoch_seconds"]["median"]))
        for label, pts in sorted(lines.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="epoch seconds",
               title=model)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot: {path}"


# --- command line -----------------------------------------------------------------------------

def _csv(kind):
    def parse(text: str) -> list:
        return [kind(part) for part in text.split(",") if part]
    return parse


def add_parser(commands) -> None:
    """Add the ``bench`` subcommand to the ``tinynet`` subparsers ``commands``."""
    bench = commands.add_parser(
        "bench", help="time training epochs: tinynet vs NumPy and PyTorch, CPU vs GPU",
        description="Time MLP and CNN training epochs (median of measured epochs after a warm-up) "
                    "for tinynet, a hand-written NumPy MLP and PyTorch, on the CPU and a GPU.")
    add = bench.add_argument
    add("--device", type=_csv(str), default=["cpu", "cuda"],
        help="comma-separated: cpu, cuda, standin (default: cpu,cuda)")
    add("--model", type=_csv(str), default=["mlp", "cnn"], help="mlp, cnn (default: both)")
    add("--batch-sizes", type=_csv(int), default=[32, 128, 512], help="default: 32,128,512")
    add("--epochs", type=int, default=None, help="measured epochs (default 3; 1 with --quick)")
    add("--quick", action="store_true", help="a few hundred samples: a smoke test in seconds")
    add("--out", metavar="DIR", default=None, help="folder for bench.json, bench.md, bench.png")
    add("--threads", type=int, default=None, help="BLAS (and torch) threads")


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

    env = dict(os.environ, **{k: str(threads) for k in THREAD_ENV_VARS}, **{CHILD_MARK: "1"})
    return subprocess.run([sys.executable, "-m", "tinynet", *argv], env=env, check=False).returncode


def main(args, argv: list) -> int:
    """Run ``tinynet bench`` with parsed ``args`` (``argv`` reruns it with pinned threads)."""
    for name in args.model:
        if name not in ("mlp", "cnn"):
            print(f"tinynet bench: error: unknown model {name!r}", file=sys.stderr)
            return 2
    for name in args.device:
        if name not in ("cpu", "cuda", "standin"):
            print(f"tinynet bench: error: unknown device {name!r}", file=sys.stderr)
            return 2
    if args.threads is not None:
        status = _pin_threads(args.threads, argv)
        if status is not None:
            return status
    epochs = args.epochs or (1 if args.quick else 3)
    doc = run_bench(args.model, args.device, args.batch_sizes, epochs, args.quick,
                    say=lambda *a: print(*a, file=sys.stderr))
    doc["threads"] = args.threads
    out = Path(args.out or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(doc) + "\n\n" + crossover_table(doc)
    print(table)
    (out / "bench.md").write_text(table + "\n")
    (out / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(plot(doc, out / "bench.png"))
    print(f"records: {out / 'bench.json'}")
    return 0
