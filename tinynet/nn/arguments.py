"""Checks of the arguments layers are built with: sizes and pairs of ints, each error naming the
layer (or function), the argument and the value it got.

Layer constructors (``Linear``, ``Conv2d``, the pooling layers, ``Embedding``, the norms, the
recurrent layers) and the functions that take the same arguments (``max_pool2d`` ...) call these,
so ``Linear(-1, 2)`` or ``avg_pool2d(x, kernel_size=0)`` fail at once with one clear line instead
of deep inside NumPy. Where PyTorch accepts a size of 0 (``Linear(0, 4)``: an empty weight),
so does tinynet; sizes that could never run (a kernel of 0, a stride of 0) are refused.

Example:
    >>> tn.nn.Linear(-1, 2)
    ValueError: Linear: in_features must be an int >= 0, got -1
"""

from __future__ import annotations

import numbers


def integer(owner: str, name: str, value, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum`` (a bool is not a size)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r} "
                        f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value}")
    return int(value)


def pair(owner: str, name: str, value, minimum: int = 0) -> tuple[int, int]:
    """An int or a pair of ints (PyTorch's ``_pair``), each at least ``minimum``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise TypeError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
        first, second = value
    else:
        first = second = value
    try:
        return integer(owner, name, first, minimum), integer(owner, name, second, minimum)
    except (TypeError, ValueError) as exc:  # name the whole value, as the caller wrote it
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise type(exc)(f"{owner}: {name} must be an int or a pair of ints, each {kind}, got "
                        f"{value!r}") from None


def single(owner: str, name: str, value, minimum: int = 0) -> tuple[int]:
    """An int or a 1-tuple of an int (PyTorch's ``_single``), at least ``minimum``, as a 1-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise TypeError(f"{owner}: {name} must be an int or a 1-tuple of an int, got "
                            f"{value!r}")
        (value,) = value
    return (integer(owner, name, value, minimum),)


def spatial(owner: str, name: str, value, dims: int, minimum: int = 0) -> tuple:
    """:func:`single` (``dims`` 1) or :func:`pair` (``dims`` 2)."""
    return (single if dims == 1 else pair)(owner, name, value, minimum)


def number(owner: str, name: str, value, low: float | None = None, high: float | None = None,
           *, open_low: bool = False) -> float:
    """A real number in ``[low, high]`` (``(low, high]`` with ``open_low``); bounds may be None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r} "
                        f"({type(value).__name__})")
    too_low = low is not None and (value <= low if open_low else value < low)
    if too_low or (high is not None and value > high) or value != value:
        left = "(" if open_low else "["
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{owner}: {name} must be in {span}, got {value}")
    return float(value)
