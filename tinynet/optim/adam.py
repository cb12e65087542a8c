"""Adam and AdamW (``torch.optim.Adam``, ``torch.optim.AdamW``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..backend import kernels
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
    (arXiv:1412.6980); ``amsgrad=True`` is the variant of Reddi, Kale & Kumar, "On the Convergence
    of Adam and Beyond", ICLR 2018.

    The update is PyTorch's, step ``t`` (counted per parameter) with gradient ``g``::

        g <- -g                                     if maximize
        g <- g + weight_decay * p                   (L2 penalty; AdamW decays p instead)
        m <- beta1 * m + (1 - beta1) * g            first moment
        v <- beta2 * v + (1 - beta2) * g^2          second moment
        v_max <- max(v_max, v); use v_max for v     if amsgrad
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The bias corrections undo the zero initialisation of ``m`` and ``v`` (section 3 of the paper):
    without them the first steps would be ~(1 - beta1) times too short. ``eps`` is added after the
    square root of the bias-corrected second moment, as PyTorch does (the paper's ``eps-hat``
    variant differs slightly).

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient added to the gradient.
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: ascend the objective instead of descending it.
        decoupled_weight_decay: decay the weights directly, as AdamW (prefer ``AdamW``).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad,
    ``max_exp_avg_sq``.

    Example:
        >>> opt = tn.optim.Adam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        if group["lr"] < 0:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if group["eps"] < 0:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
        if group["weight_decay"] < 0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        keys = ("exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay = group["weight_decay"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                w *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * w
        m, v = arrays["exp_avg"], arrays["exp_avg_sq"]
        m += (1 - beta1) * (g - m)  # = beta1 * m + (1 - beta1) * g, PyTorch's lerp
        v *= beta2
        v += (1 - beta2) * g * g
        if group["amsgrad"]:
            v_max = arrays["max_exp_avg_sq"]
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        step_size = lr / (1 - beta1**step)
        denom = xp.sqrt(v)
        denom /= (1 - beta2**step) ** 0.5
        denom += eps
        w += -step_size * m / denom

    def _fused_step(self, xp, w, g, arrays, step, group) -> bool:
        """``_update`` as one kernel (``kernels.ADAM``, the same arithmetic in the same order);
        not for AMSGrad, nor for dtypes other than float32/float64."""
        if group["amsgrad"] or w.dtype.kind != "f" or w.dtype.itemsize < 4:
            return False
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, decoupled = group["weight_decay"], group["decoupled_weight_decay"]
        kernels.ADAM(xp, g, -(lr / (1 - beta1**step)), 1 - beta1, beta2, 1 - beta2,
                     (1 - beta2**step) ** 0.5, eps, 0.0 if decoupled else weight_decay,
                     1 - lr * weight_decay if decoupled else 1.0,
                     -1.0 if group["maximize"] else 1.0, w, arrays["exp_avg"],
                     arrays["exp_avg_sq"])
        return True


class AdamW(Adam):
    """Adam with decoupled weight decay: Loshchilov & Hutter, "Decoupled Weight Decay
    Regularization", ICLR 2019 (arXiv:1711.05101).

    Identical to :class:`Adam` except for the weight decay: instead of adding
    ``weight_decay * p`` to the gradient (which Adam's per-coordinate scaling then distorts), each
    step first shrinks the weights, ``p <- p * (1 - lr * weight_decay)``, as PyTorch does. The
    default ``weight_decay`` is 1e-2.

    Example:
        >>> opt = tn.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
