"""Scenarios that tests/test_distributed_mpi.py runs under ``mpiexec -n 2``.

``mpiexec -n 2 python tests/mpi_worker.py SCENARIO OUT_DIR [BACKEND]``: every rank runs the
scenario and writes what it measured to ``OUT_DIR/SCENARIO-rank<r>.json``; the test reads those
files and asserts. Nothing is asserted here, so a failure shows up as a readable pytest failure
(or, for the ``fail`` scenario, as the aborted job the test expects).
"""

import json
import os
import sys

import numpy as np

import tinynet as tn
import tinynet.distributed as dist
from tinynet.train.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, NaNGuard

BATCH = 8  # per rank


def problem(n=60, features=5, classes=3, seed=1):
    """A fixed classification set (host float64 arrays), the same on every rank."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


def build(sync: bool, dropout: float = 0.0):
    """Linear -> BatchNorm -> ReLU [-> Dropout] -> Linear, seeded alike on every rank."""
    tn.manual_seed(0)
    layers = [tn.nn.Linear(5, 16, bias=False), tn.nn.BatchNorm1d(16), tn.nn.ReLU()]
    if dropout:
        layers.append(tn.nn.Dropout(dropout))
    model = tn.nn.Sequential(*layers, tn.nn.Linear(16, 3))
    return dist.SyncBatchNorm.convert_sync_batchnorm(model) if sync else model


def state_of(model) -> dict:
    return {k: v.cpu().numpy() for k, v in model.state_dict().items()}


def ranks_identical(model) -> bool:
    """Every rank's weights and buffers bitwise equal to rank 0's."""
    states = dist.all_gather_object(state_of(model))
    return all(np.array_equal(states[0][k], s[k]) for s in states for k in states[0])


def distributed_fit(x, y, device, dtype, overlap, epochs=2, dropout=0.0):
    """fit() on this rank's shard of every epoch, with averaged gradients."""
    ds = tn.data.TensorDataset(tn.tensor(x, dtype=dtype, device=device),
                               tn.tensor(y, device=device))
    model = build(sync=True, dropout=dropout).to(device=device, dtype=dtype)
    dist.broadcast_parameters(model)
    dist.seed_per_rank(0)
    inner = tn.optim.Adam(model.parameters(), lr=0.01)
    opt = dist.DistributedOptimizer(inner, bucket_cap_mb=1e-4 if overlap else float("inf"),
                                    overlap=overlap)
    sampler = tn.data.DistributedSampler(ds, seed=3)
    loader = tn.data.DataLoader(ds, batch_size=BATCH, sampler=sampler)
    history = tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=epochs,
                           val_loader=loader, progress=False)
    return model, history, len(opt.buckets.buckets)


def one_process_reference(x, y, world, epochs=2):
    """The same run in one process: plain BatchNorm, no wrapper, the global batches in order
    (global batch k = every rank's k-th batch)."""
    model = build(sync=False)
    opt = tn.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = tn.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        whole = tn.data.DistributedSampler(x, num_replicas=world, rank=0, seed=3)
        whole.set_epoch(epoch)
        order = whole.epoch_order()
        shards = [order[r::world] for r in range(world)]
        for start in range(0, len(shards[0]), BATCH):
            rows = np.concatenate([s[start:start + BATCH] for s in shards])
            opt.zero_grad()
            loss_fn(model(tn.tensor(x[rows])), tn.tensor(y[rows])).backward()
            opt.step()
    return model


def scenario_train(out):
    rank, world = dist.get_rank(), dist.get_world_size()
    tn.set_default_dtype("float64")  # the same initial draws as the reference
    x, y = problem()
    result = {"world": world}
    reference = state_of(one_process_reference(x, y, world)) if rank == 0 else None
    for device in ("cpu", "standin"):
        for overlap in (False, True):
            model, history, buckets = distributed_fit(x, y, device, "float64", overlap)
            mine = state_of(model)
            key = f"{device}-{'overlap' if overlap else 'flat'}"
            result[key] = {
                "identical": ranks_identical(model), "buckets": buckets,
                "history": [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")}
                            for r in history.epochs],
                "max_diff": (max(float(np.abs(mine[k] - reference[k]).max()) for k in mine)
                             if rank == 0 else None)}
    # float32 with dropout: each rank its own masks, still one model
    tn.set_default_dtype("float32")
    model, _, _ = distributed_fit(x, y, "cpu", "float32", overlap=False, epochs=1, dropout=0.3)
    mask = tn.nn.functional.dropout(tn.ones(64), p=0.5).numpy()
    masks = dist.all_gather_object(mask)
    result["float32_dropout"] = {"identical": ranks_identical(model),
                                 "masks_differ": not np.array_equal(masks[0], masks[1])}
    return result


