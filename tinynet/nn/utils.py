"""Gradient clipping (``tn.nn.utils``): ``clip_grad_norm_`` and ``clip_grad_value_``, as in
``torch.nn.utils``. Called between ``loss.backward()`` and ``optimizer.step()``; both change the
``.grad`` arrays in place through the device's ``xp``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..tensor import Tensor


def _grads(parameters: Tensor | Iterable[Tensor]) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _vector_norm(xp, a, norm_type: float):
    """The ``norm_type``-norm of all elements of ``a`` as a 0-d array (torch.linalg.vector_norm)."""
    if norm_type == math.inf:
        return xp.max(xp.abs(a)) if a.size else xp.zeros((), dtype=a.dtype)
    if norm_type == -math.inf:
        return xp.min(xp.abs(a))
    if norm_type == 0:
        return xp.asarray(xp.count_nonzero(a), dtype=a.dtype)
    if norm_type == 2:
        return xp.sqrt(xp.sum(a * a))
    if norm_type == 1:
        return xp.sum(xp.abs(a))
    return xp.sum(xp.abs(a) ** norm_type) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm is at most ``max_norm``, in place.

    The total norm is the ``norm_type``-norm of the vector of every gradient element (computed as
    the norm of the per-gradient norms; ``float('inf')`` gives the largest absolute element). Each
    gradient is multiplied by ``min(1, max_norm / (total_norm + 1e-6))``, as PyTorch does, so
    gradients already within the bound are (almost exactly) unchanged and the direction is kept.
    Clipping by norm is the remedy for exploding gradients of Pascanu, Mikolov & Bengio, "On the
    difficulty of training recurrent neural networks", ICML 2013.

    Args:
        parameters: a tensor or an iterable of tensors; those without ``.grad`` are skipped.
        max_norm: the largest allowed total norm.
        norm_type: the p of the p-norm (``float('inf')`` for the max norm).
        error_if_nonfinite: raise if the total norm is NaN or infinite (otherwise the gradients
            are scaled by a NaN/zero factor, as PyTorch does).

    Returns:
        The total norm of the gradients before clipping, a 0-d tensor on their device.

    Example:
        >>> loss.backward()
        >>> tn.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        >>> opt.step()
    """
    grads = _grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return Tensor(0.0)
    device = grads[0].device
    for g in grads:
        if g.device is not device:
            raise RuntimeError(f"clip_grad_norm_: gradients on {device} and {g.device}; move the "
                               "model to one device")
    xp = device.xp
    norms = xp.stack([_vector_norm(xp, g.data, norm_type) for g in grads])  # (n_params,)
    total = _vector_norm(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           "is non-finite, so it cannot be clipped. To disable this error and "
                           "scale the gradients by the non-finite norm anyway, set "
                           "`error_if_nonfinite=False`")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)  # 0-d: stays on the device, no sync
    for g in grads:
        arr = g.data
        arr *= coef.astype(arr.dtype)
    return Tensor.wrap(xp.asarray(total), device)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place.

    Example:
        >>> tn.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g.device.xp.clip(g.data, -clip_value, clip_value, out=g.data)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
