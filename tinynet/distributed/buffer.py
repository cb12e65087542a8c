"""The flat gradient buffer: many parameters' gradients averaged with a few big all-reduces.

Why flat: an all-reduce costs a fixed latency (microseconds on one machine, tens of microseconds
across a network) plus the bytes over the bandwidth. Six separate all-reduces for the six tensors
of a 784-256-128-10 MLP pay the latency six times; one over a flat array of all 235,146 values
pays it once (and MPI and NCCL reach their full bandwidth only on large messages).

Layout: the parameters, in *reverse* order (backward produces the last layer's gradients first),
are cut into buckets of at most ``bucket_cap_mb`` megabytes, each of one device and dtype. A bucket
is one flat array::

    [ grad of p_k (flattened) | grad of p_k+1 | ... | one presence flag per parameter ]

A flag is 1 where this rank has a gradient for the parameter and 0 where it has none (a layer its
batch did not use). After the sum over ranks, a parameter no rank had a gradient for keeps
``grad = None``, so the optimizer skips it as it would in one process. The flags are read back to
the host only on a rank that missed a gradient (a rank that had them all knows every count is
positive), so a GPU step has no extra synchronisation.

After the reduction each parameter's ``.grad`` is a view of its slice of the bucket: no copy back.
A later backward into that same ``.grad`` (``zero_grad(set_to_none=False)``) accumulates in the
bucket itself, which the next packing recognises and leaves in place.

Overlap (``mark_ready``/``finish``): gradient hooks put each gradient in its slot as backward
produces it and start a bucket's all-reduce as soon as its last gradient is in, so communication
runs while backward still computes the earlier layers.
"""

from __future__ import annotations

from ..backend import Device
from ..tensor import Tensor
from .backends import Backend
from .collectives import _sendable

DEFAULT_BUCKET_CAP_MB = 25.0  # PyTorch DDP's default


class Bucket:
    """One flat array: the gradients of ``params`` (``views[i]`` each), then one flag each."""

    __slots__ = ("device", "dtype", "flags", "flat", "grads", "missing", "params", "pending",
                 "ready", "views")

    def __init__(self, params: list):
        self.params = params
        self.device: Device = params[0].device
        self.dtype = params[0].dtype
        sizes = [p._data.size for p in params]
        total = sum(sizes)
        self.flat = self.device.xp.zeros(total + len(params), dtype=self.dtype)  # (N + P,)
        self.views, start = [], 0
        for p, size in zip(params, sizes):
            self.views.append(self.flat[start:start + size].reshape(p.shape))
            start += size
        self.grads = self.flat[:total]  # (N,) the gradient part
        self.flags = self.flat[total:]  # (P,) presence flags; counts after the sum
        self.ready = 0  # gradients the hooks have put in this step (overlap)
        self.missing = False  # this rank lacks a gradient of some parameter this step
        self.pending = None  # (request, write_back) of the started all-reduce

    def put(self, i: int, grad) -> None:
        """Slot ``i`` := ``grad`` (a raw array, or None for no gradient)."""
        view = self.views[i]
        if grad is None:
            view[...] = 0
            self.flags[i] = 0
            self.missing = True
            return
        if grad is not view:  # else: accumulated into the bucket's own view already
            view[...] = grad
        self.flags[i] = 1

    def pack(self) -> None:
        """Every parameter's current ``.grad`` (zeros where it has none) into the flat array."""
        grads = [None if p.grad is None else p.grad._data for p in self.params]
        if all(g is not None and g is not v for g, v in zip(grads, self.views)):
            self.device.xp.concatenate([g.reshape(-1) for g in grads], out=self.grads)
            self.flags[...] = 1
            return
        for i, g in enumerate(grads):
            self.put(i, g)

    def unpack(self, world_size: int) -> None:
        """Divide the summed gradients by the world size; point each ``.grad`` at its view."""
        self.grads /= self.grads.dtype.type(world_size)
        # Only a rank that missed a gradient needs the counts (one small read-back).
        counts = self.flags.tolist() if self.missing else [1] * len(self.params)
        for p, view, count in zip(self.params, self.views, counts):
            p.grad = Tensor._make(view, self.device) if count > 0 else None
        self.flags[...] = 0  # the hooks of the next step set theirs
        self.ready, self.missing, self.pending = 0, False, None


