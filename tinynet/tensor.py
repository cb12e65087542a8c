"""The ``Tensor``: a backend array, the device it lives on, and its place in the autograd graph.

The class body holds the tensor's own state (data, device, dtype, grad, hooks), conversions
(``to``, ``float``, ``numpy``), the autograd entry points (``backward``, ``retain_grad``), every
Python operator (``__add__``, ``__getitem__`` ...: each forwards to one function of
``tinynet.ops``) and the shape methods whose method form differs from the function
(``x.reshape(2, 3)``, ``x.view``, ``x.permute``, ``x.expand``, ``x.T``).

Every other method is an op function itself with the tensor as its first argument: ``x.exp()`` is
``tn.exp(x)``, ``x.sum(1)`` is ``tn.sum(x, 1)``. Those are attached where the function is defined,
by :func:`tensor_method` (``grep -rn "@tensor_method" tinynet/ops`` lists them; ``OP_METHODS``
holds them), so adding an op is one edit in ``tinynet/ops/``.

Creation helpers (``tn.zeros``, ...) are in ``creation.py``; operand coercion in
``ops/operands.py``; the graph machinery in ``function.py`` and ``autograd.py``.

The module is longer than most (~500 lines) because it is one class whose body must hold every
operator, so that a reader finds ``__add__`` where it is used; everything that could leave it
(coercion, the named math methods) has.
"""

from __future__ import annotations

from . import backend
from .backend import Device


