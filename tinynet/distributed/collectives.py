"""Collectives on Tensors: ``all_reduce``, ``broadcast``; and on objects: ``broadcast_object``,
``all_gather_object``.

Every rank calls the same collective in the same order; each returns when this rank's part is
done. They work in place on the tensor's array (as ``torch.distributed`` does) and record no graph:
they are communication, not ops (the differentiable all-reduce SyncBatchNorm needs is in
``functional.py``).

How an array reaches the backend: when the backend takes the tensor's device as it is (MPI: host
NumPy arrays; NCCL: this rank's GPU) the array itself is sent, or a contiguous copy of it. Otherwise
(a CUDA tensor over MPI, the ``standin`` device) it is *staged*: copied to the host, reduced there,
copied back, with the one transfer function ``backend.transfer``. ``avg`` is a sum divided by the
world size on the tensor's device, so it needs a floating dtype.
"""

from __future__ import annotations

from ..backend import Device, transfer
from ..tensor import Tensor
from .backends import REDUCE_OPS, Backend
from .group import default_group

_CPU = Device("cpu")


def all_reduce(tensor: Tensor, op: str = "sum") -> None:
    """Replace ``tensor``'s values, on every rank, by their element-wise ``op`` over all ranks.

    Args:
        tensor: the same shape and dtype on every rank.
        op: ``"sum"``, ``"avg"`` (the mean; floating dtypes only) or ``"max"``.

    Example:
        >>> t = tn.tensor([float(dist.get_rank())])
        >>> dist.all_reduce(t, op="sum")     # 2 ranks: t is [1.0] on both
    """
    _check_tensor("all_reduce", tensor)
    if op not in REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(map(repr, REDUCE_OPS))}, "
                         f"got {op!r}")
    if op == "avg" and tensor.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='avg' needs a floating tensor, got {tensor.dtype} "
                        f"of shape {tuple(tensor.shape)}")
    reduce_array_(default_group(), tensor._data, tensor._device, op)


def broadcast(tensor: Tensor, src: int = 0) -> None:
    """Replace ``tensor``'s values, on every rank, by rank ``src``'s (same shape and dtype).

    Example:
        >>> w = tn.randn(3)                  # different on each rank
        >>> dist.broadcast(w, src=0)         # now rank 0's values everywhere
    """
    _check_tensor("broadcast", tensor)
    group = default_group()
    _check_src("broadcast", src, group)
    if group.world_size == 1:
        return  # one rank: it is its own source
    arr, device = tensor._data, tensor._device
    send, write_back = _sendable(group, arr, device)
    group.broadcast_(send, src)
    write_back()


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (the others' ``obj`` is ignored; pass ``None``).

    For small picklable values (a config, a seed, a state dict's scalars). Objects are pickled
    between the processes of this one job, which trust each other; files are never read this way.
    """
    group = default_group()
    _check_src("broadcast_object", src, group)
    return group.broadcast_object(obj, src)


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable values)."""
    return default_group().all_gather_object(obj)


# --- arrays -----------------------------------------------------------------------------------
def reduce_array_(group: Backend, arr, device: Device, op: str) -> None:
    """All-reduce a raw array in place, staging it through the host when the backend needs it."""
    if group.world_size == 1:
        return  # the sum, mean or max over one rank is the array itself
    send, write_back = _sendable(group, arr, device)
    group.allreduce_(send, op)
    write_back()
    if op == "avg":
        arr /= group.world_size  # on the array's device, through its own operators


def _sendable(group: Backend, arr, device: Device):
    """``(array the backend accepts, function that copies its result back into arr)``."""
    if group.accepts(device) and arr.flags.c_contiguous:
        return arr, _nothing
    if group.accepts(device):  # a strided view: communicate a contiguous copy
        send = arr.copy()
    else:  # staged: a host copy (the one transfer function of the backend)
        send = transfer(arr, device, _CPU)
        if send is arr or not send.flags.c_contiguous:
            send = send.copy()  # never hand the caller's own array to a transport

    def write_back():
        arr[...] = send if group.accepts(device) else transfer(send, _CPU, device)

    return send, write_back


def _nothing() -> None:
    return None


def _check_tensor(name: str, tensor) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(tensor).__name__}")


def _check_src(name: str, src, group: Backend) -> None:
    if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < group.world_size:
        raise ValueError(f"{name}: src={src!r} is not a rank of this {group.world_size}-process "
                         f"group (ranks 0..{group.world_size - 1})")
