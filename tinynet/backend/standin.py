"""The stand-in device: NumPy doing the math, CuPy's rules at the edges, GPU costs counted.

CI has no GPU, yet the GPU code path must be proven. Arrays on device ``"standin"`` behave like CuPy
arrays where it matters for correctness of the *code path*:

* they refuse implicit conversion to host NumPy arrays (``np.asarray(a)``, ``np.exp(a)`` and any
  other NumPy function called on them raise ``TypeError``), exactly like ``cupy.ndarray``;
* mixing them with host arrays in arithmetic or in an ``xp`` function raises, like CuPy;
* reductions return 0-d arrays, not NumPy scalars, like CuPy;
* out-of-range integer-array indices wrap around instead of raising (``a[idx]``, ``a[idx] = v``,
  ``add.at``, ``take``, ``take_along_axis``), as CuPy does: a bounds check that relies on NumPy
  raising passes on the CPU and silently reads the wrong element on a GPU;
* the explicit ways out are the same as CuPy's: ``.get()``, ``.item()``, ``.tolist()``.

So a stray ``np.`` call on device data fails in CI rather than on a user's GPU. The suite runs every
op on this device (see ``tests/conftest.py``). Inside ``tn.backend.count_calls()`` the stand-in
also reports its array calls (~ kernel launches) and host syncs (``counting.py`` says what counts).
"""

from __future__ import annotations

import operator
import types

import numpy as np

from . import counting
from .device import _ARRAY_DEVICES, Device
from .namespace import ArrayNamespace

_NO_HOST = (
    "implicit conversion of a device ('standin') array to a host NumPy array is not allowed, as on "
    "CuPy: move it explicitly with Tensor.cpu() (or .get() on the raw array)"
)
# Calls whose result size depends on the data: the host must read it (a sync on a GPU).
_HOST_SIZED = frozenset({"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract"})
_NO_KERNEL = frozenset({"empty", "empty_like"})  # allocation only


class StandinArray:
    """A NumPy array wrapped so that it cannot be silently treated as a host array."""

    __slots__ = ("_a",)

    def __init__(self, array: np.ndarray):
        self._a = array

    # --- refusals: the point of this class ---------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_NO_HOST)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise TypeError(f"numpy.{ufunc.__name__} called on a device array: {_NO_HOST}")

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} called on a device array: {_NO_HOST}")

    # --- explicit exits (as CuPy offers): each one is a host sync ----------------------------
    def get(self) -> np.ndarray:
        counting.sync("get")
        return self._a.copy()

    def item(self):
        counting.sync("item")
        return self._a.item()

    def tolist(self):
        counting.sync("tolist")
        return self._a.tolist()

    def __float__(self):
        counting.sync("float")
        return float(self._a)

    def __int__(self):
        counting.sync("int")
        return int(self._a)

    def __bool__(self):
        counting.sync("bool")
        return bool(self._a)

    def __index__(self):
        counting.sync("index")
        return operator.index(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        counting.sync("repr")
        return f"standin({self._a!r})"

    # --- array attributes ---------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StandinArray(self._a.T))

    def __getattr__(self, name):
        # Methods (sum, reshape, astype, ...) run on the wrapped array with arguments unwrapped.
        # Special names are not forwarded: NumPy would read ``__array_interface__`` and
        # ``__array_struct__`` to make a host view of the data behind ``__array__``'s back.
        if name.startswith("__"):
            raise AttributeError(f"standin arrays have no attribute {name!r}")
        attr = getattr(self._a, name)
        if callable(attr):
            return _wrap_callable(attr, name, self._a, f"ndarray.{name}")
        return _wrap(attr)

    def __getitem__(self, index):
        index = _unwrap(index, "indexing")
        gather = _has_array(index)
        if gather:
            index = _wrapped_indices(self._a.shape, index)
            if counting.counting():
                if _has_mask(index):
                    counting.sync("getitem[mask]")
                result = self._a[index]
                counting.array_call("getitem", result.nbytes)
                return _wrap(result)
        return _wrap(self._a[index])

    def __setitem__(self, index, value):
        index = _unwrap(index, "indexing")
        if _has_array(index):
            index = _wrapped_indices(self._a.shape, index)
            if counting.counting() and _has_mask(index) and isinstance(value, StandinArray):
                counting.sync("setitem[mask]")  # the number of selected elements is checked
        self._a[index] = _unwrap(value, "item assignment")
        if counting.counting():
            counting.array_call("setitem", _nbytes(self._a[index]))

    # DLPack has no "stand-in" device type. Exporting the wrapped array as CPU memory would hand
    # host consumers (np.from_dlpack, torch CPU) a zero-copy view that a CUDA array never gives.
    def __dlpack__(self, *args, **kwargs):
        raise BufferError(f"DLPack export of a device ('standin') array: {_NO_HOST}")

    def __dlpack_device__(self):
        raise BufferError(f"DLPack export of a device ('standin') array: {_NO_HOST}")


def _defers(other) -> bool:
    """``other`` (a tinynet Tensor, say) asks array operands to hand the operator over to it, as
    CuPy and NumPy do for a higher ``__array_priority__``: ``array + tensor`` is the tensor's."""
    return (not isinstance(other, (StandinArray, np.ndarray))
            and getattr(other, "__array_priority__", 0) > 0)


def _binary(op, name):
    def forward(self, other):
        if _defers(other):
            return NotImplemented
        result = op(self._a, _unwrap(other, name))
        counting.array_call(name, _nbytes(result))
        return _wrap(result)

    def reflected(self, other):
        if _defers(other):
            return NotImplemented
        result = op(_unwrap(other, name), self._a)
        counting.array_call(name, _nbytes(result))
        return _wrap(result)

    return forward, reflected


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv),
                   ("mod", operator.mod), ("pow", operator.pow), ("matmul", operator.matmul),
                   ("and", operator.and_), ("or", operator.or_), ("xor", operator.xor)]:
    _fwd, _ref = _binary(_op, _name)
    setattr(StandinArray, f"__{_name}__", _fwd)
    setattr(StandinArray, f"__r{_name}__", _ref)

