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

from .. import backend
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
    return AddOp.apply(*binary_operands(a, b))


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
    return SubOp.apply(*binary_operands(a, b))


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
    return MulOp.apply(*binary_operands(a, b))


class DivOp(Op):
    """a / b  ->  grad_a = g / b,  grad_b = -g * a / b^2 = -grad_a * out"""

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
    a, b = binary_operands(a, b)
    t = a if isinstance(a, Tensor) else b
    if t.dtype.kind in "biu":
        dtype = backend.get_default_dtype()
        a, b = (x.to(dtype) if isinstance(x, Tensor) else x for x in (a, b))
    return DivOp.apply(a, b)


class PowOp(Op):
    """a ** b  ->  grad_a = g * b * a^(b-1),  grad_b = g * out * log(a)"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_inputs(0, 1)
        ctx.save_output()
        return a**b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_inputs
        need_a, need_b = ctx.needs_input_grad
        grad_a = g * b * a ** (b - 1) if need_a else None
        grad_b = None
        if need_b:  # a Python-number base stays a Python number: math.log keeps the dtype
            log_a = math.log(a) if isinstance(a, (int, float)) else ctx.xp.log(a)
            grad_b = g * ctx.saved_output * log_a
        return grad_a, grad_b


@tensor_method
def pow(a, b) -> Tensor:  # noqa: A001 - the NumPy/PyTorch name
    """``a ** b``, broadcasting."""
    return PowOp.apply(*binary_operands(a, b))


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

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g * (2 / math.sqrt(math.pi)) * ctx.xp.exp(-x * x)


@tensor_method
@tensor_namespace.register
def erf(x) -> Tensor:
    """The error function, 2/sqrt(pi) * integral of exp(-t^2) from 0 to x."""
    return ErfOp.apply(unary_operand(x))
