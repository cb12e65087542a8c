"""The default process group: which backend this process talks through, its rank and world size.

A data-parallel job is ``W`` copies of one script ("ranks" ``0 .. W-1``), started by a launcher
(``mpiexec -n W python train.py``). Each rank calls :func:`init_process_group` once; from then
on the collectives (``collectives.py``) and the training loop see the same group. The group is
the one piece of global state this package keeps (PyTorch's ``torch.distributed`` keeps the same),
created only when asked for and removed by :func:`destroy_process_group`.

Backends (``backends.py``, ``nccl.py``): ``"local"`` (one process, no dependency), ``"mpi"``
(mpi4py), ``"nccl"`` (NCCL through CuPy for GPU arrays, MPI beside it), and ``"auto"``: ``local``
when no launcher started several processes, else ``nccl`` when training on CUDA with one GPU per
rank, else ``mpi``.

When one rank of a multi-rank job raises, the others would wait for it forever inside their next
collective. So by default an uncaught exception ends the whole job: the hook prints the traceback
with the rank and calls ``MPI_Abort``, which makes the launcher stop every rank.
"""

from __future__ import annotations

import sys

from ..backend import (
    Device,
    cuda_device_count,
    cuda_is_available,
    default_generator,
    get_default_device,
    host_namespace,
)
from .backends import Backend, LocalBackend, MPIBackend, launcher_world_size

BACKENDS = ("auto", "local", "mpi", "nccl")

_group: Backend | None = None
_previous_excepthook = None


def init_process_group(backend: str = "auto", device=None,
                       abort_on_exception: bool = True) -> None:
    """Join this process to the job's default process group (call it once per rank, first).

    Args:
        backend: ``"auto"``, ``"local"``, ``"mpi"`` or ``"nccl"`` (see the module docstring).
        device: the device this rank trains on; ``"auto"`` picks ``nccl`` for a CUDA device when
            every rank of a machine has a GPU of its own. Default: the default device.
        abort_on_exception: with more than one rank, an uncaught exception prints its traceback
            and aborts every rank of the job instead of leaving them waiting.

    Raises:
        ValueError: an unknown backend, ``"local"`` in a job of several processes, or a group that
            already exists.
        RuntimeError: the backend's library is missing (with the command that installs it).

    Example:
        >>> import tinynet.distributed as dist
        >>> dist.init_process_group("auto")      # under mpiexec -n 2: "mpi", 2 ranks
        >>> dist.get_rank(), dist.get_world_size()
    """
    global _group
    if backend not in BACKENDS:
        raise ValueError(f"init_process_group: unknown backend {backend!r}; use one of "
                         f"{', '.join(map(repr, BACKENDS))}")
    if _group is not None:
        raise ValueError(f"init_process_group: the process group already exists (backend "
                         f"{_group.name!r}); call destroy_process_group() first")
    launched = launcher_world_size()
    if backend == "local" and launched > 1:
        raise ValueError(f"init_process_group: backend 'local' is a single process, but the "
                         f"launcher started {launched}; use 'mpi', 'nccl' or 'auto'")
    if backend == "auto" and launched <= 1:
        backend = "local"
    if backend == "local":
        _group = LocalBackend()
    elif backend == "nccl":
        from .nccl import NCCLBackend  # noqa: PLC0415 - needs CuPy

        _group = NCCLBackend()
    else:
        host = MPIBackend()
        _group = host
        if backend == "auto" and _wants_nccl(device, host):
            from .nccl import NCCLBackend  # noqa: PLC0415

            _group = NCCLBackend(host)
    if abort_on_exception and _group.world_size > 1:
        _install_excepthook()


def _wants_nccl(device, host: MPIBackend) -> bool:
    """``auto`` on CUDA: NCCL when this machine has a GPU for each of its ranks."""
    device = Device(device) if device is not None else get_default_device()
    if device.type != "cuda" or not cuda_is_available():
        return False
    return cuda_device_count() >= host.local_world_size


def destroy_process_group() -> None:
    """Leave the process group (restoring the exception hook); a new one may be made after."""
    global _group
    if _group is None:
        return
    group, _group = _group, None
    _remove_excepthook()
    group.close()


def is_initialized() -> bool:
    """True between :func:`init_process_group` and :func:`destroy_process_group`."""
    return _group is not None


def default_group() -> Backend:
    """The default group's backend; a RuntimeError naming the fix when there is none."""
    if _group is None:
        raise RuntimeError("tinynet.distributed: the default process group has not been "
                           "initialized; call tn.distributed.init_process_group() first")
    return _group


def get_backend() -> str:
    """The backend's name: ``"local"``, ``"mpi"`` or ``"nccl"``."""
    return default_group().name


def get_rank() -> int:
    """This process's rank, ``0 .. world_size - 1``."""
    return default_group().rank


def get_world_size() -> int:
    """The number of processes in the group."""
    return default_group().world_size


def get_local_rank() -> int:
    """This process's rank among those of its machine (it picks the GPU: ``cuda:<local rank>``)."""
    return default_group().local_rank


def rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)``, or ``(0, 1)`` when no group exists: what code that runs both with
    and without a group (``fit``, ``tinynet train``) asks."""
    return (0, 1) if _group is None else (_group.rank, _group.world_size)


def barrier() -> None:
    """Wait until every rank has reached this call."""
    default_group().barrier()


def abort(code: int = 1):
    """End every rank of the job now, with exit status ``code`` (``MPI_Abort``)."""
    default_group().abort(code)


def seed_per_rank(seed: int) -> int:
    """Seed tinynet's default random stream differently on every rank, and return that seed.

    Call it *after* building the model (with ``tn.manual_seed(seed)`` on every rank, so initial
    weights agree): from then on each rank draws its own dropout masks and augmentations, as the
    different samples of one global batch would get in a single process. The rank's seed is
    derived from ``(seed, rank)`` with NumPy's ``SeedSequence``, so the streams are independent
    and a run is repeatable. Without a group, the rank is 0.
    """
    rank, _ = rank_and_size()
    sequence = host_namespace().random.SeedSequence([seed, rank])
    rank_seed = int(sequence.generate_state(1, dtype="uint64")[0] >> 1)  # a non-negative int64
    default_generator.manual_seed(rank_seed)
    return rank_seed


# --- an exception on one rank ends the job --------------------------------------------------------
def _abort_on_exception(kind, value, tb) -> None:
    # What was raised comes first, in one line: MPI_Abort may end the launcher before it has
    # forwarded all of this rank's stderr, and the traceback after it is the part that can be cut.
    rank, size = rank_and_size()
    message = str(value).splitlines()[0] if str(value) else ""
    raised = f"{kind.__name__}: {message}" if message else kind.__name__
    sys.stderr.write(f"tinynet.distributed: rank {rank} of {size} raised {raised}; aborting the "
                     "job\n")
    sys.stderr.flush()
    (_previous_excepthook or sys.__excepthook__)(kind, value, tb)
    sys.stderr.flush()
    if _group is not None:
        _group.abort(130 if issubclass(kind, KeyboardInterrupt) else 1)


def _install_excepthook() -> None:
    global _previous_excepthook
    if sys.excepthook is not _abort_on_exception:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception


def _remove_excepthook() -> None:
    global _previous_excepthook
    if sys.excepthook is _abort_on_exception:
        sys.excepthook = _previous_excepthook or sys.__excepthook__
    _previous_excepthook = None
