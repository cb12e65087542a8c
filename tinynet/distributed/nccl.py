"""The ``nccl`` backend: NCCL through CuPy (``cupy.cuda.nccl``) for CUDA arrays, MPI for the rest.

NCCL moves GPU memory between GPUs directly (NVLink, PCIe, InfiniBand), without a copy through
the host. It has no launcher and no object messages of its own, so this backend stands on an
:class:`~tinynet.distributed.backends.MPIBackend`: MPI starts the ranks, carries NCCL's unique id
from rank 0 to the others, and serves host arrays, Python objects and barriers.

NCCL's rule: **one rank per GPU**. Two ranks on one device make ``ncclCommInitRank`` fail
("Duplicate GPU detected"), so this backend checks first and says what to do instead (more GPUs,
fewer ranks per machine, or ``backend="mpi"``, which stages device arrays through the host and
works with any number of ranks per GPU). Rank ``r`` of a machine uses ``cuda:r`` (its local rank).

A collective is enqueued on the current CuPy stream and returns at once: later kernels on that
stream see its result, and reading a result on the host waits for it, as for any CuPy array.

Written against CuPy's documented API (``NcclCommunicator(ndev, commId, rank)``, ``allReduce``,
``bcast`` with device pointers and a stream); see docs/distributed.md for what has run on a GPU.
"""

from __future__ import annotations

from ..backend import CUPY_INSTALL_HINT, Device
from .backends import Backend, MPIBackend, _Done


def _nccl_modules():
    try:
        import cupy  # noqa: PLC0415 - optional extra
        from cupy.cuda import nccl  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(f"backend 'nccl' needs CuPy built with NCCL: {CUPY_INSTALL_HINT} "
                           f"({exc})") from exc
    if not getattr(nccl, "available", True):
        raise RuntimeError("backend 'nccl': this CuPy has no NCCL (pip install nvidia-nccl-cu12, "
                           "or use backend='mpi', which stages GPU arrays through the host)")
    return cupy, nccl


class NCCLBackend(Backend):
    """NCCL for arrays on this rank's GPU; MPI (host staging) for everything else."""

    name = "nccl"

    def __init__(self, host: MPIBackend | None = None):
        cupy, nccl = _nccl_modules()  # before MPI starts: a missing CuPy is a one-line error
        self.host = host or MPIBackend()  # bootstrap, objects, barriers, host arrays
        self.rank, self.world_size = self.host.rank, self.host.world_size
        self.local_rank, self.local_world_size = self.host.local_rank, self.host.local_world_size
        gpus = cupy.cuda.runtime.getDeviceCount()
        if self.local_world_size > gpus:
            raise RuntimeError(
                f"backend 'nccl' needs one GPU per rank: {self.local_world_size} ranks on this "
                f"machine, {gpus} GPU(s). NCCL refuses two ranks on one device; start at most "
                f"{gpus} rank(s) per machine, or use backend='mpi' (host staging)")
        self._cupy, self._nccl = cupy, nccl
        self.device = Device("cuda", self.local_rank)
        cupy.cuda.Device(self.local_rank).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.host.broadcast_object(uid, 0)
        self.comm = nccl.NcclCommunicator(self.world_size, uid, self.rank)
        self._dtypes = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                        "float64": nccl.NCCL_FLOAT64, "int8": nccl.NCCL_INT8,
                        "uint8": nccl.NCCL_UINT8, "int32": nccl.NCCL_INT32,
                        "uint32": nccl.NCCL_UINT32, "int64": nccl.NCCL_INT64,
                        "uint64": nccl.NCCL_UINT64}
        # "avg" is a sum here; the caller divides (NCCL_AVG needs NCCL >= 2.10).
        self._ops = {"sum": nccl.NCCL_SUM, "avg": nccl.NCCL_SUM, "max": nccl.NCCL_MAX}

    def accepts(self, device: Device) -> bool:
        return device is self.device

    def _on_gpu(self, array) -> bool:
        if not isinstance(array, self._cupy.ndarray):
            return False
        if array.device.id != self.device.index:
            raise RuntimeError(f"backend 'nccl': rank {self.rank} communicates from "
                               f"{self.device}, got an array on cuda:{array.device.id}")
        if not array.flags.c_contiguous:
            raise TypeError("backend 'nccl' works on C-contiguous arrays")
        return True

    def _dtype(self, array) -> int:
        code = self._dtypes.get(array.dtype.name)
        if code is None:
            raise TypeError(f"backend 'nccl': no NCCL type for dtype {array.dtype}")
        return code

    def _stream(self) -> int:
        return self._cupy.cuda.get_current_stream().ptr

    def allreduce_(self, array, op: str) -> None:
        if not self._on_gpu(array):
            return self.host.allreduce_(array, op)
        ptr = array.data.ptr
        self.comm.allReduce(ptr, ptr, array.size, self._dtype(array), self._ops[op],
                            self._stream())
        return None

    def iallreduce_(self, array, op: str):
        if not self._on_gpu(array):
            return self.host.iallreduce_(array, op)
        self.allreduce_(array, op)  # enqueued on the stream: already asynchronous to the host
        return _Done()

    def broadcast_(self, array, src: int) -> None:
        if not self._on_gpu(array):
            return self.host.broadcast_(array, src)
        self.comm.bcast(array.data.ptr, array.size, self._dtype(array), src, self._stream())
        return None

    def broadcast_object(self, obj, src: int):
        return self.host.broadcast_object(obj, src)

    def all_gather_object(self, obj) -> list:
        return self.host.all_gather_object(obj)

    def barrier(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()
        self.host.barrier()

    def abort(self, code: int = 1):
        try:
            self.comm.abort()
        finally:
            self.host.abort(code)

    def close(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()
        self.comm.destroy()
        self.host.close()
