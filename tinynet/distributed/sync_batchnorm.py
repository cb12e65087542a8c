"""``SyncBatchNorm``: batch normalisation over the *global* batch of all ranks.

Why: BatchNorm in training normalises with the mean and variance of the batch it sees. In a
data-parallel job each rank sees only its ``b`` of the ``B = W * b`` samples, so plain BatchNorm
would normalise with per-rank statistics (a different function than one process computes on the
global batch) and each rank would keep running statistics of its own shard: the ranks' models
would drift apart in eval mode. SyncBatchNorm sums the statistics over the ranks, so every rank
normalises with the global batch's mean and variance and updates identical running statistics:
the forward, the gradients and the buffers are those of one process on ``B`` samples.

That is tinynet's choice for keeping BatchNorm consistent across ranks (rather than averaging the
running buffers now and then): training then computes exactly what a single process computes,
which is what a data-parallel run should do, at the cost of two small all-reduces per BatchNorm
layer in forward (the channel sums, then the channel sums of squared deviations: a two-pass
variance, as precise as one process's) and two in backward.

The sums go through the differentiable all-reduce of ``functional.py``, so the gradients of the
statistics flow back to every rank's activations.
"""

from __future__ import annotations

from ..creation import tensor
from ..nn.normalization import _BatchNorm, _update_running_stats, batch_norm
from ..ops import cat
from ..tensor import Tensor
from .functional import all_reduce
from .group import rank_and_size


def sync_batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None = None, bias: Tensor | None = None,
                    training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``batch_norm`` with the batch statistics of all ranks' batches together (same arguments).

    Outside training, or with one rank, it is ``batch_norm`` itself.
    """
    _, world = rank_and_size()
    if not training or world == 1:
        return batch_norm(input, running_mean, running_var, weight, bias, training, momentum,
                          eps)
    if input.ndim < 2:
        raise ValueError(f"sync_batch_norm: input needs a channel dimension, shape (N, C, *), "
                         f"got {tuple(input.shape)}")
    channels = input.shape[1]
    axes = (0,) + tuple(range(2, input.ndim))
    stat_shape = (1, channels) + (1,) * (input.ndim - 2)  # (1, C, 1, ...)
    local_count = tensor([float(input.numel() // channels)], dtype=input.dtype,
                         device=input.device)
    # Pass 1: the channel sums and the sample count, summed over ranks in one all-reduce.
    totals = all_reduce(cat([input.sum(axes), local_count]))  # (C + 1,)
    count = totals[channels]  # N, the global number of values per channel (stays on the device)
    mean = totals[:channels] / count  # (C,)
    centered = input - mean.reshape(stat_shape)
    # Pass 2: the channel sums of squared deviations (two passes: no E[x^2] - E[x]^2 cancellation).
    var = all_reduce((centered * centered).sum(axes)) / count  # (C,) biased
    if running_mean is not None or running_var is not None:
        # The count stays a device array: N / (N - 1) is computed there, without a read-back.
        _update_running_stats(running_mean, running_var, mean, var, count.detach().data,
                              momentum)
    # Normalise with the global statistics: batch_norm in eval form (the BatchNormEval primitive),
    # given them as its statistics. They are graph tensors: its backward returns their gradients
    # too, which flow through the all-reduces to every rank.
    return batch_norm(input, mean, var, weight, bias, training=False, eps=eps)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over ``(N, C, *)`` whose training statistics are those of all ranks' batches.

    Same arguments, parameters, buffers and state-dict keys as ``BatchNorm1d``/``BatchNorm2d``
    (a checkpoint moves freely between them). In eval mode, or with one rank, it is BatchNorm.
    Every rank must call it the same number of times (it communicates in forward and backward).

    Example:
        >>> model = dist.SyncBatchNorm.convert_sync_batchnorm(tn.models.cnn())
    """

    _expected_dims = (2, 3, 4, 5)
    _batch_norm = staticmethod(sync_batch_norm)

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """Replace every ``BatchNorm1d``/``BatchNorm2d`` in ``module`` by a ``SyncBatchNorm`` that
        holds the same parameter and buffer objects (an optimizer made before still holds them).
        Returns the module (a new one when ``module`` itself is a BatchNorm)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            return cls._from(module)
        for parent in module.modules():
            for name, child in list(parent._modules.items()):
                if isinstance(child, _BatchNorm) and not isinstance(child, cls):
                    parent._modules[name] = cls._from(child)
        return module

    @classmethod
    def _from(cls, bn: _BatchNorm) -> SyncBatchNorm:
        sync = cls.__new__(cls)
        sync.__dict__.update(bn.__dict__)  # the same settings, parameter and buffer dicts
        return sync