class Tensor:
    """An n-dimensional array that records the ops applied to it, for reverse-mode autograd.

    ``tn.tensor(data, dtype=None, device=None, requires_grad=False)`` is the usual way to make one.
    ``.data`` is the raw backend array (``numpy.ndarray`` on CPU, ``cupy.ndarray`` on CUDA).

    Example:
        >>> x = tn.tensor([[1.0, 2.0]], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([[2., 4.]])
    """

    __slots__ = ("_data", "_device", "_requires_grad", "grad", "grad_fn", "_hooks", "name",
                 "__weakref__")
    __array_priority__ = 1000  # NumPy defers ``ndarray + Tensor`` to Tensor.__radd__

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        from .creation import _to_array  # noqa: PLC0415 - creation imports this module

        arr, dev = _to_array(data, dtype, device)
        self._data = arr
        self._device = dev
        self._requires_grad = False
        self.grad = None
        self.grad_fn = None
        self._hooks = None
        self.name = None
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def wrap(cls, array, device: Device) -> Tensor:
        """A tensor around ``array``, which must already be an array of ``device`` (no copy, no
        checks: the fast way for library code, e.g. ``Tensor.wrap(xp.zeros(shape), device)``).

        The tensor shares ``array``'s memory and records no graph. From user data, use
        ``tn.tensor`` (a copy) or ``tn.as_tensor`` / ``tn.from_numpy`` (shared).
        """
        return cls._make(array, device)

    @classmethod
    def _make(cls, data, device: Device, requires_grad: bool = False, grad_fn=None) -> Tensor:
        """The engine's constructor: :meth:`wrap`, plus the graph fields of an op's output."""
        t = object.__new__(cls)
        t._data = data
        t._device = device
        t._requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._hooks = None
        t.name = None
        return t

    # --- basic properties -------------------------------------------------------------------
    @property
    def data(self):
        """The raw backend array (``numpy.ndarray`` on CPU, ``cupy.ndarray`` on CUDA).

        Assigning replaces it without touching the graph: an array of this tensor's device, or a
        Tensor, whose array *and device* this tensor then takes (PyTorch's ``p.data = q``; how
        ``Module.to`` moves parameters in place, keeping the objects an optimizer holds).
        """
        return self._data

    @data.setter
    def data(self, value):
        if isinstance(value, Tensor):
            self._data, self._device = value._data, value._device
            return
        if not isinstance(value, self._device.array_type):
            raise TypeError(f"Tensor.data must be a {self._device.array_type.__name__} on "
                            f"{self._device}, got {type(value).__name__}")
        self._data = value

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        value = bool(value)
        if value and self._data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, this one is "
                            f"{self._data.dtype}; convert it first, e.g. x.float()")
        if not value and self.grad_fn is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use "
                               "detach() for a non-leaf")
        self._requires_grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (not by an op that records a graph)."""
        return self.grad_fn is None

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self) -> Device:
        return self._device

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    def size(self, dim: int | None = None, *, axis: int | None = None):
        """The shape (PyTorch's name), or the length of one dimension."""
        dim = _operands.dim_alias("size", dim, axis)
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        return self._data.size

    def dim(self) -> int:
        return self._data.ndim

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    # --- leaving the graph, leaving the device ------------------------------------------------
    def detach(self) -> Tensor:
        """A new tensor sharing this data, cut from the graph (``requires_grad=False``)."""
        return Tensor._make(self._data, self._device)

    def item(self):
        """The value of a one-element tensor as a Python number (synchronises on the GPU)."""
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape "
                             f"{tuple(self.shape)}")
        if self._device.type == "cpu":
            return self._data.item()
        return self._device.read_scalars(self._data)[0]  # with the deferred checks' flags

    def tolist(self):
        if self._device.type != "cpu":
            backend.checks.before_read(self._device)
        return self._data.tolist()

    def numpy(self):
        """The data as a NumPy array, sharing memory on CPU. A GPU tensor must be moved first."""
        if self._device.type != "cpu":
            raise TypeError(f"can't convert a {self._device} tensor to numpy: call .cpu() first to "
                            "copy it to host memory (transfers are explicit)")
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def to(self, device=None, dtype=None) -> Tensor:
        """Move to ``device`` and/or cast to ``dtype``; returns ``self`` when nothing changes.

        ``t.to("cuda")``, ``t.to(tn.float64)``, ``t.to("cpu", tn.float32)``. Moving keeps the graph:
        gradients flow back to the original device.
        """
        if dtype is None and device is not None and not isinstance(device, (str, Device)):
            device, dtype = None, device  # t.to(tn.float64)
        out = self
        if dtype is not None:
            out = _ops.cast(out, dtype)
        if device is not None:
            out = _ops.to_device(out, Device(device))
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(Device("cuda", index))

    def float(self) -> Tensor:
        return _ops.cast(self, backend.float32)

    def double(self) -> Tensor:
        return _ops.cast(self, backend.float64)

    def long(self) -> Tensor:
        return _ops.cast(self, backend.int64)

    def int(self) -> Tensor:
        return _ops.cast(self, backend.int32)

    def bool(self) -> Tensor:
        return _ops.cast(self, backend.bool_)

    # --- autograd entry points ----------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        ``gradient`` is required unless ``self`` has one element. The graph is freed afterwards unless
        ``retain_graph=True``; ``create_graph=True`` makes the gradients differentiable.
        """
        _autograd.backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` during backward."""
        if self.grad_fn is None:
            return  # leaves keep theirs anyway
        import weakref  # noqa: PLC0415

        self.grad_fn._retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self.grad_fn._retained is not None

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            if self.grad_fn._hooks is None:
                self.grad_fn._hooks = []
            hooks = self.grad_fn._hooks
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def zero_(self) -> Tensor:
        """Fill with zeros in place (for ``.grad`` tensors and data preparation). Refused, like
        ``t[...] = 0``, on tensors in the graph: a leaf requiring grad only under ``no_grad``."""
        _ops.setitem(self, Ellipsis, 0)
        return self

    # --- in-place arithmetic: x += y ------------------------------------------------------------
    def __iadd__(self, other):
        return _inplace(self, other, "add", _ops.add)

    def __isub__(self, other):
        return _inplace(self, other, "subtract", _ops.sub)

    def __imul__(self, other):
        return _inplace(self, other, "multiply", _ops.mul)

    def __itruediv__(self, other):
        return _inplace(self, other, "true_divide", _ops.div)

    # --- elementwise arithmetic (ops/elementwise.py) ------------------------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    # --- comparisons and logic: no gradient ---------------------------------------------------
    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __and__(self, other):
        return _ops.logical_and(self, other)

    def __or__(self, other):
        return _ops.logical_or(self, other)

    def __invert__(self):
        return _ops.logical_not(self)

    __hash__ = object.__hash__  # identity, so tensors can key dicts despite elementwise ==

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._data.size} elements is "
                               "ambiguous; use .any() or .all()")
        if self._device.type != "cpu":
            backend.checks.before_read(self._device)
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def any(self) -> Tensor:
        return Tensor._make(self._device.xp.asarray(self._data.any()), self._device)

    def all(self) -> Tensor:
        return Tensor._make(self._device.xp.asarray(self._data.all()), self._device)

    # --- shape methods whose form differs from the function (ops/shape.py) -----------------
    def reshape(self, *shape) -> Tensor:
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``: a view where the strides allow, or a
        copy."""
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def view(self, *shape) -> Tensor:
        """``x.view(2, 3)``: like ``reshape``, but never a copy: raises when the strides do not
        allow a view (PyTorch's rule; use ``reshape``, or ``contiguous()`` first)."""
        return _ops.view(self, shape[0] if len(shape) == 1 else shape)

    def view_as(self, other: Tensor) -> Tensor:
        return _ops.view(self, other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return _ops.reshape(self, other.shape)

    def is_contiguous(self) -> bool:
        """True when the data is laid out in row-major (C) order without gaps."""
        return bool(self._data.flags.c_contiguous)

    def contiguous(self) -> Tensor:
        """``self`` if :meth:`is_contiguous`, else a row-major copy (in the graph), which can
        always be viewed in any shape of its size."""
        return self if self._data.flags.c_contiguous else _ops.clone(self)

    def permute(self, *dims) -> Tensor:
        """``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``: dimension ``i`` of the result is
        dimension ``dims[i]`` of ``x``."""
        return _ops.permute(self, dims[0] if len(dims) == 1 else dims)

    def expand(self, *sizes) -> Tensor:
        return _ops.expand(self, *sizes)

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (a matrix's transpose)."""
        return _ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:
        """The last two dimensions swapped (a batch of matrices, each transposed)."""
        return _ops.transpose(self, -2, -1)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __setitem__(self, index, value):
        _ops.setitem(self, index, value)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # --- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        host = self._device.to_host(self._data)
        body = backend.host_namespace().array2string(
            host, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self._device.type != "cpu":
            extras.append(f"device='{self._device}'")
        if self._data.dtype != backend.get_default_dtype() and self._data.dtype.kind == "f":
            extras.append(f"dtype={self._data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}Backward>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"


def _inplace(t: Tensor, other, ufunc: str, op) -> Tensor:
    """``t op= other``. Outside the graph (parameter updates under ``no_grad``, ``.grad`` tensors,
    data) it writes into ``t``'s array, as PyTorch does. On a tensor inside the graph the result is
    recorded out of place and ``t`` is rebound (an alias of the old tensor does not see the change).
    A leaf that requires grad may only be updated in place under ``no_grad``."""
    if t.grad_fn is not None:
        return op(t, other)
    if t._requires_grad and _autograd.is_grad_enabled():
        raise RuntimeError("a leaf tensor that requires grad is being used in an in-place operation; "
                           "update it inside tn.no_grad()")
    other = _operands.lift(other, t)
    if isinstance(other, Tensor):
        if other._device is not t._device:
            raise RuntimeError(f"in-place {ufunc}: tensor on {t._device}, operand on {other._device}")
        other = other._data
    try:  # same_kind casting: float data into an integer tensor raises instead of truncating
        getattr(t._device.xp, ufunc)(t._data, other, out=t._data)
    except (TypeError, ValueError) as exc:
        raise _plain(exc)(f"in-place {ufunc} on a tensor of shape {tuple(t.shape)} and dtype "
                        f"{t.dtype}: {exc}") from exc
    return t


def _plain(exc: Exception) -> type:
    """The builtin exception class to re-raise ``exc`` as with more context (NumPy's subclasses,
    like its casting errors, take constructor arguments of their own)."""
    return next(c for c in (ValueError, IndexError, TypeError, RuntimeError)
                if isinstance(exc, c))


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


OP_METHODS: dict = {}
"""Method name -> the op function attached by :func:`tensor_method`."""


def tensor_method(*names):
    """Decorator: make an op function a Tensor method too (``x.exp()`` calls ``exp(x)``).

    ``@tensor_method`` attaches the function under its own name; ``@tensor_method("clip",
    "clamp")`` under the names given. The function's first parameter is the tensor, so the method
    has the function's signature and docstring. Refuses to replace a method written in the class.
    """
    def attach(fn):
        for name in names or (fn.__name__,):
            if name in Tensor.__dict__ and name not in OP_METHODS:
                raise TypeError(f"tensor_method: Tensor.{name} is written in the class body")
            OP_METHODS[name] = fn
            setattr(Tensor, name, fn)
        return fn

    if len(names) == 1 and callable(names[0]):
        fn, names = names[0], ()
        return attach(fn)
    return attach


# autograd and ops build on Tensor: imported once it is defined.
from . import autograd as _autograd  # noqa: E402
from . import ops as _ops  # noqa: E402
from .ops import operands as _operands  # noqa: E402
