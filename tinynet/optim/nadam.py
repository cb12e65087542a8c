"""NAdam (``torch.optim.NAdam``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer
from .shared import adam_moments, check_adam_like, check_flags, effective_gradient

_KEPT_PRODUCTS = 8  # steps whose momentum product stays cached per (beta1, momentum_decay)


class NAdam(Optimizer):
    """NAdam, Adam with Nesterov momentum: Dozat, "Incorporating Nesterov Momentum into Adam",
    ICLR 2016 workshop, with the momentum schedule ``mu_t`` of that paper.

    The update is PyTorch's, step ``t`` (counted per parameter) with gradient ``g``::

        g <- -g                                      if maximize
        g <- g + weight_decay * p   (L2), or  p <- p * (1 - lr * weight_decay)  if decoupled
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))      the momentum schedule
        M_t = mu_1 * mu_2 * ... * mu_t
        m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        p <- p - lr * (1 - mu_t) / (1 - M_t) * g / d - lr * mu_{t+1} / (1 - M_t mu_{t+1}) * m / d

    The second term looks one step ahead with next step's momentum (Nesterov's idea applied to
    Adam's first moment); the first is the current gradient's share. ``M_t`` depends only on
    ``t``, so it is computed from the step count (PyTorch keeps it as state, ``mu_product``).

    Args:
        params: tensors, or parameter-group dicts.
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: weight decay coefficient.
        momentum_decay: ``psi`` of the momentum schedule.
        decoupled_weight_decay: decay the weights directly (AdamW's way; "NAdamW") instead of
            adding an L2 penalty to the gradient.
        foreach, capturable: accepted, no effect (see ``shared.py``).
        maximize: ascend the objective instead of descending it.
        differentiable: must be False.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> opt = tn.optim.NAdam(model.parameters(), lr=2e-3)
    """

    def __init__(self, params: Iterable, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False):
        check_flags("NAdam", foreach, capturable, differentiable)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "momentum_decay": momentum_decay,
                    "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize}
        self._mu_products: dict = {}  # (beta1, momentum_decay) -> {step: M_step}
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        check_adam_like(group, "momentum_decay")

    def _state_keys(self, group: dict[str, Any]) -> tuple:
        return ("exp_avg", "exp_avg_sq")

    def _mu_product(self, beta1: float, psi: float, step: int) -> float:
        """``M_step``, continued from the nearest cached step below (one multiplication per step
        in training: parameters at the same step share it)."""
        products = self._mu_products.setdefault((beta1, psi), {0: 1.0})
        value = products.get(step)
        if value is None:
            start = max(s for s in products if s < step)
            value = products[start]
            for t in range(start + 1, step + 1):
                value *= _mu(beta1, psi, t)
            products[step] = value
            if len(products) > _KEPT_PRODUCTS:  # forget the oldest other than M_0 and this one
                del products[min(s for s in products if s not in (0, step))]
        return value

    def _update(self, xp, w, g, arrays, step, group) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        psi = group["momentum_decay"]
        g = effective_gradient(w, g, group)
        mu, mu_next = _mu(beta1, psi, step), _mu(beta1, psi, step + 1)
        mu_product = self._mu_product(beta1, psi, step)
        m, v = adam_moments(arrays, g, group["betas"])
        denom = xp.sqrt(v / (1 - beta2**step))
        denom += eps
        w += (-lr * (1 - mu) / (1 - mu_product)) * g / denom
        w += (-lr * mu_next / (1 - mu_product * mu_next)) * m / denom


def _mu(beta1: float, psi: float, step: int) -> float:
    """The momentum schedule ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi))``."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
