"""PyTorch's in-place methods: ``add_``, ``sub_``, ``mul_``, ``div_``, ``pow_``, ``copy_``,
``fill_``, ``clamp_``/``clip_``, ``masked_fill_``, ``scatter_`` and ``scatter_add_`` (``zero_``
is in the ``Tensor`` class body).

Each writes into the tensor's own array and returns the tensor, through the one helper that
``x += y`` uses (``tensor._inplace``), so what it checks and records lives in one place. The rules
are PyTorch's where tinynet can follow them:

* outside the graph they just write: data, ``.grad`` tensors, and parameters under ``no_grad``
  (``p.add_(g, alpha=-lr)``, ``p.copy_(ema)``, ``w.clamp_(-1, 1)``);
* a leaf that requires grad is refused outside ``no_grad``, as in PyTorch;
* inside the graph (grad mode on, and the tensor or the operand requires grad) the write is
  recorded, as PyTorch records it: the out-of-place form (each method passes it, e.g.
  ``tn.masked_fill`` for ``masked_fill_``) is computed and the tensor takes its value and graph,
  so gradients reach both the old value and the operand (``tensor._inplace``; unlike PyTorch,
  views of the tensor do not see a recorded write: docs/autograd.md).

Dtypes follow PyTorch: arithmetic keeps the tensor's dtype and refuses a result it cannot hold
(a float into an integer tensor); ``copy_`` and ``fill_`` convert, as an assignment does.
"""

from __future__ import annotations

from ..tensor import Tensor, _inplace, tensor_method
from .elementwise import add, div, mul, pow, sub  # noqa: A004 - the op functions
from .gather_scatter import (
    _scatter_args, mask_tensor, masked_fill, scatter, scatter_add, scatter_source,
)
from .select import maximum, minimum, where
from .shape import broadcast_to

__all__: list = []  # methods only: the out-of-place functions are tn.add, tn.masked_fill ...


def _write(name: str, t: Tensor, operand, ufunc: str, op, kernel=None) -> Tensor:
    """``t`` updated in place by ``_inplace`` (``op`` is the out-of-place form it records inside
    the graph); returns ``t``."""
    return _inplace(t, operand, ufunc, op, kernel, what=name)


def _scaled(other, alpha):
    return other if alpha == 1 else other * alpha


# --- arithmetic --------------------------------------------------------------------------------


@tensor_method
def add_(self, other, *, alpha=1) -> Tensor:
    """``self += alpha * other`` in place (``p.add_(g, alpha=-lr)``)."""
    return _write("add_", self, _scaled(other, alpha), "add", add)


@tensor_method
def sub_(self, other, *, alpha=1) -> Tensor:
    """``self -= alpha * other`` in place."""
    return _write("sub_", self, _scaled(other, alpha), "subtract", sub)


@tensor_method
def mul_(self, other) -> Tensor:
    """``self *= other`` in place."""
    return _write("mul_", self, other, "multiply", mul)


@tensor_method
def div_(self, other, *, rounding_mode=None) -> Tensor:
    """``self /= other`` in place (true division; ``rounding_mode`` must be None)."""
    if rounding_mode is not None:
        raise NotImplementedError(f"div_: rounding_mode={rounding_mode!r} is not supported; "
                                  "only true division (rounding_mode=None)")
    return _write("div_", self, other, "true_divide", div)


@tensor_method
def pow_(self, exponent) -> Tensor:
    """``self **= exponent`` in place."""
    return _write("pow_", self, exponent, "power", pow)


@tensor_method("clamp_", "clip_")
def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    """``self`` limited to ``[min, max]`` in place (either bound may be None, or a tensor)."""
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    if min is not None:
        _write("clamp_", self, min, "maximum", maximum)
    if max is not None:
        _write("clamp_", self, max, "minimum", minimum)
    return self


# --- assignment ------------------------------------------------------------------------------


def _assign(xp, array, value):
    xp.copyto(array, value, casting="unsafe")


@tensor_method
def copy_(self, src, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast to this shape, converted to this dtype) into ``self``. Like
    PyTorch's ``copy_``, it copies across devices too: this is an explicit transfer."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: src must be a Tensor, got {type(src).__name__}")
    try:
        shape = _broadcast_shape(src.shape, self.shape)
    except ValueError:
        raise ValueError(f"copy_: src of shape {tuple(src.shape)} does not broadcast to "
                         f"{tuple(self.shape)}") from None
    if src.device is not self.device:
        src = src.to(self.device)
    return _write("copy_", self, src, "copy", lambda t, s: broadcast_to(s, shape).astype(t.dtype),
                  _assign)


def _broadcast_shape(src: tuple, dst: tuple) -> tuple:
    lead = len(dst) - len(src)
    if lead < 0 or any(s not in (1, d) for s, d in zip(src, dst[lead:])):
        raise ValueError(f"{src} to {dst}")
    return tuple(dst)


@tensor_method
def fill_(self, value) -> Tensor:
    """Set every element to ``value`` (a number, or a 0-d tensor) in place."""
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ValueError(f"fill_: value must be a number or a 0-d tensor, got shape "
                         f"{tuple(value.shape)}")
    return _write("fill_", self, value, "fill", _filled, _assign)


def _filled(t: Tensor, value) -> Tensor:
    """``fill_``'s out-of-place form (a gradient reaches a tensor ``value``)."""
    everywhere = Tensor.wrap(t.device.xp.ones(t.shape, dtype=bool), t.device)
    return masked_fill(t, everywhere, value)


@tensor_method
def masked_fill_(self, mask, value) -> Tensor:
    """``value`` written where the bool ``mask`` (broadcast to this shape) is true, in place."""
    mask = mask_tensor("masked_fill_", mask, self)

    def write(xp, array, v):
        xp.copyto(array, v, casting="unsafe", where=mask.data)

    return _write("masked_fill_", self, value, "masked_fill", lambda t, v: where(mask, v, t),
                  write)


@tensor_method
def scatter_(self, dim=None, index=None, src=None, *, value=None, axis=None) -> Tensor:
    """:func:`tinynet.scatter` in place: ``src`` (or the number ``value``) written at ``index``
    along ``dim`` (``zeros.scatter_(1, labels.unsqueeze(1), 1.0)`` makes one-hot rows)."""
    x, dim, index, at = _scatter_args("scatter_", self, dim, index, axis)
    src = scatter_source("scatter_", x, index, src, value)

    def write(xp, array, s):
        array[at] = s

    return _write("scatter_", self, src, "scatter", lambda t, s: scatter(t, dim, index, s), write)


@tensor_method
def scatter_add_(self, dim=None, index=None, src=None, *, axis=None) -> Tensor:
    """:func:`tinynet.scatter_add` in place: ``src`` added at ``index`` along ``dim``, repeated
    positions accumulating."""
    x, dim, index, at = _scatter_args("scatter_add_", self, dim, index, axis)
    src = scatter_source("scatter_add_", x, index, src, None)

    def write(xp, array, s):
        xp.add.at(array, at, s)

    return _write("scatter_add_", self, src, "scatter_add",
                  lambda t, s: scatter_add(t, dim, index, s), write)
