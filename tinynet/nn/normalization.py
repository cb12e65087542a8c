"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``, over the functions
``batch_norm`` and ``layer_norm`` (also in ``tn.nn.functional``).

Both functions run primitives with their backward written out (``tinynet/ops/normalization.py``:
``LayerNorm``, ``BatchNorm`` with the batch statistics, ``BatchNormEval`` with given ones; the
derivatives are in those classes' docstrings and in docs/nn.md). BatchNorm follows PyTorch
exactly: in training mode it normalises with the batch's biased variance and folds the *unbiased*
variance into the running estimate (here, outside the primitive); in eval mode it uses the running
statistics. Parameter and buffer names (and so state-dict keys) are PyTorch's: ``weight``,
``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``.

Read next: ``activation.py``, ``layers.py``.
"""

from __future__ import annotations

from ..autograd import no_grad
from ..creation import empty, ones, tensor, zeros
from ..ops.normalization import batch_norm_eval, batch_norm_train, layer_norm
from ..tensor import Tensor
from . import init
from .arguments import integer, number
from .module import Module, Parameter


# --- batch norm --------------------------------------------------------------------------------
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dimension 1) of ``input`` ``(N, C, *)`` over all other dimensions.

    With ``training=True`` the batch statistics are used, and the running statistics (if given)
    are updated in place: ``running = (1 - momentum) * running + momentum * batch``, with the
    unbiased batch variance. With ``training=False`` the running statistics are used.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    Example:
        >>> y = tn.nn.functional.batch_norm(tn.randn(8, 3), None, None, training=True)
    """
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when "
                             "training=False")
        return batch_norm_eval(input, running_mean, running_var, weight, bias, eps)
    if input.ndim >= 2:
        for name, t in (("running_mean", running_mean), ("running_var", running_var)):
            if t is not None and tuple(t.shape) != (input.shape[1],):
                raise ValueError(f"batch_norm: {name} has shape {tuple(t.shape)}, expected "
                                 f"({input.shape[1]},) for an input with {input.shape[1]} "
                                 "channels")
    if running_mean is None and running_var is None:
        return batch_norm_train(input, weight, bias, eps)
    out, mean, var = batch_norm_train(input, weight, bias, eps, return_stats=True)
    _update_running_stats(running_mean, running_var, mean, var, input.numel() // input.shape[1],
                          momentum)
    return out


def _update_running_stats(running_mean, running_var, mean, var, count, momentum) -> None:
    """Exponential moving averages, in place, outside the graph (the buffers are not trained):
    ``running = (1 - momentum) * running + momentum * batch``, with the batch's ``(C,)`` mean and
    its biased variance ``var`` turned into PyTorch's unbiased estimate, ``count / (count - 1) *
    var`` (``count``: values per channel, a number or a device array). Two array calls each."""
    with no_grad():
        if running_mean is not None:
            batch_mean = _raw(mean, running_mean.dtype)
            running_mean.data *= 1 - momentum
            running_mean.data += batch_mean * momentum
        if running_var is not None:
            batch_var = _raw(var, running_var.dtype)
            running_var.data *= 1 - momentum
            running_var.data += batch_var * (momentum * count / (count - 1))


def _raw(t, dtype):
    """The ``(C,)`` array behind ``t``, in ``dtype`` (copied only when the dtype differs)."""
    data = t.detach().reshape(-1).data
    return data if data.dtype == dtype else data.astype(dtype)


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d (they differ only in the input shapes they accept)."""

    _expected_dims: tuple[int, ...] = ()
    # The function that normalises (SyncBatchNorm swaps in one that reduces across processes).
    _batch_norm = staticmethod(batch_norm)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.num_features = integer(name, "num_features", num_features, minimum=1)
        self.eps = number(name, "eps", eps, 0.0)
        self.momentum = None if momentum is None else number(name, "momentum", momentum, 0.0, 1.0)
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(empty(num_features, dtype=dtype, device=device))
            self.bias = Parameter(empty(num_features, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, device=device))  # int64, 0-d
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, input: Tensor) -> None:
        if input.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__}: expected {dims} input, got {input.ndim}D "
                             f"input of shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels "
                             f"(dimension 1), got input of shape {tuple(input.shape)}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.data[...] = self.num_batches_tracked.data + 1
            if self.momentum is None:  # cumulative moving average over all batches seen
                factor = 1.0 / float(self.num_batches_tracked.item())
        # Batch statistics in training, and always when no running statistics are kept.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return self._batch_norm(input, self.running_mean if keep else None,
                                self.running_var if keep else None, self.weight, self.bias,
                                use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over ``(N, C)`` or ``(N, C, L)`` inputs (Ioffe & Szegedy, 2015).

    Args:
        num_features: ``C``.
        eps: added to the variance for stability.
        momentum: weight of the new batch in the running statistics; ``None`` for a cumulative
            average (each batch weighted equally).
        affine: learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).
        track_running_stats: keep running statistics for eval mode; without them, batch
            statistics are used in both modes.

    Example:
        >>> bn = tn.nn.BatchNorm1d(3)
        >>> bn(tn.randn(8, 3)).shape
        (8, 3)
    """

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over ``(N, C, H, W)`` inputs, per channel (arguments as BatchNorm1d).

    Example:
        >>> bn = tn.nn.BatchNorm2d(16)
        >>> bn(tn.randn(4, 16, 8, 8)).shape
        (4, 16, 8, 8)
    """

    _expected_dims = (4,)


# --- layer norm --------------------------------------------------------------------------------
def _as_shape(normalized_shape, owner: str = "layer_norm") -> tuple[int, ...]:
    sizes = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return tuple(integer(owner, "normalized_shape", s, minimum=1) for s in sizes)


class LayerNorm(Module):
    """Layer normalization (Ba et al., 2016) over the trailing ``normalized_shape`` dimensions.

    Args:
        normalized_shape: an int or a tuple: the trailing dimensions to normalise over.
        eps: added to the variance for stability.
        elementwise_affine: learn ``weight`` (init 1) and ``bias`` (init 0) of that shape.
        bias: with ``elementwise_affine``, whether to learn the bias too.

    Example:
        >>> ln = tn.nn.LayerNorm(8)
        >>> ln(tn.randn(2, 5, 8)).shape
        (2, 5, 8)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape, "LayerNorm")
        self.eps = number("LayerNorm", "eps", eps, 0.0)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(self.normalized_shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(zeros(self.normalized_shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "batch_norm", "layer_norm"]
