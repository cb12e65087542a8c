"""``check_gradients``: the assertion users put in their own property tests.

It runs :func:`tinynet.gradcheck` (and :func:`tinynet.gradgradcheck` with ``second_order=True``) and
turns a disagreement into an ``AssertionError`` whose message names the function, the input shapes,
the failing input and its worst element, so a pytest/hypothesis failure reads on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import tinynet as tn


def check_gradients(fn: Callable[..., tn.Tensor | tuple], *tensors: tn.Tensor, eps: float = 1e-6,
                    atol: float = 1e-5, rtol: float = 1e-3, second_order: bool = False,
                    fast_mode: bool = False) -> None:
    """Assert that ``fn``'s backward agrees with central differences at ``tensors``.

    Args:
        fn: takes the tensors, returns a Tensor or a tuple of Tensors.
        *tensors: the inputs; those with ``requires_grad=True`` are checked (they must be float64).
        eps: the central-difference step.
        atol, rtol: an element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
        second_order: also check second derivatives (``gradgradcheck``: the backward itself must be
            differentiable, as it is for every built-in op and for a ``Function`` whose backward is
            written with ``ctx.xp`` and array operators).
        fast_mode: compare derivatives along random directions instead of full Jacobians: one
            backward per input instead of one per output element. For inputs too big for the full
            check; rerun without it to find the worst element.

    Raises:
        AssertionError: the gradients disagree. The message names the input (by position and
            shape), the worst element, the analytic and numeric values and the relative error.

    Example:
        >>> x = tn.randn(3, dtype=tn.float64, requires_grad=True)
        >>> check_gradients(lambda x: (x * x).sum(), x, second_order=True)
    """
    name = _describe(fn)
    shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" if isinstance(t, tn.Tensor) else repr(t)
                       for t in tensors)
    kwargs = {"eps": eps, "atol": atol, "rtol": rtol, "fast_mode": fast_mode}
    for order, check in ((1, tn.gradcheck), (2, tn.gradgradcheck)):
        if order == 2 and not second_order:
            break
        try:
            check(fn, tensors, **kwargs)
        except tn.GradcheckError as exc:
            what = "gradient" if order == 1 else "second derivative (gradgradcheck)"
            raise AssertionError(f"{name}({shapes}): {what} does not match central differences: "
                                 f"{exc}") from None


def _describe(fn) -> str:
    """``Cube.apply`` for a Function's apply, else the function's name."""
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", type(fn).__name__)
    return f"{owner.__name__}.{name}" if isinstance(owner, type) else name


__all__ = ["check_gradients"]