def scenario_collectives(out):
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {}
    for op in ("sum", "avg", "max"):
        t = tn.tensor([rank + 1.0, 10.0 * rank])
        dist.all_reduce(t, op=op)
        result[op] = t.numpy().tolist()
    strided = tn.arange(12.0).reshape(3, 4)[:, 1]  # a non-contiguous view
    dist.all_reduce(strided)
    result["strided"] = strided.numpy().tolist()
    t = tn.full((3,), float(rank), device="standin")
    dist.broadcast(t, src=1)
    result["broadcast_standin"] = t.cpu().numpy().tolist()
    result["object"] = dist.broadcast_object({"seed": 7} if rank == 0 else None, src=0)
    result["gathered"] = dist.all_gather_object(f"rank{rank}")
    try:
        dist.broadcast(t, src=world)
    except ValueError as error:
        result["bad_src"] = str(error)
    # different initial weights, then rank 0's everywhere
    tn.manual_seed(rank)
    model = tn.nn.Sequential(tn.nn.Linear(3, 4), tn.nn.BatchNorm1d(4))
    result["differ_before"] = not ranks_identical(model)
    dist.broadcast_parameters(model, src=0)
    result["identical_after"] = ranks_identical(model)
    # rank 0 has stepped its optimizer, rank 1 has not: broadcast the state
    opt = tn.optim.Adam(model.parameters(), lr=0.1 if rank == 0 else 0.5)
    if rank == 0:
        for _ in range(3):
            opt.zero_grad()
            model(tn.randn(8, 3)).sum().backward()
            opt.step()
    dist.broadcast_optimizer_state(opt, src=0)
    state = opt.state_dict()
    flat = {f"{i}/{k}": (v.numpy().tolist() if hasattr(v, "numpy") else v)
            for i, s in state["state"].items() for k, v in s.items()}
    result["optimizer"] = {"lr": state["param_groups"][0]["lr"], "state": flat}
    # overlap with 2 backward passes per step == averaging the accumulated gradients in step()
    states = []
    for options in ({}, {"overlap": True, "bucket_cap_mb": 1e-4, "backward_passes_per_step": 2}):
        tn.manual_seed(0)
        net = tn.nn.Sequential(tn.nn.Linear(3, 8), tn.nn.Tanh(), tn.nn.Linear(8, 2))
        opt = dist.DistributedOptimizer(tn.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                                        **options)
        data = tn.Generator(rank)  # each rank its own samples
        for _ in range(3):
            opt.zero_grad()
            for _ in range(2):
                (net(tn.randn(4, 3, generator=data)) ** 2).mean().backward()
            opt.step()
        states.append(state_of(net))
    result["overlap_accumulates"] = [all(np.array_equal(states[0][k], states[1][k])
                                         for k in states[0]), len(opt.buckets.buckets)]
    # parameters cast after the optimizer was wrapped: the buffers follow them
    net.to(tn.float64)
    opt.zero_grad()
    for _ in range(2):
        (net(tn.randn(4, 3, dtype="float64", generator=data)) ** 2).mean().backward()
    opt.step()
    result["moved"] = [str(opt.buckets.buckets[0].flat.dtype), ranks_identical(net)]
    return result


class StopOnRank(Callback):
    """Stops the run on one rank only, at one iteration: every rank must stop there."""

    def __init__(self, rank, iteration):
        self.rank, self.iteration = rank, iteration

    def on_batch_end(self, state):
        if dist.get_rank() == self.rank and state.iteration == self.iteration:
            state.stop_training, state.stop_reason = True, f"rank {self.rank} stopped"


class Batches(Callback):
    """Counts the batches this rank trained on."""

    count = 0

    def on_batch_end(self, state):
        self.count += 1


