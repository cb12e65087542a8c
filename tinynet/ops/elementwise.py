"""Elementwise ops with NumPy broadcasting: arithmetic and math functions. Activations (sigmoid,
relu, gelu ...) are in ``activation.py``; maximum/minimum, clip, where and the comparisons in
``select.py``.

Each class is one primitive: ``forward`` on raw arrays, ``backward`` right below it, a docstring
``forward  ->  gradient`` (``g`` is the upstream gradient), and the function users call right
under the class. Broadcasting is undone by the engine (``autograd.sum_to``), so a binary op returns
gradients in the broadcast shape.

Families share one base (MyGrad's ``UnaryUfunc`` style): :class:`UnaryUfunc` runs ``xp.<ufunc>(x)``
and keeps the input or the output, so each math function only names its ufunc and writes its
derivative.

Every ``backward`` uses only ``ctx.xp`` and array operators, so it runs on NumPy, CuPy, and, under
``create_graph=True``, on Tensors (making it differentiable again).
"""

from __future__ import annotations

import math

from ..autograd import Op
from ..tensor import Tensor, tensor_method
from .namespace import tensor_namespace
from .operands import binary_operands, unary_operand

__all__ = ["abs", "add", "cos", "div", "erf", "exp", "log", "mul", "neg", "pow", "sin", "sqrt",
           "sub", "tanh"]

# --- arithmetic ---------------------------------------------------------------------------------


class AddOp(Op):
    """a + b  ->  grad_a = g,  grad_b = g"""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


@tensor_method
def add(a, b) -> Tensor:
    """``a + b``, broadcasting; either may be a Python number (it adopts the tensor's dtype)."""
    return AddOp.apply(*binary_operands(a, b, "add"))


class SubOp(Op):
    """a - b  ->  grad_a = g,  grad_b = -g"""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


@tensor_method
def sub(a, b) -> Tensor:
    """``a - b``, broadcasting."""
    return SubOp.apply(*binary_operands(a, b, "sub"))