for _name, _op in [("iadd", operator.iadd), ("isub", operator.isub), ("imul", operator.imul),
                   ("itruediv", operator.itruediv), ("ipow", operator.ipow)]:
    def _inplace(self, other, _op=_op, _name=_name):
        self._a = _op(self._a, _unwrap(other, _name))
        counting.array_call(_name, _nbytes(self._a))
        return self
    setattr(StandinArray, f"__{_name}__", _inplace)

for _name, _op in [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt),
                   ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge)]:
    setattr(StandinArray, f"__{_name}__", _binary(_op, _name)[0])

for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs),
                   ("invert", operator.invert)]:
    def _unary(self, _op=_op, _name=_name):
        result = _op(self._a)
        counting.array_call(_name, _nbytes(result))
        return _wrap(result)
    setattr(StandinArray, f"__{_name}__", _unary)

StandinArray.__hash__ = None


def _unwrap(value, where: str):
    """Standin -> NumPy for the wrapped call; a host ndarray here is a bug, as on CuPy."""
    if isinstance(value, StandinArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(f"{where}: a host NumPy array was mixed with device ('standin') arrays; "
                        "move it to the device explicitly (as CuPy requires)")
    if isinstance(value, tuple):
        return tuple(_unwrap(v, where) for v in value)
    if isinstance(value, list):
        return [_unwrap(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v, where) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy results -> standin arrays; NumPy scalars become 0-d arrays, as CuPy returns."""
    if isinstance(value, np.ndarray):
        return StandinArray(value)
    if isinstance(value, np.generic):
        return StandinArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _wrap_callable(func, name: str, owner=None, label: str | None = None):
    """``func`` (a NumPy function, or a method of the array ``owner``) on standin arrays;
    ``name`` is what the counters call it, ``label`` what error messages do."""
    label = label or name

    def call(*args, **kwargs):
        args, kwargs = _unwrap(args, label), _unwrap(kwargs, label)
        if name in _WRAPS_INDICES and owner is None:
            args = _WRAPS_INDICES[name](args, kwargs)
        result = func(*args, **kwargs)
        if counting.counting():
            _count(name, result, owner if owner is not None else (args[0] if args else None),
                   args, kwargs)
        return _wrap(result)

    call.__name__ = label
    return call


def _count(name: str, result, source, args: tuple, kwargs: dict) -> None:
    """Report one call to the counters: an array call if it wrote array memory, a sync if its
    result size needed the host."""
    if name in _HOST_SIZED or (name == "where" and len(args) + len(kwargs) == 1):
        counting.sync(name)
    if name in _NO_KERNEL:
        return
    results = result if isinstance(result, (tuple, list)) else (result,)
    out = kwargs.get("out")
    if out is not None:
        counting.array_call(name, sum(_nbytes(o) for o in out) if isinstance(out, tuple)
                            else _nbytes(out))
    elif any(_new_buffer(r, source) for r in results):
        counting.array_call(name, sum(_nbytes(r) for r in results if _new_buffer(r, source)))


def _nbytes(value) -> int:
    """Bytes of an array result (0 for anything else)."""
    value = getattr(value, "_a", value)
    return int(getattr(value, "nbytes", 0))


def _new_buffer(value, source) -> bool:
    """Whether a call's result is memory the call wrote (not a view, not its input returned)."""
    if isinstance(value, np.generic):
        return True  # a reduction to one value
    return isinstance(value, np.ndarray) and value is not source and value.flags.owndata


# --- CuPy's index rule: integer-array indices wrap around -----------------------------------------

def _has_array(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


def _has_mask(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, np.ndarray) and p.dtype == np.bool_ for p in parts)


def _wrapped_indices(shape: tuple, index):
    """``index`` with every integer-array part taken modulo the length of the axis it indexes
    (CuPy's behaviour: it never raises for an out-of-range index array); basic parts (ints,
    slices, None, ``...``) and boolean masks are left as they are."""
    parts = list(index) if isinstance(index, tuple) else [index]
    for i, part in enumerate(parts):
        if isinstance(part, list):
            as_array = np.asarray(part)
            if as_array.dtype.kind in "iub":
                parts[i] = as_array
    consumed = sum(p.ndim if isinstance(p, np.ndarray) and p.dtype == np.bool_ else
                   0 if p is None or p is Ellipsis else 1 for p in parts)
    axis = 0
    for i, part in enumerate(parts):
        if part is Ellipsis:
            axis += len(shape) - consumed
        elif isinstance(part, np.ndarray) and part.dtype == np.bool_:
            axis += part.ndim
        elif part is not None:
            if (isinstance(part, np.ndarray) and part.dtype.kind in "iu" and axis < len(shape)
                    and shape[axis] > 0):
                parts[i] = part % shape[axis]
            axis += 1
    return tuple(parts) if isinstance(index, tuple) else parts[0]


def _axis_indices(axis_position: int):
    """For ``take(a, indices, axis=None)``, ``take_along_axis(a, indices, axis)`` and
    ``put_along_axis(a, indices, values, axis)``: the arguments with ``indices`` wrapped modulo
    the axis length (the size when ``axis`` is None), as CuPy does."""
    def wrap(args: tuple, kwargs: dict) -> tuple:
        a, indices = args[0], args[1]
        axis = args[axis_position] if len(args) > axis_position else kwargs.get("axis")
        n = a.size if axis is None else a.shape[axis]
        if isinstance(indices, np.ndarray) and indices.dtype.kind in "iu" and n > 0:
            return (a, indices % n, *args[2:])
        return args
    return wrap


_WRAPS_INDICES = {"take": _axis_indices(2), "take_along_axis": _axis_indices(2),
                  "put_along_axis": _axis_indices(3)}


class _Ufunc:
    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        result = self._ufunc(*_unwrap(args, self.__name__), **_unwrap(kwargs, self.__name__))
        counting.array_call(self.__name__, sum(_nbytes(r) for r in result)
                            if isinstance(result, tuple) else _nbytes(result))
        return _wrap(result)

    def at(self, a, index, b=None):
        a = _unwrap(a, "ufunc.at")
        index = _wrapped_indices(a.shape, _unwrap(index, "ufunc.at"))
        self._ufunc.at(a, index, *(() if b is None else (_unwrap(b, "ufunc.at"),)))
        counting.array_call(f"{self.__name__}.at", _nbytes(a[index]) if counting.counting() else 0)

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        if callable(attr):
            return _wrap_callable(attr, f"{self.__name__}.{name}")
        return attr


class _Namespace:
    """``numpy`` with every function taking and returning standin arrays."""

    ndarray = StandinArray

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, np.ufunc):
            value = _Ufunc(attr)
        elif isinstance(attr, types.ModuleType):
            value = _Namespace(attr)
        elif callable(attr) and not isinstance(attr, type):
            value = _wrap_callable(attr, name, label=f"{self._module.__name__}.{name}")
        else:
            value = attr  # dtypes, constants
        setattr(self, name, value)
        return value


namespace = _Namespace(np)


def from_host(array: np.ndarray) -> StandinArray:
    """The explicit host -> device copy."""
    counting.upload()
    return StandinArray(np.array(array, copy=True))


class StandinDevice(Device, kind="standin"):
    """``Device("standin")``: NumPy arrays behind CuPy's rules (see the module docstring)."""

    __slots__ = ()

    def _namespace(self) -> ArrayNamespace:
        return ArrayNamespace(namespace, "standin")

    def from_host(self, host: np.ndarray) -> StandinArray:
        return from_host(host)

    def synchronize(self) -> None:
        counting.sync("synchronize")


_ARRAY_DEVICES[StandinArray] = Device("standin")
