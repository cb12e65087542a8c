"""Activation functions as primitives: ``sigmoid``, ``relu``, ``leaky_relu``, ``gelu``,
``softplus``. (The layers wrapping them, ``tn.nn.ReLU`` ..., are in ``tinynet/nn/activation.py``;
``softmax`` and ``log_softmax`` are in ``stable.py``.)

Same layout as ``elementwise.py``: each class has ``forward`` and ``backward`` side by side and a
``forward  ->  gradient`` docstring, with the function users call right under it. Parameters
(``negative_slope``, ``beta`` ...) are keyword arguments of ``apply``, so ``backward`` returns
exactly one gradient, for ``x``.
"""

from __future__ import annotations

import math

from ..autograd import Op
from ..backend import kernels
from ..tensor import Tensor, tensor_method
from .elementwise import UnaryUfunc
from .namespace import tensor_namespace
from .operands import unary_operand

__all__ = ["gelu", "leaky_relu", "relu", "sigmoid", "softplus"]

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class SigmoidOp(UnaryUfunc):
    """1 / (1 + exp(-x))  ->  grad_x = g * out * (1 - out)   (exp only of -|x|: no overflow)"""

    ufunc, saves = "sigmoid", "output"
    result_dtype = "float"

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved_output
        return g * out * (1 - out)


@tensor_method
@tensor_namespace.register
def sigmoid(x) -> Tensor:
    """The logistic function ``1 / (1 + exp(-x))``, computed without overflow."""
    return SigmoidOp.apply(unary_operand(x))


class ReluOp(Op):
    """max(x, 0)  ->  grad_x = g * [x > 0]   (0 at x = 0, as PyTorch)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return ctx.xp.maximum(x, 0)

    @staticmethod
    def backward(ctx, g):
        if ctx.create_graph or ctx.xp.name == "numpy":
            return g * (ctx.saved_output > 0)
        return kernels.RELU_BACKWARD(ctx.xp, g, ctx.saved_output)  # one GPU launch, not two


@tensor_method
def relu(x) -> Tensor:
    """``max(x, 0)``."""
    return ReluOp.apply(unary_operand(x))


class LeakyReluOp(Op):
    """x if x > 0 else slope * x  ->  grad_x = g if x > 0 else slope * g"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *, negative_slope=0.01):
        ctx.save_inputs(0)
        ctx.slope = negative_slope
        return ctx.xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return ctx.xp.where(x > 0, g, g * ctx.slope)


@tensor_method
def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return LeakyReluOp.apply(unary_operand(x), negative_slope=negative_slope)


class GeluOp(Op):
    """x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2  ->  grad_x = g * (Phi(x) + x * phi(x))
    (approximate="tanh": 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), and its exact
    derivative)"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *, approximate="none"):
        xp = ctx.xp
        ctx.save_inputs(0)
        ctx.approximate = approximate
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
        return 0.5 * x * (1 + xp.erf(x / _SQRT_2))

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (x,) = ctx.saved_inputs
        if ctx.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        cdf = 0.5 * (1 + xp.erf(x / _SQRT_2))
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return g * (cdf + x * pdf)


@tensor_method
def gelu(x, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, exact (``"none"``) or with the tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GeluOp.apply(unary_operand(x), approximate=approximate)


class SoftplusOp(Op):
    """log(1 + exp(beta x)) / beta (x where beta x > threshold)  ->  grad_x = g * sigmoid(beta x)
    (fused for stability: max(bx, 0) + log1p(exp(-|bx|)) never overflows)"""

    result_dtype = "float"

    @staticmethod
    def forward(ctx, x, *, beta=1.0, threshold=20.0):
        xp = ctx.xp
        ctx.save_inputs(0)
        ctx.beta, ctx.threshold = beta, threshold
        bx = x * beta
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (x,) = ctx.saved_inputs
        bx = x * ctx.beta
        return xp.where(bx > ctx.threshold, g, g * xp.sigmoid(bx))


@tensor_method
def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """A smooth ReLU, ``log(1 + exp(beta x)) / beta``; linear where ``beta x > threshold``."""
    return SoftplusOp.apply(unary_operand(x), beta=beta, threshold=threshold)
