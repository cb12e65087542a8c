"""Elementwise ops with NumPy broadcasting: arithmetic, math functions, activations, comparisons.

Each class is one primitive: ``forward`` on raw arrays, ``backward`` right below it, and a one-line
docstring ``forward  ->  gradient`` (``g`` is the upstream gradient). Broadcasting is undone by the
engine (``autograd.sum_to``), so a binary op returns gradients in the broadcast shape.

Every ``backward`` uses only ``ctx.xp`` and array operators, so it runs on NumPy, CuPy, and, under
``create_graph=True``, on Tensors (making it differentiable again).
"""

from __future__ import annotations

import math

from ..autograd import Function
from ..tensor import Tensor, binary_operands, unary_operand

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# --- arithmetic ---------------------------------------------------------------------------------


class Add(Function):
    """a + b  ->  grad_a = g,  grad_b = g"""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    """a - b  ->  grad_a = g,  grad_b = -g"""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """a * b  ->  grad_a = g * b,  grad_b = g * a"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    """a / b  ->  grad_a = g / b,  grad_b = -g * a / b^2 = -grad_a * out"""

    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved_tensors
        grad_a = g / b
        return grad_a, (-grad_a * out if ctx.needs_input_grad[1] else None)


class Pow(Function):
    """a ** b  ->  grad_a = g * b * a^(b-1),  grad_b = g * out * log(a)"""

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = g * b * a ** (b - 1) if need_a else None
        grad_b = None
        if need_b:  # a Python-number base stays a Python number: math.log keeps the dtype
            log_a = math.log(a) if isinstance(a, (int, float)) else ctx.xp.log(a)
            grad_b = g * out * log_a
        return grad_a, grad_b


class Neg(Function):
    """-x  ->  grad_x = -g"""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


# --- math functions -----------------------------------------------------------------------------


class Exp(Function):
    """exp(x)  ->  grad_x = g * exp(x) = g * out"""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    """log(x)  ->  grad_x = g / x"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    """sqrt(x)  ->  grad_x = g / (2 sqrt(x)) = g / (2 out)"""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (2 * out)


class Abs(Function):
    """|x|  ->  grad_x = g * sign(x)   (0 at x = 0, as PyTorch)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.xp.sign(x)


class Sin(Function):
    """sin(x)  ->  grad_x = g * cos(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.xp.cos(x)


class Cos(Function):
    """cos(x)  ->  grad_x = -g * sin(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.cos(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -g * ctx.xp.sin(x)


class Tanh(Function):
    """tanh(x)  ->  grad_x = g * (1 - out^2)"""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)


class Erf(Function):
    """erf(x)  ->  grad_x = g * 2/sqrt(pi) * exp(-x^2)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.erf(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (2 / math.sqrt(math.pi)) * ctx.xp.exp(-x * x)


# --- activations --------------------------------------------------------------------------------


class Sigmoid(Function):
    """1 / (1 + exp(-x))  ->  grad_x = g * out * (1 - out)   (fused: exp only of -|x|, no overflow)"""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.sigmoid(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * (1 - out)


class Relu(Function):
    """max(x, 0)  ->  grad_x = g * [x > 0]   (0 at x = 0, as PyTorch)"""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (out > 0)


class LeakyRelu(Function):
    """x if x > 0 else slope * x  ->  grad_x = g if x > 0 else slope * g"""

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return ctx.xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return ctx.xp.where(x > 0, g, g * ctx.slope), None


class Gelu(Function):
    """x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2  ->  grad_x = g * (Phi(x) + x * phi(x))
    (approximate="tanh": 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), and its exact
    derivative)"""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        xp = ctx.xp
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
        return 0.5 * x * (1 + xp.erf(x / _SQRT_2))

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (x,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du), None
        cdf = 0.5 * (1 + xp.erf(x / _SQRT_2))
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return g * (cdf + x * pdf), None


class Softplus(Function):
    """log(1 + exp(beta x)) / beta (x where beta x > threshold)  ->  grad_x = g * sigmoid(beta x)
    (fused for stability: max(bx, 0) + log1p(exp(-|bx|)) never overflows)"""

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        xp = ctx.xp
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        bx = x * beta
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (x,) = ctx.saved_tensors
        bx = x * ctx.beta
        return xp.where(bx > ctx.threshold, g, g * xp.sigmoid(bx)), None, None


class Clip(Function):
    """min(max(x, lo), hi)  ->  grad_x = g * [lo <= x <= hi]   (bounds are constants)"""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return ctx.xp.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        inside = None
        if ctx.lo is not None:
            inside = x >= ctx.lo
        if ctx.hi is not None:
            inside = (x <= ctx.hi) if inside is None else inside & (x <= ctx.hi)
        return (g if inside is None else ctx.xp.where(inside, g, 0)), None, None


class Maximum(Function):
    """max(a, b)  ->  grad_a = g * [a > b],  grad_b = g * [b > a]   (ties: g / 2 to each)"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _select_pair(ctx.xp, g, a > b, a == b)


