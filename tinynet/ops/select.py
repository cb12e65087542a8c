"""Ops that choose between values: ``maximum``/``minimum``, ``clip``, ``where``, and the comparisons
and logic that make their conditions (bool results, no gradient).

Same layout as ``elementwise.py``, with two families: :class:`PairwiseExtreme` is ``maximum`` and
``minimum`` (one backward, ties shared), :class:`CompareOp` every comparison (one class, the
comparison a keyword parameter).
"""

from __future__ import annotations

from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .elementwise import UnaryUfunc
from .namespace import tensor_namespace
from .operands import binary_operands, lift, promote, unary_operand

__all__ = ["clamp", "clip", "eq", "ge", "gt", "le", "logical_and", "logical_not", "logical_or",
           "lt", "maximum", "minimum", "ne", "where"]


# --- maximum, minimum, clip, where ------------------------------------------------------------


class PairwiseExtreme(Op):
    """Base of ``maximum`` and ``minimum``: ``xp.<ufunc>(a, b)``; the winner of each pair gets
    ``g``, a tie gives ``g / 2`` to each (so the gradients always add up to ``g``). NaN
    propagates, so a NaN operand is the winner (``a`` when both are NaN)."""

    ufunc = ""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_inputs(0, 1)
        return getattr(ctx.xp, ctx.fn.ufunc)(a, b)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b = ctx.saved_inputs
        a_wins = (a > b if ctx.fn.ufunc == "maximum" else a < b) | (a != a)  # a != a: NaN
        tie = a == b
        half = g * 0.5
        grad_a = xp.where(a_wins, g, xp.where(tie, half, 0))
        return grad_a, xp.where(a_wins, 0, xp.where(tie, half, g))


class MaximumOp(PairwiseExtreme):
    """max(a, b)  ->  grad_a = g * [a > b],  grad_b = g * [b > a]   (ties: g / 2 to each)"""

    ufunc = "maximum"


@tensor_method
@tensor_namespace.register
def maximum(a, b) -> Tensor:
    """The larger of ``a`` and ``b``, elementwise (broadcasting)."""
    return MaximumOp.apply(*binary_operands(a, b, "maximum"))


class MinimumOp(PairwiseExtreme):
    """min(a, b)  ->  grad_a = g * [a < b],  grad_b = g * [b < a]   (ties: g / 2 to each)"""

    ufunc = "minimum"


@tensor_method
@tensor_namespace.register
def minimum(a, b) -> Tensor:
    """The smaller of ``a`` and ``b``, elementwise (broadcasting)."""
    return MinimumOp.apply(*binary_operands(a, b, "minimum"))


class ClipOp(Op):
    """min(max(x, lo), hi)  ->  grad_x = g * [lo <= x <= hi]   (bounds are constants)"""

    @staticmethod
    def forward(ctx, x, *, lo=None, hi=None):
        ctx.save_inputs(0)
        ctx.lo, ctx.hi = lo, hi
        return ctx.xp.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        inside = None
        if ctx.lo is not None:
            inside = x >= ctx.lo
        if ctx.hi is not None:
            inside = (x <= ctx.hi) if inside is None else inside & (x <= ctx.hi)
        return g if inside is None else ctx.xp.where(inside, g, 0)


@tensor_method("clip", "clamp")
@tensor_namespace.register
def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - NumPy/PyTorch names
    """``x`` limited to ``[min, max]`` (either bound may be None; Tensor bounds broadcast and get
    gradients, being ``maximum``/``minimum``). ``clamp`` is the same function."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    x = unary_operand(x)
    lo, hi = (None if b is None else lift(b, x, "clip", exact=False) for b in (min, max))
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):
        out = x if lo is None else maximum(x, lo)
        return out if hi is None else minimum(out, hi)
    for bound in (lo, hi):  # a float bound makes an integer tensor float32, as x + 0.5 does
        if bound is not None:
            x, _ = promote(x, bound)
    return ClipOp.apply(x, lo=lo, hi=hi)


clamp = clip


class WhereOp(Op):
    """cond ? a : b  ->  grad_a = g * [cond],  grad_b = g * [not cond]   (cond gets no gradient)"""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_inputs(0)
        return ctx.xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_inputs
        xp = ctx.xp
        need_a, need_b = ctx.needs_input_grad[1:]
        return (None, xp.where(cond, g, 0) if need_a else None,
                xp.where(cond, 0, g) if need_b else None)


@tensor_namespace.register
def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` is true, else ``b`` (either may be a Python number)."""
    cond = unary_operand(condition)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=cond.device)
    a, b = binary_operands(a, b, "where")
    return WhereOp.apply(cond, a, b)


# --- comparisons and logic: results are bool tensors with no gradient ----------------------------


class CompareOp(Op):
    """a <op> b for op in ==, !=, <, <=, >, >=, and, or  ->  no gradient (bool result)"""

    differentiable = False
    result_dtype = "bool"
    UFUNCS = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
              "gt": "greater", "ge": "greater_equal", "and": "logical_and", "or": "logical_or"}

    @staticmethod
    def forward(ctx, a, b, *, op="eq"):
        return getattr(ctx.xp, CompareOp.UFUNCS[op])(a, b)


def _comparison(name: str, op: str, meaning: str):
    """The function ``name(a, b)`` (also a Tensor method): ``CompareOp`` with ``op``."""
    def compare(a, b) -> Tensor:
        a, b = binary_operands(a, b, name, exact=False)
        return CompareOp.apply(a, b, op=op)

    compare.__name__ = compare.__qualname__ = name
    compare.__doc__ = f"``{meaning}`` elementwise, broadcasting: a bool tensor (no gradient)."
    return tensor_method(compare)


eq = _comparison("eq", "eq", "a == b")
ne = _comparison("ne", "ne", "a != b")
lt = _comparison("lt", "lt", "a < b")
le = _comparison("le", "le", "a <= b")
gt = _comparison("gt", "gt", "a > b")
ge = _comparison("ge", "ge", "a >= b")
logical_and = _comparison("logical_and", "and", "a and b")
logical_or = _comparison("logical_or", "or", "a or b")


class LogicalNotOp(UnaryUfunc):
    """not x  ->  no gradient (bool result)"""

    differentiable = False
    result_dtype = "bool"
    ufunc, saves = "logical_not", None


@tensor_method
def logical_not(x) -> Tensor:
    return LogicalNotOp.apply(unary_operand(x))