def scenario_callbacks(out):
    rank = dist.get_rank()
    x, y = problem()
    ds = tn.data.TensorDataset(tn.tensor(x, dtype="float32"), tn.tensor(y))
    sampler = tn.data.DistributedSampler(ds, seed=0)
    loader = tn.data.DataLoader(ds, batch_size=BATCH, sampler=sampler)
    result = {}

    def run(callbacks, loss_fn=tn.nn.CrossEntropyLoss(), epochs=3):
        model = build(sync=True)
        dist.seed_per_rank(0)
        opt = dist.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=0.1))
        return tn.train.fit(model, loss_fn, opt, loader, epochs=epochs, val_loader=loader,
                            callbacks=callbacks, progress=True)

    # one writer: each rank names its own folder; only rank 0's may exist afterwards
    history = run([ModelCheckpoint(os.path.join(out, f"ckpt-rank{rank}")),
                   CSVLogger(os.path.join(out, f"log-rank{rank}.csv"))])
    result["history"] = [r["loss"] for r in history.epochs]
    ckpt = tn.load(os.path.join(out, "ckpt-rank0", "last.npz")) if rank == 0 else None
    if rank == 0:  # every rank's dropout stream is in it, and they differ
        streams = [r["rng"]["bit_generator"]["state"]["state"] for r in ckpt["rank_rngs"]]
        result["rank_rngs"] = [len(streams), streams[0] != streams[1]]
    # early stopping on the global validation loss: patience 0 with a tiny lr plateaus at once
    stop = EarlyStopping("val_loss", patience=0, min_delta=10.0)
    result["early_stop"] = run([stop]).stopped_epoch
    # a stop on rank 1 alone, mid-epoch: both ranks stop at that batch, with its reason
    batches = Batches()
    history = run([StopOnRank(1, 2), batches])
    result["stop_on_one"] = [len(history.epochs), history.stop_reason, batches.count]
    # a NaN on rank 1 only: the global loss is NaN, so NaNGuard stops both ranks alike

    def nan_on_rank1(output, target):
        loss = tn.nn.functional.cross_entropy(output, target)
        return loss * float("nan") if rank == 1 else loss

    history = run([NaNGuard(stream=sys.stdout)], loss_fn=nan_on_rank1)
    result["nan"] = [len(history.epochs), history.stop_reason]

    # resume: 1 epoch, then resume for a 2nd == 2 epochs in one go, bitwise, with dropout (each
    # rank continues its own random stream from the checkpoint)
    def resumable(epochs, folder, resume=False):
        model = build(sync=True, dropout=0.3)
        dist.seed_per_rank(0)
        opt = dist.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        loader = tn.data.DataLoader(ds, batch_size=BATCH,
                                    sampler=tn.data.DistributedSampler(ds, seed=0))
        start, history = 0, None
        if resume:
            start, history = tn.train.resume(os.path.join(folder, "last.npz"), model, opt,
                                             train_loader=loader)
        tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=epochs,
                     start_epoch=start, history=history, progress=False,
                     callbacks=[ModelCheckpoint(folder, monitor="loss")])
        dist.barrier()  # rank 0 has written the checkpoint before anyone reads it
        return state_of(model)

    straight = resumable(2, os.path.join(out, "straight"))
    resumable(1, os.path.join(out, "part"))
    resumed = resumable(2, os.path.join(out, "part"), resume=True)
    result["resume_bitwise"] = all(np.array_equal(straight[k], resumed[k]) for k in straight)
    return result


def scenario_fail(out):
    """Rank 1 raises during the third batch; rank 0 goes on into the next all-reduce."""
    rank = dist.get_rank()
    x, y = problem()
    ds = tn.data.TensorDataset(tn.tensor(x, dtype="float32"), tn.tensor(y))
    loader = tn.data.DataLoader(ds, batch_size=BATCH, sampler=tn.data.DistributedSampler(ds))

    class Boom(Callback):
        def on_batch_end(self, state):
            if rank == 1 and state.iteration == 3:
                raise RuntimeError("boom on rank 1")

    model = build(sync=True)
    opt = dist.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=0.1))
    tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=1000, callbacks=[Boom()],
                 progress=False)
    return {"finished": True}  # never reached: the job is aborted


def scenario_gpu(out):
    """On CUDA: NCCL (a GPU per rank) or MPI with host staging (ranks sharing one GPU)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{dist.get_local_rank()}" if dist.get_backend() == "nccl" else "cuda:0"
    tn.set_default_dtype("float64")
    x, y = problem()
    reference = state_of(one_process_reference(x, y, world)) if rank == 0 else None
    result = {"backend": dist.get_backend()}
    t = tn.tensor([rank + 1.0, 2.0], device=device)
    dist.all_reduce(t, op="avg")
    dist.broadcast(t, src=world - 1)
    result["avg"] = t.cpu().numpy().tolist()
    for overlap in (False, True):
        model, _, _ = distributed_fit(x, y, device, "float64", overlap)
        mine = state_of(model)
        result[f"overlap={overlap}"] = {
            "identical": ranks_identical(model),
            "max_diff": (max(float(np.abs(mine[k] - reference[k]).max()) for k in mine)
                         if rank == 0 else None)}
    return result


SCENARIOS = {"train": scenario_train, "collectives": scenario_collectives,
             "callbacks": scenario_callbacks, "fail": scenario_fail, "gpu": scenario_gpu}

if __name__ == "__main__":
    name, out_dir = sys.argv[1], sys.argv[2]
    dist.init_process_group(sys.argv[3] if len(sys.argv) > 3 else "mpi")
    outcome = SCENARIOS[name](out_dir)
    with open(os.path.join(out_dir, f"{name}-rank{dist.get_rank()}.json"), "w") as f:
        json.dump(outcome, f)
    dist.barrier()
    dist.destroy_process_group()