class MulOp(Op):
    """a * b  ->  grad_a = g * b,  grad_b = g * a"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_inputs(0, 1)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_inputs
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


@tensor_method
def mul(a, b) -> Tensor:
    """``a * b``, broadcasting."""
    return MulOp.apply(*binary_operands(a, b, "mul"))


class DivOp(Op):
    """a / b  ->  grad_a = g / b,  grad_b = -g * a / b^2 = -grad_a * out"""

    result_dtype = "float"  # integer / integer is a float division, as in PyTorch

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_inputs(1)
        ctx.save_output()
        return a / b

    @staticmethod
    def backward(ctx, g):
        (b,) = ctx.saved_inputs
        grad_a = g / b
        return grad_a, (-grad_a * ctx.saved_output if ctx.needs_input_grad[1] else None)


@tensor_method
def div(a, b) -> Tensor:
    """``a / b``, broadcasting; integer / integer is a float division, as in PyTorch."""
    return DivOp.apply(*binary_operands(a, b, "div", exact=False))  # exact: int8 / 200 is fine


class PowOp(Op):
    """a ** b  ->  grad_a = g * b * a^(b-1)   (0 where a = b = 0),
    grad_b = g * out * log(a)   (0 where a = 0 and b >= 0; PyTorch's values at the edges)"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_inputs(0, 1)
        ctx.save_output()
        return a**b

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b = ctx.saved_inputs
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if need_a:  # d(a^0)/da is 0 everywhere, also at a = 0 where b * a^(b-1) is 0 * inf
            if isinstance(b, (int, float)):  # a Python-number exponent
                grad_a = g * b * a ** (b - 1) if b != 0 else g * 0
            else:  # masked only at a = b = 0, so that d/db of this stays exact elsewhere
                grad_a = xp.where((b == 0) & (a == 0), 0, g * b * a ** (b - 1))
        if need_b:  # 0^b is constant (0, or 1 at b = 0) for b >= 0: no gradient, not 0 * -inf
            out = ctx.saved_output
            if isinstance(a, (int, float)):  # a Python-number base: math.log keeps the dtype
                if a > 0:
                    grad_b = g * out * math.log(a)
                elif a == 0:
                    grad_b = xp.where(b >= 0, 0, g * out * -math.inf)
                else:
                    grad_b = g * out * math.nan  # the log of a negative base, as PyTorch
            else:
                grad_b = xp.where((a == 0) & (b >= 0), 0, g * out * xp.log(a))
        return grad_a, grad_b


@tensor_method
def pow(a, b) -> Tensor:  # noqa: A001 - the NumPy/PyTorch name
    """``a ** b``, broadcasting."""
    return PowOp.apply(*binary_operands(a, b, "pow"))


# --- math functions: one input, one NumPy ufunc -----------------------------------------------


class UnaryUfunc(Op):
    """Base of one-input elementwise ops whose forward is the array namespace's ``ufunc``.

    A subclass names ``ufunc``, says what backward reads (``saves``: ``"input"``, ``"output"``
    or ``None``) and writes ``backward``.
    """

    ufunc = ""
    saves = "input"

    @staticmethod
    def forward(ctx, x):
        op = ctx.fn
        if op.saves == "output":
            ctx.save_output()
        elif op.saves == "input":
            ctx.save_inputs(0)
        return getattr(ctx.xp, op.ufunc)(x)


class NegOp(UnaryUfunc):
    """-x  ->  grad_x = -g"""

    ufunc, saves = "negative", None

    @staticmethod
    def backward(ctx, g):
        return -g


@tensor_method
def neg(x) -> Tensor:
    return NegOp.apply(unary_operand(x))


class ExpOp(UnaryUfunc):
    """exp(x)  ->  grad_x = g * exp(x) = g * out"""

    ufunc, saves = "exp", "output"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved_output


@tensor_method
@tensor_namespace.register
def exp(x) -> Tensor:
    return ExpOp.apply(unary_operand(x))


class LogOp(UnaryUfunc):
    """log(x)  ->  grad_x = g / x"""

    ufunc = "log"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g / x


@tensor_method
@tensor_namespace.register
def log(x) -> Tensor:
    """Natural logarithm."""
    return LogOp.apply(unary_operand(x))


class SqrtOp(UnaryUfunc):
    """sqrt(x)  ->  grad_x = g / (2 sqrt(x)) = g / (2 out)"""

    ufunc, saves = "sqrt", "output"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        return g / (2 * ctx.saved_output)


@tensor_method
@tensor_namespace.register
def sqrt(x) -> Tensor:
    return SqrtOp.apply(unary_operand(x))


class AbsOp(UnaryUfunc):
    """|x|  ->  grad_x = g * sign(x)   (0 at x = 0, as PyTorch)"""

    ufunc = "abs"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g * ctx.xp.sign(x)


@tensor_method
@tensor_namespace.register
def abs(x) -> Tensor:  # noqa: A001
    return AbsOp.apply(unary_operand(x))


class SinOp(UnaryUfunc):
    """sin(x)  ->  grad_x = g * cos(x)"""

    ufunc = "sin"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g * ctx.xp.cos(x)


@tensor_method
@tensor_namespace.register
def sin(x) -> Tensor:
    return SinOp.apply(unary_operand(x))


class CosOp(UnaryUfunc):
    """cos(x)  ->  grad_x = -g * sin(x)"""

    ufunc = "cos"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return -g * ctx.xp.sin(x)


@tensor_method
@tensor_namespace.register
def cos(x) -> Tensor:
    return CosOp.apply(unary_operand(x))


class TanhOp(UnaryUfunc):
    """tanh(x)  ->  grad_x = g * (1 - out^2)"""

    ufunc, saves = "tanh", "output"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved_output
        return g * (1 - out * out)


@tensor_method
@tensor_namespace.register
def tanh(x) -> Tensor:
    return TanhOp.apply(unary_operand(x))


class ErfOp(UnaryUfunc):
    """erf(x)  ->  grad_x = g * 2/sqrt(pi) * exp(-x^2)"""

    ufunc = "erf"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g * (2 / math.sqrt(math.pi)) * ctx.xp.exp(-x * x)


@tensor_method
@tensor_namespace.register
def erf(x) -> Tensor:
    """The error function, 2/sqrt(pi) * integral of exp(-t^2) from 0 to x."""
    return ErfOp.apply(unary_operand(x))
