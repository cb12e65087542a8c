"""The stand-in device: NumPy doing the math, CuPy's rules at the edges.

CI has no GPU, yet the GPU code path must be proven. Arrays on device ``"standin"`` behave like CuPy
arrays where it matters for correctness of the *code path*:

* they refuse implicit conversion to host NumPy arrays (``np.asarray(a)``, ``np.exp(a)`` and any
  other NumPy function called on them raise ``TypeError``), exactly like ``cupy.ndarray``;
* mixing them with host arrays in arithmetic or in an ``xp`` function raises, like CuPy;
* reductions return 0-d arrays, not NumPy scalars, like CuPy;
* the explicit ways out are the same as CuPy's: ``.get()``, ``.item()``, ``.tolist()``.

So a stray ``np.`` call on device data fails in CI rather than on a user's GPU. The suite runs every
op on this device (see ``tests/conftest.py``).
"""

from __future__ import annotations

import operator
import types

import numpy as np

_NO_HOST = (
    "implicit conversion of a device ('standin') array to a host NumPy array is not allowed, as on "
    "CuPy: move it explicitly with Tensor.cpu() (or .get() on the raw array)"
)


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

    # --- explicit exits (as CuPy offers) -----------------------------------------------------
    def get(self) -> np.ndarray:
        return self._a.copy()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
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
            return _wrap_callable(attr, f"ndarray.{name}")
        return _wrap(attr)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index, "indexing")])

    def __setitem__(self, index, value):
        self._a[_unwrap(index, "indexing")] = _unwrap(value, "item assignment")

    # DLPack has no "stand-in" device type. Exporting the wrapped array as CPU memory would hand
    # host consumers (np.from_dlpack, torch CPU) a zero-copy view that a CUDA array never gives.
    def __dlpack__(self, *args, **kwargs):
        raise BufferError(f"DLPack export of a device ('standin') array: {_NO_HOST}")

    def __dlpack_device__(self):
        raise BufferError(f"DLPack export of a device ('standin') array: {_NO_HOST}")


def _binary(op, name):
    def forward(self, other):
        return _wrap(op(self._a, _unwrap(other, name)))

    def reflected(self, other):
        return _wrap(op(_unwrap(other, name), self._a))

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
        return self
    setattr(StandinArray, f"__{_name}__", _inplace)

for _name, _op in [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt),
                   ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge)]:
    setattr(StandinArray, f"__{_name}__", _binary(_op, _name)[0])

for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs),
                   ("invert", operator.invert)]:
    setattr(StandinArray, f"__{_name}__", lambda self, _op=_op: _wrap(_op(self._a)))

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


def _wrap_callable(func, name):
    def call(*args, **kwargs):
        return _wrap(func(*_unwrap(args, name), **_unwrap(kwargs, name)))

    call.__name__ = name
    return call


class _Ufunc:
    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _wrap(self._ufunc(*_unwrap(args, self.__name__), **_unwrap(kwargs, self.__name__)))

    def at(self, a, index, b=None):
        args = (_unwrap(index, "ufunc.at"),) + (() if b is None else (_unwrap(b, "ufunc.at"),))
        self._ufunc.at(_unwrap(a, "ufunc.at"), *args)

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        return _wrap_callable(attr, f"{self.__name__}.{name}") if callable(attr) else attr


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
            value = _wrap_callable(attr, f"{self._module.__name__}.{name}")
        else:
            value = attr  # dtypes, constants
        setattr(self, name, value)
        return value


namespace = _Namespace(np)


def from_host(array: np.ndarray) -> StandinArray:
    """The explicit host -> device copy."""
    return StandinArray(np.array(array, copy=True))
