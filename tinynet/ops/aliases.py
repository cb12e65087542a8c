"""PyTorch spellings of what tinynet already computes, so that ported code runs unchanged:
``tn.t``/``x.t()``, ``tn.mm``/``tn.bmm`` (``matmul`` restricted to
matrices and to batches of them), ``x.where(cond, y)``, ``x.expand_as(y)``,
``x.type_as(y)``, ``x.half()``, ``x.new_zeros(...)`` and the other ``new_*`` constructors,
``x.is_floating_point()``, ``x.nelement()``.

Nothing here is a primitive: each is a few calls of functions defined elsewhere in ``tinynet/ops``
or ``creation.py`` (their gradients come from there). The table of every PyTorch name and its
tinynet spelling is docs/porting.md.
"""

from __future__ import annotations

from .. import backend, creation
from ..tensor import Tensor, tensor_method
from .convert import cast
from .linalg import matmul
from .operands import unary_operand
from .select import where
from .shape import expand, transpose

__all__ = ["bmm", "mm", "t"]


@tensor_method
def t(input) -> Tensor:  # noqa: A002
    """A matrix transposed (``transpose(x, 0, 1)``); 0-d and 1-d tensors come back as they are.
    More than two dims is an error, as in PyTorch (use ``transpose`` or ``mT`` there)."""
    x = unary_operand(input)
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dims, got shape {tuple(x.shape)}; "
                         "use x.transpose(dim0, dim1) or x.mT")
    return x if x.ndim < 2 else transpose(x, 0, 1)


@tensor_method
def mm(input, mat2) -> Tensor:  # noqa: A002
    """The product of two matrices, ``(n, m) @ (m, p) -> (n, p)``: ``matmul`` without
    broadcasting (anything but two 2-d tensors is an error, as in PyTorch)."""
    return _matmul_of_rank("mm", 2, input, mat2)


@tensor_method
def bmm(input, mat2) -> Tensor:  # noqa: A002
    """Batched matrix products, ``(B, n, m) @ (B, m, p) -> (B, n, p)``: ``matmul`` without
    broadcasting (the batch sizes must be equal, as in PyTorch)."""
    return _matmul_of_rank("bmm", 3, input, mat2)


def _matmul_of_rank(op: str, ndim: int, a, b) -> Tensor:
    a, b = unary_operand(a), unary_operand(b)
    fits = a.ndim == b.ndim == ndim and a.shape[:-2] == b.shape[:-2] and a.shape[-1] == b.shape[-2]
    if not fits:
        form = "(B, n, m) and (B, m, p)" if ndim == 3 else "(n, m) and (m, p)"
        raise ValueError(f"{op}: expects {form} tensors, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return matmul(a, b)


@tensor_method("where")
def where_method(self, condition, other) -> Tensor:
    """``x.where(condition, y)``: ``x`` where ``condition`` is true, else ``y`` (PyTorch's
    method form of ``tn.where(condition, x, y)``)."""
    return where(condition, self, other)


@tensor_method
def expand_as(self, other: Tensor) -> Tensor:
    """``self`` broadcast to ``other``'s shape (a view)."""
    return expand(self, *other.shape)


@tensor_method
def type_as(self, other: Tensor) -> Tensor:
    """``self`` converted to ``other``'s dtype (``self`` when it already has it)."""
    return cast(self, other.dtype)


@tensor_method
def half(self) -> Tensor:
    """``self`` as float16 (``tn.half``)."""
    return cast(self, backend.float16)


@tensor_method
def is_floating_point(self) -> bool:
    return self.dtype.kind == "f"


@tensor_method
def nelement(self) -> int:
    """The number of elements (``numel``'s other name)."""
    return self.numel()


# --- new tensors with this one's dtype and device ------------------------------------------------


def _new_kwargs(self, dtype, device, requires_grad) -> dict:
    return {"dtype": self.dtype if dtype is None else dtype,
            "device": self.device if device is None else device, "requires_grad": requires_grad}


def _size(size) -> tuple:
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size


@tensor_method
def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``size`` with this tensor's dtype and device (unless given)."""
    return creation.zeros(*_size(size), **_new_kwargs(self, dtype, device, requires_grad))


@tensor_method
def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones of ``size`` with this tensor's dtype and device (unless given)."""
    return creation.ones(*_size(size), **_new_kwargs(self, dtype, device, requires_grad))


@tensor_method
def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of ``size`` with this tensor's dtype and device (unless given)."""
    return creation.empty(*_size(size), **_new_kwargs(self, dtype, device, requires_grad))


@tensor_method
def new_full(self, size, fill_value, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere in ``size``, with this tensor's dtype and device (unless given)."""
    return creation.full(size, fill_value, **_new_kwargs(self, dtype, device, requires_grad))


@tensor_method
def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``tn.tensor(data)`` (a copy) with this tensor's dtype and device (unless given)."""
    return creation.tensor(data, **_new_kwargs(self, dtype, device, requires_grad))
