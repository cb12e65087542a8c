"""Activation modules: ``ReLU``, ``LeakyReLU``, ``GELU``, ``Tanh``, ``Sigmoid``, ``Softplus``,
``Softmax``, ``LogSoftmax``.

Each wraps one primitive op from ``tinynet/ops`` (``activation.py``, ``elementwise.py`` and
``stable.py`` hold the forward and backward formulas); the functional forms are those ops,
re-exported by ``tn.nn.functional``. Names, arguments and defaults are PyTorch's.

``inplace=True`` (accepted by ``ReLU`` and ``LeakyReLU`` so PyTorch model code ports unchanged)
computes the same values out of place: the input tensor is left unchanged.
"""

from __future__ import annotations

import warnings

from ..ops import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from ..tensor import Tensor
from .module import Module


class ReLU(Module):
    """``max(x, 0)`` elementwise.

    Example:
        >>> tn.nn.ReLU()(tn.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` where ``x >= 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """``x * Phi(x)`` with ``Phi`` the standard normal CDF; ``approximate='tanh'`` uses
    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    """``tanh(x)`` elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return tanh(input)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return sigmoid(input)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x > threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Tensor) -> Tensor:
        return softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


def _implicit_dim(name: str, ndim: int) -> int:
    """PyTorch's legacy choice when no ``dim`` is given (with the same warning to pass one)."""
    warnings.warn(f"{name}: implicit dimension choice is deprecated; pass dim=", UserWarning,
                  stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` along ``dim`` (computed with the max shifted out, so it is stable).

    Example:
        >>> tn.nn.Softmax(dim=1)(tn.zeros(2, 4))  # each row: 0.25s
    """

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = _implicit_dim("Softmax", input.ndim) if self.dim is None else self.dim
        return softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``x - logsumexp(x)`` along ``dim`` (never ``log(softmax(x))``, which underflows)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = _implicit_dim("LogSoftmax", input.ndim) if self.dim is None else self.dim
        return log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


__all__ = ["GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Softplus", "Tanh"]
