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
                 "_counter", "_output_nr", "__weakref__")
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
        self._counter = None  # the version counter, [n]: made on the first write, save or view
        self._output_nr = None  # which output of a multi-output grad_fn this is (None: single)
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
        t._counter = None
        t._output_nr = None
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
        # The tensor now holds other memory: it shares the version counter of the tensor it took
        # it from, or starts a new one (what was saved from the old memory stays valid: a node
        # keeps the old array, which this does not write to).
        if isinstance(value, Tensor):
            self._data, self._device = value._data, value._device
            self._counter = value._version_counter()
            return
        if not isinstance(value, self._device.array_type):
            raise TypeError(f"Tensor.data must be a {self._device.array_type.__name__} on "
                            f"{self._device}, got {type(value).__name__}")
        self._data = value
        self._counter = None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        value = bool(value)
        if value and self._data.dtype.kind != "f":
            hint = (" (complex): tinynet has no complex autograd; differentiate the real and "
                    "imaginary parts as two real tensors" if self._data.dtype.kind == "c" else
                    "; convert it first, e.g. x.float()")
            raise TypeError(f"requires_grad: only real floating-point tensors can require "
                            f"gradients, this one is {self._data.dtype}{hint}")
        if not value and self.grad_fn is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use "
                               "detach() for a non-leaf")
        self._requires_grad = value

    @property
    def _version(self) -> int:
        """How many in-place writes this tensor's memory has seen (PyTorch's ``t._version``).

        Shared with every tensor tinynet made over the same memory: views made by ops (reshape,
        view, permute/transpose, basic indexing, broadcast_to/expand ...) and ``detach()``. Each
        in-place write through tinynet adds one: ``t += ...`` and the other in-place operators,
        ``t[i] = v``, ``zero_()``, optimizer steps. Backward refuses saved values whose version
        moved since they were saved (docs/autograd.md, section 13).
        """
        return 0 if self._counter is None else self._counter[0]

    def _version_counter(self) -> list:
        """This tensor's version counter, made now if nothing wrote, saved or viewed it yet.

        A one-element list ``[n]`` (the cheapest mutable int: graph nodes make one for most tensors
        they save), shared by the tensors tinynet made over the same memory: a tensor, the views
        ops made of it, its ``detach()``. Every in-place write through tinynet adds one; a graph
        node records ``n`` for each tensor it saves and backward compares (``function.py``).
        """
        c = self._counter
        if c is None:
            c = self._counter = [0]
        return c

    def _bump_version(self) -> None:
        """Record one in-place write into this tensor's memory (every writer calls this)."""
        self._version_counter()[0] += 1

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
        """A new tensor sharing this data (and its version counter), cut from the graph
        (``requires_grad=False``)."""
        t = Tensor._make(self._data, self._device)
        t._counter = self._version_counter()
        return t

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

        node, nr = self.grad_fn, self._output_nr
        if nr is None:
            node._retained = weakref.ref(self)
        else:  # one output of a multi-output node: kept per output
            if node._retained is None:
                node._retained = {}
            node._retained[nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        node = self.grad_fn
        if node is None or node._retained is None:
            return False
        return self._output_nr is None or self._output_nr in node._retained

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn
        if node is not None and self._output_nr is not None:
            if node._hooks is None:  # one output of a multi-output node: hooks per output
                node._hooks = {}
            hooks = node._hooks.setdefault(self._output_nr, [])
        elif node is not None:
            if node._hooks is None:
                node._hooks = []
            hooks = node._hooks
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def zero_(self) -> Tensor:
        """Fill with zeros in place (``t[...] = 0``, with its rules: a leaf that requires grad
        only under ``no_grad``); bumps the version."""
        _ops.setitem(self, Ellipsis, 0)
        return self

    # --- in-place arithmetic: x += y (one helper, _inplace, for every in-place op) ------------
    def __iadd__(self, other):
        try:
            return _inplace(self, other, "add", _ops.add)
        except _operands.NotAnOperand:
            return NotImplemented

    def __isub__(self, other):
        try:
            return _inplace(self, other, "subtract", _ops.sub)
        except _operands.NotAnOperand:
            return NotImplemented

    def __imul__(self, other):
        try:
            return _inplace(self, other, "multiply", _ops.mul)
        except _operands.NotAnOperand:
            return NotImplemented

    def __itruediv__(self, other):
        try:
            return _inplace(self, other, "true_divide", _ops.div)
        except _operands.NotAnOperand:
            return NotImplemented

    # --- elementwise arithmetic (ops/elementwise.py) ------------------------------------------
    # An operand that is not one (a string, None, an object of another library) makes the
    # operator return NotImplemented: Python then tries the other operand's reflected method, and
    # raises its own "unsupported operand type(s)" TypeError (or, for ==, compares identity).
    def __add__(self, other):
        try:
            return _ops.add(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __radd__(self, other):
        try:
            return _ops.add(other, self)
        except _operands.NotAnOperand:
            return NotImplemented

    def __sub__(self, other):
        try:
            return _ops.sub(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __rsub__(self, other):
        try:
            return _ops.sub(other, self)
        except _operands.NotAnOperand:
            return NotImplemented

    def __mul__(self, other):
        try:
            return _ops.mul(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __rmul__(self, other):
        try:
            return _ops.mul(other, self)
        except _operands.NotAnOperand:
            return NotImplemented

    def __truediv__(self, other):
        try:
            return _ops.div(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __rtruediv__(self, other):
        try:
            return _ops.div(other, self)
        except _operands.NotAnOperand:
            return NotImplemented

    def __pow__(self, other):
        try:
            return _ops.pow(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __rpow__(self, other):
        try:
            return _ops.pow(other, self)
        except _operands.NotAnOperand:
            return NotImplemented

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __matmul__(self, other):
        try:
            return _ops.matmul(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __rmatmul__(self, other):
        try:
            return _ops.matmul(other, self)
        except _operands.NotAnOperand:
            return NotImplemented

    # --- comparisons and logic: no gradient ---------------------------------------------------
    def __eq__(self, other):
        try:
            return _ops.eq(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __ne__(self, other):
        try:
            return _ops.ne(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __lt__(self, other):
        try:
            return _ops.lt(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __le__(self, other):
        try:
            return _ops.le(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __gt__(self, other):
        try:
            return _ops.gt(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __ge__(self, other):
        try:
            return _ops.ge(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __and__(self, other):
        try:
            return _ops.logical_and(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

    def __or__(self, other):
        try:
            return _ops.logical_or(self, other)
        except _operands.NotAnOperand:
            return NotImplemented

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


def _inplace(t: Tensor, other, ufunc: str, op, kernel=None, what: str | None = None) -> Tensor:
    """``t op= other``: the one helper behind every in-place op (``ufunc`` names the array
    namespace's function, ``op`` the tinynet function of the same math; ``kernel(xp, array,
    other)``, when given, does the write instead of ``xp.<ufunc>``).

    * When the write must be recorded (:func:`write_is_recorded`: grad mode is on and ``t`` or
      ``other`` requires grad), ``op(t, other)`` is computed out of place and ``t`` takes its
      data and graph (:func:`rebind`): the object ``t`` is the result, but memory it shared (its
      views, a ``detach()``) is not written, so nothing a graph saved changes.
    * Otherwise (parameter updates under ``no_grad``, ``.grad`` tensors, data), the ufunc writes
      into ``t``'s array, as PyTorch does, and ``t``'s version goes up by one: a graph that saved
      ``t`` (or a view of it) then refuses to run backward on the new values.

    An operand that is not one raises ``NotAnOperand`` (a TypeError naming it; the ``x += y``
    operators turn it into NotImplemented, so Python raises its own error).
    """
    what = what or f"in-place {ufunc}"  # the name errors give (``add_``, ``+=`` ...)
    other = _operands.lift(other, t, what)
    if write_is_recorded(t, other, what):
        rebind(t, op(t, other), what)
        return t
    if isinstance(other, Tensor):
        if other._device is not t._device:
            raise RuntimeError(f"{what}: tensor on {t._device}, operand on {other._device}")
        other = other._data
    try:  # same_kind casting: float data into an integer tensor raises instead of truncating
        if kernel is not None:
            kernel(t._device.xp, t._data, other)
        else:
            getattr(t._device.xp, ufunc)(t._data, other, out=t._data)
    except (TypeError, ValueError) as exc:
        raise _plain(exc)(f"{what} on a tensor of shape {tuple(t.shape)} and dtype "
                          f"{t.dtype}: {exc}") from exc
    t._bump_version()
    return t


def write_is_recorded(t: Tensor, value, what: str) -> bool:
    """Whether an in-place write of ``value`` into ``t`` must be recorded in the graph: grad mode
    is on and ``t`` or ``value`` requires grad. Raises for a leaf that requires grad, as PyTorch
    does: it is what gradients are taken with respect to (update it under ``tn.no_grad()``)."""
    if not _autograd.is_grad_enabled():
        return False
    if t._requires_grad:
        if t.grad_fn is None:
            raise RuntimeError(f"{what}: a leaf tensor that requires grad is being used in an "
                               "in-place operation; update it inside tn.no_grad()")
        return True
    return isinstance(value, Tensor) and value._requires_grad


def rebind(t: Tensor, result: Tensor, what: str) -> None:
    """Make ``t`` the recorded ``result`` of an in-place op on it: its data, device, graph and
    version counter. The result must keep ``t``'s shape, and is cast to ``t``'s dtype when the
    cast is of the same kind (float64 into float32: yes; float into an integer tensor: no)."""
    if result.shape != t.shape:
        raise RuntimeError(f"{what}: the result has shape {tuple(result.shape)}, which does not "
                           f"match the shape {tuple(t.shape)} of the tensor written in place")
    if result.dtype != t.dtype:
        if not backend.host_namespace().can_cast(result.dtype, t.dtype, "same_kind"):
            raise TypeError(f"{what}: the result's dtype {result.dtype} can't be cast to the "
                            f"dtype {t.dtype} of the tensor written in place")
        result = _ops.cast(result, t.dtype)
    if result.grad_fn is None and result._requires_grad:
        # The out-of-place form handed back a leaf itself (copy_ of a leaf that requires grad):
        # t must become a recorded copy of it, not a second leaf sharing its memory.
        result = _ops.clone(result)
    t._data, t._device = result._data, result._device
    t.grad_fn, t._requires_grad = result.grad_fn, result._requires_grad
    t._output_nr = result._output_nr
    t._counter = result._counter


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
