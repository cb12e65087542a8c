"""The normalisation functions composed from smaller primitives: the reference the explicit ones
are tested against.

``tn.nn.functional.layer_norm`` and ``batch_norm`` run the primitives of
``tinynet/ops/normalization.py`` (``LayerNorm``, ``BatchNorm``, ``BatchNormEval``), whose backward
is written out by hand. These are the same functions built from mean, subtract, multiply and
power, so their gradients (and gradients of gradients) come from those ops' backwards alone:
``tests/test_normalization.py`` checks that both give the same values, the same gradients and the
same second derivatives, and ``benchmarks/norm.py`` times one against the other. Same arguments
and the same running-statistics rule as ``tn.nn.functional``.
"""

from __future__ import annotations

import tinynet as tn
from tinynet.tensor import Tensor


def composed_batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                        weight: Tensor | None = None, bias: Tensor | None = None,
                        training: bool = False, momentum: float = 0.1,
                        eps: float = 1e-5) -> Tensor:
    """``tn.nn.functional.batch_norm`` from mean/sub/mul/pow (PyTorch's rules: biased variance
    to normalise, the unbiased one folded into ``running_var``)."""
    channels = input.shape[1]
    stat_shape = (1, channels) + (1,) * (input.ndim - 2)  # (1, C, 1, ...) broadcasts over x
    if training:
        axes = (0,) + tuple(range(2, input.ndim))
        count = input.numel() // channels
        mean = input.mean(axes, keepdims=True)  # (1, C, 1, ...)
        centered = input - mean
        var = (centered * centered).mean(axes, keepdims=True)  # biased, for normalising
        with tn.no_grad():
            if running_mean is not None:
                batch_mean = mean.detach().reshape(-1).data.astype(running_mean.dtype)
                running_mean.data[...] = ((1 - momentum) * running_mean.data
                                          + momentum * batch_mean)
            if running_var is not None:
                batch_var = var.detach().reshape(-1).data.astype(running_var.dtype)
                unbiased = batch_var * (count / (count - 1))
                running_var.data[...] = (1 - momentum) * running_var.data + momentum * unbiased
    else:
        centered = input - running_mean.reshape(stat_shape)
        var = running_var.reshape(stat_shape)
    out = centered * (var + eps) ** -0.5
    if weight is not None:
        out = out * weight.reshape(stat_shape)
    if bias is not None:
        out = out + bias.reshape(stat_shape)
    return out


def composed_layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
                        bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """``tn.nn.functional.layer_norm`` from mean/sub/mul/pow."""
    k = 1 if isinstance(normalized_shape, int) else len(tuple(normalized_shape))
    axes = tuple(range(input.ndim - k, input.ndim))
    mean = input.mean(axes, keepdims=True)  # (*, 1, ..., 1)
    centered = input - mean
    var = (centered * centered).mean(axes, keepdims=True)
    out = centered * (var + eps) ** -0.5
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


__all__ = ["composed_batch_norm", "composed_layer_norm"]
