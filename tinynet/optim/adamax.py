"""Adamax (``torch.optim.Adamax``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer
from .shared import check_adam_like, check_flags, effective_gradient


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm, Kingma & Ba, "Adam: A Method for Stochastic
    Optimization", ICLR 2015 (arXiv:1412.6980), section 7.1.

    The update is PyTorch's, step ``t`` (counted per parameter) with gradient ``g``::

        g <- -g                                      if maximize
        g <- g + weight_decay * p                    (L2 penalty)
        m <- beta1 * m + (1 - beta1) * g             first moment
        u <- max(beta2 * u, |g| + eps)               exponentially weighted infinity norm
        p <- p - lr / (1 - beta1^t) * m / u

    The second moment of Adam becomes a running maximum, which needs no bias correction (it is
    not biased towards zero); ``eps`` is added to ``|g|`` inside the maximum, as PyTorch does.

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        betas: decay rates of the first moment and of the infinity norm.
        eps: added to ``|g|`` for numerical stability.
        weight_decay: L2 penalty coefficient added to the gradient.
        foreach, capturable: accepted, no effect (see ``shared.py``).
        maximize: ascend the objective instead of descending it.
        differentiable: must be False.

    State per parameter: ``step``, ``exp_avg``, ``exp_inf``.

    Example:
        >>> opt = tn.optim.Adamax(model.parameters(), lr=2e-3)
    """

    def __init__(self, params: Iterable, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, capturable: bool = False):
        check_flags("Adamax", foreach, capturable, differentiable)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_adam_like(group)

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("exp_avg", "exp_inf")

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        g = effective_gradient(w, g, group)
        m, u = arrays["exp_avg"], arrays["exp_inf"]
        m += (1 - beta1) * (g - m)  # = beta1 * m + (1 - beta1) * g, PyTorch's lerp
        u *= beta2
        xp.maximum(u, xp.abs(g) + eps, out=u)
        w += -(lr / (1 - beta1**step)) * m / u
