"""What the optimizers ported from ``torch.optim`` (Adadelta, Adamax, NAdam, RAdam, ASGD) share:
PyTorch's implementation flags and range checks (with PyTorch's messages), and the first lines
of their updates (the gradient as the update sees it, Adam's two moments).

``foreach`` is accepted as PyTorch accepts it (None, True or False) and changes nothing: tinynet
picks the multi-tensor step itself (``flat.py``). ``capturable`` (CUDA-graph capture) is accepted
and changes nothing either: the update is the same arithmetic. ``differentiable=True`` (autograd
through the step) is refused: tinynet's updates run on raw arrays, outside the graph.
"""

from __future__ import annotations

from typing import Any

_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def check_flags(optimizer: str, foreach, capturable, differentiable) -> None:
    """PyTorch's implementation flags: accepted where they change nothing, refused otherwise."""
    if foreach not in (None, True, False):
        raise TypeError(f"{optimizer}: foreach must be None, True or False, got {foreach!r}")
    if not isinstance(capturable, bool):
        raise TypeError(f"{optimizer}: capturable must be True or False, got {capturable!r}")
    if differentiable:
        raise NotImplementedError(f"{optimizer}: differentiable=True (autograd through the "
                                  "optimizer step) is not supported: tinynet updates parameters "
                                  "outside the graph")


def check_nonnegative(group: dict[str, Any], *names: str) -> None:
    """``ValueError("Invalid learning rate: -1")`` and the like, for each name that is < 0."""
    for name in names:
        if group[name] < 0:
            raise ValueError(f"Invalid {_LABELS.get(name, name + ' value')}: {group[name]}")


def check_adam_like(group: dict[str, Any], *more: str) -> None:
    """PyTorch's checks of an Adam-like group: lr, eps, both betas in [0, 1), weight_decay and
    the ``more`` names non-negative, in PyTorch's order."""
    check_nonnegative(group, "lr", "eps")
    for i, beta in enumerate(group["betas"]):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    check_nonnegative(group, "weight_decay", *more)


def effective_gradient(w, g, group: dict[str, Any]):
    """The gradient the update uses: negated with ``maximize``, plus the L2 penalty
    ``weight_decay * w``; with ``decoupled_weight_decay`` the weights shrink in place instead
    (``w <- w * (1 - lr * weight_decay)``, AdamW's way). ``g`` itself is never written."""
    if group["maximize"]:
        g = -g
    weight_decay = group["weight_decay"]
    if weight_decay != 0:
        if group.get("decoupled_weight_decay"):
            w *= 1 - group["lr"] * weight_decay
        else:
            g = g + weight_decay * w
    return g


def adam_moments(arrays: dict, g, betas: tuple[float, float]):
    """Adam's moments updated in place and returned: ``m <- beta1 m + (1 - beta1) g`` (as
    PyTorch's lerp computes it) and ``v <- beta2 v + (1 - beta2) g^2``."""
    beta1, beta2 = betas
    m, v = arrays["exp_avg"], arrays["exp_avg_sq"]
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * g * g
    return m, v
