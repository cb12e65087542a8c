"""Transports of a process group: ``local`` (one process, no dependency) and ``mpi`` (mpi4py).

A backend moves raw arrays between the processes ("ranks") of one job; everything above it
(``collectives.py``) works on Tensors and picks how an array reaches the backend. Each backend is
one class with the same methods, so the differences live here and nowhere else:

* ``allreduce_(array, op)`` / ``iallreduce_(array, op) -> request``: in place, every rank ends with
  the element-wise sum (or max) over all ranks. ``request.wait()`` completes the nonblocking one.
* ``broadcast_(array, src)``: in place, every rank ends with rank ``src``'s values.
* ``broadcast_object(obj, src)``, ``all_gather_object(obj)``: small Python values (pickled between
  the processes of one job, as mpi4py and PyTorch do; never used for files).
* ``barrier()``, ``abort(code)`` (end every rank of the job now), ``close()``.

``accepts(device)`` says which arrays a backend takes as they are: MPI takes host NumPy arrays
(the MPICH and Open MPI wheels are not CUDA-aware), so device arrays are staged through the host
by the caller. The NCCL backend (``nccl.py``) takes CUDA arrays.

Which launcher started us is read from its environment (:func:`launcher_world_size`): MPICH and
Intel MPI set ``PMI_SIZE``, Open MPI ``OMPI_COMM_WORLD_SIZE``, MVAPICH ``MV2_COMM_WORLD_SIZE``.
"""

from __future__ import annotations

import os
import sys

from ..backend import Device

# Environment variables by which MPI launchers (mpiexec/mpirun/srun --mpi) announce a job's size.
LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
MPI_INSTALL_HINT = ('install the dist extra: pip install "tinynet[dist]" (mpi4py and the MPICH '
                    'wheel; Open MPI works too)')
REDUCE_OPS = ("sum", "avg", "max")


def launcher_world_size() -> int:
    """The number of processes an MPI launcher started (1 when none did)."""
    for name in LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class _Done:
    """The request of an operation that has already completed."""

    def wait(self) -> None:
        return None


class Backend:
    """What every backend provides (see the module docstring)."""

    name = "?"
    rank = 0
    world_size = 1
    local_rank = 0  # rank among the processes of this machine
    local_world_size = 1

    def accepts(self, device: Device) -> bool:
        raise NotImplementedError

    def allreduce_(self, array, op: str) -> None:
        raise NotImplementedError

    def iallreduce_(self, array, op: str):
        self.allreduce_(array, op)
        return _Done()

    def broadcast_(self, array, src: int) -> None:
        raise NotImplementedError

    def broadcast_object(self, obj, src: int):
        raise NotImplementedError

    def all_gather_object(self, obj) -> list:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, code: int = 1):
        raise NotImplementedError

    def close(self) -> None:
        return None


class LocalBackend(Backend):
    """World size 1: every collective is the identity. Needs nothing; what tests without MPI use,
    and what a script written for many ranks runs on when started as one plain process."""

    name = "local"

    def accepts(self, device: Device) -> bool:
        return True  # any device: nothing moves

    def allreduce_(self, array, op: str) -> None:
        return None  # the sum, mean or max over one rank is the array itself

    def broadcast_(self, array, src: int) -> None:
        return None

    def broadcast_object(self, obj, src: int):
        return obj

    def all_gather_object(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        return None

    def abort(self, code: int = 1):
        sys.stderr.flush()
        os._exit(code)


def import_mpi():
    """mpi4py's ``MPI`` module, or a RuntimeError that says how to install it."""
    try:
        from mpi4py import MPI  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise RuntimeError(f"backend 'mpi' needs mpi4py and an MPI library: {MPI_INSTALL_HINT}"
                           f" ({exc})") from exc
    return MPI


class MPIBackend(Backend):
    """MPI through mpi4py, on host NumPy arrays, over a private duplicate of ``COMM_WORLD`` (so a
    user's own messages on ``COMM_WORLD`` can never be mistaken for ours)."""

    name = "mpi"

    def __init__(self):
        MPI = import_mpi()
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        # Ranks sharing this machine's memory: the local rank picks a GPU (one per rank).
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_world_size = local.Get_rank(), local.Get_size()
        local.Free()
        self._ops = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX}

    def accepts(self, device: Device) -> bool:
        return device.type == "cpu"

    def _check(self, array) -> None:
        if type(array) is not Device("cpu").array_type or not array.flags.c_contiguous:
            raise TypeError("backend 'mpi' works on C-contiguous host NumPy arrays, got "
                            f"{type(array).__name__}")

    def allreduce_(self, array, op: str) -> None:
        self._check(array)
        self.comm.Allreduce(self._mpi.IN_PLACE, array, op=self._ops[op])

    def iallreduce_(self, array, op: str):
        self._check(array)
        return self.comm.Iallreduce(self._mpi.IN_PLACE, array, op=self._ops[op])

    def broadcast_(self, array, src: int) -> None:
        self._check(array)
        self.comm.Bcast(array, root=src)

    def broadcast_object(self, obj, src: int):
        return self.comm.bcast(obj, root=src)

    def all_gather_object(self, obj) -> list:
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1):
        sys.stdout.flush()
        sys.stderr.flush()
        self._mpi.COMM_WORLD.Abort(code)

    def close(self) -> None:
        if not self._mpi.Is_finalized():
            self.comm.Free()