class GradientBuckets:
    """The gradients of ``params`` in flat buckets, averaged over the ranks of a group.

    Args:
        params: the parameters, in model order (those without ``requires_grad`` are left out).
        bucket_cap_mb: the most megabytes of gradients per bucket (a larger tensor gets a bucket
            of its own); ``math.inf``: one flat buffer per device and dtype.

    Example:
        >>> buckets = GradientBuckets(list(model.parameters()))
        >>> loss.backward(); buckets.average(dist.default_group())  # each .grad is now the mean
    """

    def __init__(self, params, bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB):
        if isinstance(bucket_cap_mb, bool) or not bucket_cap_mb > 0:
            raise ValueError(f"GradientBuckets: bucket_cap_mb must be a positive number of "
                             f"megabytes, got {bucket_cap_mb!r}")
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("GradientBuckets: no parameter requires a gradient")
        cap = bucket_cap_mb * 2**20
        self.buckets: list[Bucket] = []
        self._slot: dict[int, tuple[Bucket, int]] = {}  # id(param) -> (its bucket, index)
        current: list = []
        size = 0
        for p in reversed(params):  # backward's order: last layer first
            nbytes = p._data.size * p.dtype.itemsize
            other_kind = current and (p.device is not current[0].device
                                      or p.dtype != current[0].dtype)
            if current and (other_kind or size + nbytes > cap):
                self._add(current)
                current, size = [], 0
            current.append(p)
            size += nbytes
        self._add(current)

    def _add(self, params: list) -> None:
        bucket = Bucket(params)
        self.buckets.append(bucket)
        for i, p in enumerate(params):
            self._slot[id(p)] = (bucket, i)

    @property
    def numel(self) -> int:
        """Gradient values in all buckets (flags not counted)."""
        return sum(b.grads.size for b in self.buckets)

    def average(self, group: Backend) -> None:
        """Replace every ``.grad`` by the mean over the ranks: pack each bucket, start its
        all-reduce, then finish them all."""
        for bucket in self.buckets:
            bucket.pack()
            self._start(group, bucket)
        self.finish(group)

    def mark_ready(self, group: Backend, param: Tensor, grad) -> None:
        """Overlap: ``param``'s gradient from this backward (``grad``, a raw array; added to what
        its ``.grad`` already holds) goes into its slot, and the bucket's all-reduce starts once
        its last gradient is in."""
        bucket, i = self._slot[id(param)]
        view = bucket.views[i]
        held = None if param.grad is None else param.grad._data
        if held is None:
            bucket.put(i, grad)
        elif held is view:
            view += grad  # accumulating into the bucket itself
            bucket.flags[i] = 1
        else:
            bucket.device.xp.add(held, grad, out=view)
            bucket.flags[i] = 1
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            self._start(group, bucket)

    def finish(self, group: Backend) -> None:
        """Start the buckets not started yet (with the gradients the parameters hold: some had
        no hook call this step), wait for every all-reduce, and unpack."""
        for bucket in self.buckets:
            if bucket.pending is None:
                if bucket.ready == 0:
                    bucket.pack()
                else:  # partly filled by hooks: the rest from .grad
                    hooked = bucket.flags.tolist()
                    for i, p in enumerate(bucket.params):
                        if not hooked[i]:
                            bucket.put(i, None if p.grad is None else p.grad._data)
                self._start(group, bucket)
        for bucket in self.buckets:
            request, write_back = bucket.pending
            request.wait()
            write_back()
            bucket.unpack(group.world_size)

    def _start(self, group: Backend, bucket: Bucket) -> None:
        send, write_back = _sendable(group, bucket.flat, bucket.device)
        bucket.pending = (group.iallreduce_(send, "sum"), write_back)
