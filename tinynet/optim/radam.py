"""RAdam (``torch.optim.RAdam``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer
from .shared import adam_moments, check_adam_like, check_flags, effective_gradient


class RAdam(Optimizer):
    """RAdam, Adam with the variance of its adaptive learning rate rectified: Liu, Jiang, He, Chen,
    Liu, Gao & Han, "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020
    (arXiv:1908.03265).

    The update is PyTorch's, step ``t`` (counted per parameter) with gradient ``g``::

        g <- -g                                      if maximize
        g <- g + weight_decay * p   (L2), or  p <- p * (1 - lr * weight_decay)  if decoupled
        m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)          length of the approximated SMA
        if rho_t > 5:
            r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p <- p - lr * m / (1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        else:
            p <- p - lr * m / (1 - beta1^t)                     (SGD with momentum)

    In the first steps the second moment is estimated from too few gradients for its inverse
    square root to have a bounded variance (rho_t <= 4), so the update is plain momentum until
    ``rho_t`` passes 5 (PyTorch's threshold; the paper's is 4), then rectified by ``r``
    (section 4 of the paper). With the default betas that is from step 6 on.

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: weight decay coefficient.
        decoupled_weight_decay: decay the weights directly (AdamW's way) instead of adding an
            L2 penalty to the gradient.
        foreach, capturable: accepted, no effect (see ``shared.py``).
        maximize: ascend the objective instead of descending it.
        differentiable: must be False.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> opt = tn.optim.RAdam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        check_flags("RAdam", foreach, capturable, differentiable)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_adam_like(group)

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("exp_avg", "exp_avg_sq")

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        m, v = adam_moments(arrays, effective_gradient(w, g, group), group["betas"])
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bias_correction2
        update = m / (1 - beta1**step) * lr  # the bias-corrected momentum step
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            denom = xp.sqrt(v)
            denom += eps
            update *= bias_correction2**0.5 / denom
            update *= rect
        w -= update
