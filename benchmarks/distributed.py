"""Data-parallel scaling of ``tn.distributed`` on one machine: samples/s of 1 vs 2 ranks.

    python benchmarks/distributed.py                  # 5 alternating rounds, about 2 minutes
    python benchmarks/distributed.py --rounds 9 --json benchmarks/results/distributed.json
    python benchmarks/distributed.py --quick          # one short round (smoke run)

The model is the 784-256-128-10 MLP (float32, SGD with momentum) on synthetic MNIST-shaped data,
fed by ``DataLoader(sampler=DistributedSampler(...))``; every rank runs one BLAS thread. Each job
is one ``mpiexec -n W`` launch (the 1-rank jobs too, so both pay the same launcher), trains a
warm-up epoch and then ``--epochs`` timed epochs, and reports the job's samples/s (all ranks'
samples over the epoch's wall time, median epoch). Jobs:

* ``1 rank, batch 128`` and ``2 ranks, batch 128 each``: **weak scaling** (equal per-rank batch):
  efficiency = samples/s(2) / (2 x samples/s(1)).
* ``1 rank, batch 256`` and ``2 ranks, batch 128 each``: **strong scaling** (equal global batch
  256): speed-up = samples/s(2) / samples/s(1), efficiency = speed-up / 2.
* ``2 ranks, no communication``: the same two processes with a plain optimizer (no all-reduce;
  their weights drift apart): the most two ranks can reach on this machine, whatever MPI does.
* ``2 ranks, overlap``: ``DistributedOptimizer(overlap=True, bucket_cap_mb=0.25)``.
* ``2 ranks, fit``: ``tn.train.fit`` (its per-batch global loss and stop agreement included).
* ``NumPy + mpi4py, 1 rank`` / ``2 ranks``: the same MLP step hand-written in NumPy (forward,
  backward, SGD momentum) with one ``comm.Allreduce`` of the flat gradient: the floor for any
  NumPy engine on MPI, measured side by side, so tinynet's own cost is told from the machine's.

Per step the 2-rank jobs also report the all-reduce of the flat gradient buffer (0.94 MB) as
measured inside ``step()`` (it includes waiting for the slower rank) and alone, back to back.

The rounds alternate the jobs, so a slow spell of a shared machine hits every job of a round;
ratios are formed within a round and the spread over rounds is reported. Results go to
``benchmarks/results/distributed-<cpu>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing  # noqa: E402

JOBS = {  # name: (ranks, batch per rank, mode)
    "1 rank, batch 128": (1, 128, "step"),
    "2 ranks, batch 128 each": (2, 128, "step"),
    "1 rank, batch 256": (1, 256, "step"),
    "2 ranks, no communication": (2, 128, "none"),
    "2 ranks, overlap": (2, 128, "overlap"),
    "2 ranks, fit": (2, 128, "fit"),
    "NumPy + mpi4py, 1 rank": (1, 128, "numpy"),
    "NumPy + mpi4py, 2 ranks": (2, 128, "numpy"),
}
SAMPLES = 128 * 2 * 40  # per epoch: 40 global batches of 256


# --- one job, on every rank ----------------------------------------------------------------------
def numpy_worker(batch: int, epochs: int, samples: int) -> None:
    """The hand-written reference: NumPy forward/backward/SGD-momentum, mpi4py all-reduce."""
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    sizes = (784, 256, 128, 10)
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        params += [rng.standard_normal((fan_out, fan_in), dtype=np.float32) / np.sqrt(fan_in),
                   np.zeros(fan_out, np.float32)]
    flat = np.empty(sum(p.size for p in params), np.float32)  # (235146,) the gradient buffer
    views, start = [], 0
    for p in params:
        views.append(flat[start:start + p.size].reshape(p.shape))
        start += p.size
    velocity = [np.zeros_like(p) for p in params]
    epoch_seconds, sync_seconds = [], []
    for epoch in range(epochs + 1):
        mine = np.random.default_rng(epoch).permutation(samples)[rank::world]
        comm.Barrier()
        start, synced = time.perf_counter(), 0.0
        for lo in range(0, len(mine), batch):
            rows = mine[lo:lo + batch]
            acts = [x[rows]]
            for k in range(3):  # forward: Linear (+ ReLU on the hidden layers)
                h = acts[-1] @ params[2 * k].T
                h += params[2 * k + 1]
                if k < 2:
                    np.maximum(h, 0, out=h)
                acts.append(h)
            logits = acts[-1]
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            g = exp / exp.sum(axis=1, keepdims=True)  # d(mean cross-entropy)/d(logits)
            g[np.arange(len(rows)), y[rows]] -= 1
            g /= len(rows)
            for k in (2, 1, 0):  # backward, straight into the flat buffer
                np.matmul(g.T, acts[k], out=views[2 * k])
                np.sum(g, axis=0, out=views[2 * k + 1])
                if k:
                    g = g @ params[2 * k]
                    g *= acts[k] > 0
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, flat)
            synced += time.perf_counter() - t0
            flat /= world
            for p, v, grad in zip(params, velocity, views):  # SGD, momentum 0.9, lr 0.01
                v *= 0.9
                v += grad
                p -= 0.01 * v
        if epoch:
            epoch_seconds.append(time.perf_counter() - start)
            sync_seconds.append(synced / -(-len(mine) // batch))
    if rank == 0:
        print("RESULT " + json.dumps({
            "ranks": world, "batch_per_rank": batch, "mode": "numpy",
            "samples_per_epoch": len(mine) * world, "epoch_seconds": epoch_seconds,
            "samples_per_s": len(mine) * world / statistics.median(epoch_seconds),
            "allreduce_in_step_ms": (statistics.median(sync_seconds) * 1e3 if world > 1
                                     else None),
            "allreduce_alone_ms": None, "gradient_mb": flat.nbytes / 2**20}), flush=True)


def worker(mode: str, batch: int, epochs: int, samples: int) -> None:
    if mode == "numpy":
        numpy_worker(batch, epochs, samples)
        return
    import tinynet as tn
    import tinynet.distributed as dist

    tn.runtime.keep_freed_memory()
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    tn.manual_seed(0)
    x = tn.randn(samples, 784)  # (N, 784), the same on every rank
    y = tn.randint(0, 10, (samples,))
    dataset = tn.data.TensorDataset(x, y)
    sampler = tn.data.DistributedSampler(dataset, seed=0)
    loader = tn.data.DataLoader(dataset, batch_size=batch, sampler=sampler)
    model = tn.models.mlp(in_features=784, hidden=(256, 128), num_classes=10, dropout=0.0)
    inner = tn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if mode == "none":
        opt = inner
    else:
        opt = dist.DistributedOptimizer(inner, overlap=mode == "overlap",
                                        bucket_cap_mb=0.25 if mode == "overlap" else 25.0)
    loss_fn = tn.nn.CrossEntropyLoss()
    epoch_seconds, sync_seconds = [], []
    if mode == "fit":
        history = tn.train.fit(model, loss_fn, opt, loader, epochs=epochs + 1, metrics=(),
                               progress=False)
        epoch_seconds = [r["time"] for r in history.epochs[1:]]
    else:
        for epoch in range(epochs + 1):
            sampler.set_epoch(epoch)
            dist.barrier()
            start, synced = time.perf_counter(), 0.0
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                if mode != "none":
                    t0 = time.perf_counter()
                    opt.synchronize()  # the all-reduce, waiting for the other rank included
                    synced += time.perf_counter() - t0
                    with opt.skip_synchronize():
                        opt.step()
                else:
                    opt.step()
            if epoch:  # the first epoch warms up
                epoch_seconds.append(time.perf_counter() - start)
                sync_seconds.append(synced / len(loader))
    alone = None
    if world > 1 and mode == "step":
        flat = opt.buckets.buckets[0].flat
        group = dist.default_group()
        dist.barrier()
        alone = _timing.summarize(_timing.time_calls(lambda: group.allreduce_(flat, "sum"),
                                                     200, 20), 1e3)
    if rank == 0:
        seconds = statistics.median(epoch_seconds)
        print("RESULT " + json.dumps({
            "ranks": world, "batch_per_rank": batch, "mode": mode,
            "samples_per_epoch": len(sampler) * world, "steps_per_epoch": len(loader),
            "epoch_seconds": epoch_seconds, "samples_per_s": len(sampler) * world / seconds,
            "allreduce_in_step_ms": (statistics.median(sync_seconds) * 1e3
                                     if sync_seconds and world > 1 else None),
            "allreduce_alone_ms": alone,
            "gradient_mb": (opt.buckets.numel * 4 / 2**20 if mode != "none" else None)}),
            flush=True)
    dist.destroy_process_group()


# --- the driver: alternating rounds of jobs -----------------------------------------------------
def mpiexec() -> list:
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or \
        shutil.which("mpiexec")
    if found is None:
        sys.exit('no mpiexec: pip install "tinynet[dist]"')
    return [found]


def run_job(name: str, epochs: int, samples: int) -> dict:
    ranks, batch, mode = JOBS[name]
    command = mpiexec() + ["-n", str(ranks), sys.executable, os.path.abspath(__file__),
                           "--worker", mode, str(batch), str(epochs), str(samples)]
    done = subprocess.run(command, capture_output=True, text=True, env=_timing.child_env(1),
                          stdin=subprocess.DEVNULL, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{name}: the job failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT "):])


def spread(values: list) -> str:
    return (f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
            if values else "n/a")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of all jobs")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per job")
    parser.add_argument("--quick", action="store_true", help="one short round (smoke run)")
    parser.add_argument("--json", default=None, help="where to write the records")
    parser.add_argument("--worker", nargs=4, metavar=("MODE", "BATCH", "EPOCHS", "SAMPLES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, batch, epochs, samples = args.worker
        worker(mode, int(batch), int(epochs), int(samples))
        return
    rounds, epochs, samples = (1, 1, SAMPLES // 4) if args.quick else (args.rounds, args.epochs,
                                                                       SAMPLES)
    results: dict[str, list] = {name: [] for name in JOBS}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        for name in JOBS:
            results[name].append(run_job(name, epochs, samples))
        one, two = results["1 rank, batch 128"][-1], results["2 ranks, batch 128 each"][-1]
        print(f"round {r + 1}/{rounds}: load {loads[-1]:.1f}, 1 rank {one['samples_per_s']:,.0f}"
              f" samples/s, 2 ranks {two['samples_per_s']:,.0f} samples/s, weak-scaling "
              f"efficiency {two['samples_per_s'] / (2 * one['samples_per_s']):.2f}", flush=True)

    def ratio(top: str, bottom: str, factor: float) -> list:
        return [a["samples_per_s"] / (factor * b["samples_per_s"])
                for a, b in zip(results[top], results[bottom])]

    two = "2 ranks, batch 128 each"
    summary = {
        "weak_scaling_efficiency": ratio(two, "1 rank, batch 128", 2),
        "strong_scaling_efficiency": ratio(two, "1 rank, batch 256", 2),
        "no_communication_ceiling": ratio("2 ranks, no communication", "1 rank, batch 128", 2),
        "overlap_efficiency": ratio("2 ranks, overlap", "1 rank, batch 128", 2),
        "fit_efficiency": ratio("2 ranks, fit", "1 rank, batch 128", 2),
        "numpy_mpi4py_efficiency": ratio("NumPy + mpi4py, 2 ranks", "NumPy + mpi4py, 1 rank", 2),
        "tinynet_over_numpy_2_ranks": ratio(two, "NumPy + mpi4py, 2 ranks", 1),
    }
    print(f"\n{rounds} round(s) on {_timing.cpu_model()} ({os.cpu_count()} logical CPUs), one BLAS "
          f"thread per rank, load average {min(loads):.1f}-{max(loads):.1f}; median (min-max)\n")
    print("| job | samples/s | all-reduce in step (ms) | all-reduce alone (ms) |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        sps = [run["samples_per_s"] for run in runs]
        in_step = [run["allreduce_in_step_ms"] for run in runs if run["allreduce_in_step_ms"]]
        alone = [run["allreduce_alone_ms"]["median"] for run in runs if run["allreduce_alone_ms"]]
        print(f"| {name} | {statistics.median(sps):,.0f} ({min(sps):,.0f}-{max(sps):,.0f}) | "
              f"{spread(in_step)} | {spread(alone)} |")
    print("\n| ratio (within each round) | median (min-max) |\n|---|---:|")
    for name, values in summary.items():
        print(f"| {name.replace('_', ' ')} | {spread(values)} |")
    record = {"benchmark": "distributed", "rounds": rounds, "epochs": epochs,
              "samples": samples, "load_average": loads, "jobs": results, "summary": summary,
              "env": _timing.environment()}
    path = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                     f"distributed-{_timing.machine_slug()}.json")
    if not args.quick or args.json:
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
        print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
