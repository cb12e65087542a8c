"""``tn.distributed``: data-parallel training over processes and machines (MPI, NCCL via CuPy).

``W`` copies of a training script run as ranks ``0 .. W-1`` (``mpiexec -n W``). Each rank reads a
different shard of the same shuffled epoch (``tn.data.DistributedSampler``), computes gradients on
its ``b`` samples, and ``DistributedOptimizer`` averages them, so every rank takes the step one
process would take on the global batch of ``W * b`` samples. The guide, with the numbers, is
docs/distributed.md.

Reading order: ``group.py`` (init_process_group, rank, world size, abort on exception) ->
``backends.py`` (local, mpi) and ``nccl.py`` -> ``collectives.py`` (all_reduce, broadcast and the
object collectives on Tensors) -> ``buffer.py`` (the flat, bucketed gradient buffer) ->
``optimizer.py`` (DistributedOptimizer) -> ``broadcast.py`` (same start on every rank) ->
``functional.py`` and ``sync_batchnorm.py``. ``tn.train.fit`` and ``tinynet train`` use all of
it when a process group exists.

Example (``mpiexec -n 2 python train.py``):
    >>> import tinynet as tn
    >>> import tinynet.distributed as dist
    >>> dist.init_process_group("auto")
    >>> tn.manual_seed(0); model = tn.models.mlp()
    >>> dist.broadcast_parameters(model); dist.seed_per_rank(0)
    >>> opt = dist.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=0.1))
    >>> sampler = tn.data.DistributedSampler(train_set, seed=0)
    >>> loader = tn.data.DataLoader(train_set, batch_size=64, sampler=sampler)
    >>> tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=10)
"""

from . import functional
from .backends import LAUNCHER_SIZE_VARS, Backend, LocalBackend, MPIBackend, launcher_world_size
from .broadcast import broadcast_optimizer_state, broadcast_parameters
from .buffer import Bucket, GradientBuckets
from .collectives import all_gather_object, all_reduce, broadcast, broadcast_object
from .group import (
    BACKENDS,
    abort,
    barrier,
    default_group,
    destroy_process_group,
    get_backend,
    get_local_rank,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
    rank_and_size,
    seed_per_rank,
)
from .optimizer import DistributedOptimizer
from .sync_batchnorm import SyncBatchNorm, sync_batch_norm

__all__ = [
    "BACKENDS", "Backend", "Bucket", "DistributedOptimizer", "GradientBuckets",
    "LAUNCHER_SIZE_VARS", "LocalBackend", "MPIBackend", "SyncBatchNorm", "abort",
    "all_gather_object", "all_reduce", "barrier", "broadcast", "broadcast_object",
    "broadcast_optimizer_state", "broadcast_parameters", "default_group", "destroy_process_group",
    "functional", "get_backend", "get_local_rank", "get_rank", "get_world_size",
    "init_process_group", "is_initialized", "launcher_world_size", "rank_and_size",
    "seed_per_rank", "sync_batch_norm",
]