class Minimum(Function):
    """min(a, b)  ->  grad_a = g * [a < b],  grad_b = g * [b < a]   (ties: g / 2 to each)"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _select_pair(ctx.xp, g, a < b, a == b)


def _select_pair(xp, g, a_wins, tie):
    half = g * 0.5
    grad_a = xp.where(a_wins, g, xp.where(tie, half, 0))
    grad_b = xp.where(a_wins, 0, xp.where(tie, half, g))
    return grad_a, grad_b


class Where(Function):
    """cond ? a : b  ->  grad_a = g * [cond],  grad_b = g * [not cond]   (cond gets no gradient)"""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return ctx.xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        xp = ctx.xp
        need_a, need_b = ctx.needs_input_grad[1:]
        return (None, xp.where(cond, g, 0) if need_a else None,
                xp.where(cond, 0, g) if need_b else None)


# --- comparisons and logic: results are bool tensors with no gradient ----------------------------


class Compare(Function):
    """a <op> b for op in ==, !=, <, <=, >, >=  ->  no gradient (bool result)"""

    differentiable = False

    @staticmethod
    def forward(ctx, a, b, op="eq"):
        return getattr(ctx.xp, _COMPARE[op])(a, b)


_COMPARE = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater",
            "ge": "greater_equal", "and": "logical_and", "or": "logical_or"}


class LogicalNot(Function):
    """not x  ->  no gradient (bool result)"""

    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return ctx.xp.logical_not(x)


# --- the functional API (tn.add, tn.exp, ...) ---------------------------------------------------


def add(a, b) -> Tensor:
    return Add.apply(*binary_operands(a, b))


def sub(a, b) -> Tensor:
    return Sub.apply(*binary_operands(a, b))


def mul(a, b) -> Tensor:
    return Mul.apply(*binary_operands(a, b))


def div(a, b) -> Tensor:
    a, b = binary_operands(a, b)
    t = a if isinstance(a, Tensor) else b
    if t.dtype.kind in "biu":  # integer / integer is a float division, as in PyTorch
        a, b = (x.to(_default_float()) if isinstance(x, Tensor) else x for x in (a, b))
    return Div.apply(a, b)


def pow(a, b) -> Tensor:  # noqa: A001 - the NumPy/PyTorch name
    return Pow.apply(*binary_operands(a, b))


def neg(x) -> Tensor:
    return Neg.apply(unary_operand(x))


def exp(x) -> Tensor:
    return Exp.apply(unary_operand(x))


def log(x) -> Tensor:
    return Log.apply(unary_operand(x))


def sqrt(x) -> Tensor:
    return Sqrt.apply(unary_operand(x))


def abs(x) -> Tensor:  # noqa: A001
    return Abs.apply(unary_operand(x))


def sin(x) -> Tensor:
    return Sin.apply(unary_operand(x))


def cos(x) -> Tensor:
    return Cos.apply(unary_operand(x))


def tanh(x) -> Tensor:
    return Tanh.apply(unary_operand(x))


def erf(x) -> Tensor:
    return Erf.apply(unary_operand(x))


def sigmoid(x) -> Tensor:
    return Sigmoid.apply(unary_operand(x))


def relu(x) -> Tensor:
    return Relu.apply(unary_operand(x))


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    return LeakyRelu.apply(unary_operand(x), negative_slope)


def gelu(x, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(unary_operand(x), approximate)


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus.apply(unary_operand(x), beta, threshold)


def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - NumPy/PyTorch names
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        x = unary_operand(x)
        out = x if min is None else maximum(x, min)
        return out if max is None else minimum(out, max)
    return Clip.apply(unary_operand(x), min, max)


clamp = clip


def maximum(a, b) -> Tensor:
    return Maximum.apply(*binary_operands(a, b))


def minimum(a, b) -> Tensor:
    return Minimum.apply(*binary_operands(a, b))


def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` is true, else ``b`` (either may be a Python number)."""
    cond = unary_operand(condition)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=cond.device)
    a, b = binary_operands(a, b)
    return Where.apply(cond, a, b)


def _compare(a, b, op) -> Tensor:
    a, b = binary_operands(a, b)
    return Compare.apply(a, b, op=op)


def eq(a, b) -> Tensor:
    return _compare(a, b, "eq")


def ne(a, b) -> Tensor:
    return _compare(a, b, "ne")


def lt(a, b) -> Tensor:
    return _compare(a, b, "lt")


def le(a, b) -> Tensor:
    return _compare(a, b, "le")


def gt(a, b) -> Tensor:
    return _compare(a, b, "gt")


def ge(a, b) -> Tensor:
    return _compare(a, b, "ge")


def logical_and(a, b) -> Tensor:
    return _compare(a, b, "and")


def logical_or(a, b) -> Tensor:
    return _compare(a, b, "or")


def logical_not(x) -> Tensor:
    return LogicalNot.apply(unary_operand(x))


def _default_float():
    from ..backend import get_default_dtype  # noqa: PLC0415

    return get_default_dtype()
