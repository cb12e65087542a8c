"""What an op function does to its arguments before ``apply``: operands and dimensions.

* Operands: a Python number next to a tensor stays a number (it adopts the tensor's dtype, as in
  PyTorch); lists and host arrays become tensors (arrays only if already on the tensor's device:
  transfers are explicit); two tensors of different dtypes are promoted to a common one
  (:func:`result_dtype`: a float beats an integer, otherwise the wider type wins).
* Dimensions: PyTorch's ``dim``/``keepdim`` are the names; NumPy's ``axis``/``keepdims`` are
  accepted as aliases everywhere (:func:`dim_alias` resolves a pair and refuses two different
  values); :func:`normalize_dims` turns negative dims into a sorted tuple and checks the range.

Every op module uses these; ``tensor.py`` uses :func:`lift` for in-place arithmetic.
"""

from __future__ import annotations

import builtins
import numbers

from .. import backend
from ..tensor import Tensor

_INT_KINDS = "biu"

# --- operands -----------------------------------------------------------------------------------


def _scalar(value):
    """Python scalars stay Python scalars (they adopt the tensor's dtype); NumPy scalars become
    Python ones so that ``float32_tensor * np.float64(2)`` stays float32, as in PyTorch."""
    if isinstance(value, (bool, int, float)):
        return value if type(value) in (bool, int, float) else value.item()
    if isinstance(value, numbers.Number) and hasattr(value, "item"):
        return value.item()
    return None


def result_dtype(a, b):
    """PyTorch's promotion: a float beats an integer; otherwise the wider type wins."""
    if a == b:
        return a
    fa, fb = a.kind in "fc", b.kind in "fc"
    if fa != fb:
        return a if fa else b
    return backend.host_namespace().result_type(a, b)


class NotAnOperand(TypeError):
    """Raised when an op is given something that is not an operand (a string, None, an object of
    another library). The operators of ``Tensor`` turn it into ``NotImplemented``, so Python
    raises its own ``unsupported operand type(s)`` error (and ``t == None`` is False)."""


def lift(x, like: Tensor, op: str = "operand", *, exact: bool = True):
    """Make ``x`` something an op can take next to ``like``: a Tensor, or a Python scalar.

    Arrays are wrapped (they must already be on ``like``'s device: transfers are explicit). A
    Python integer next to an integer tensor must fit its dtype (``exact``; comparisons pass
    False: NumPy compares out-of-range integers exactly). ``op`` names the op in errors.
    """
    if isinstance(x, Tensor):
        return x
    s = _scalar(x)
    if s is not None:
        if exact and type(s) is int and like.dtype.kind in "iu":
            _check_fits(s, like.dtype, op)
        return s
    if isinstance(x, (list, tuple)):
        return Tensor(x, device=like.device)
    try:
        dev = backend.device_of(x)
    except TypeError:
        text = repr(x)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise NotAnOperand(f"{op}: unsupported operand of type {type(x).__name__} ({text}) next "
                           "to a tensor; expected a Tensor, a Python number, a list or an "
                           "array") from None
    if dev is not like.device:
        raise RuntimeError(f"an array on {dev} was combined with a tensor on {like.device}; move "
                           f"it explicitly with tn.tensor(array, device='{like.device}')")
    return Tensor.wrap(x, dev)


def _check_fits(value: int, dtype, op: str) -> None:
    """A Python integer combined with an integer tensor must be representable in its dtype."""
    info = backend.host_namespace().iinfo(dtype)
    if not info.min <= value <= info.max:
        raise OverflowError(f"{op}: the Python integer {value} does not fit the tensor's dtype "
                            f"{dtype} (range {info.min}..{info.max}); convert the tensor first, "
                            "e.g. t.to(tn.int64)")


def unary_operand(x) -> Tensor:
    """A Tensor argument as is; anything else (list, number, array) becomes a new tensor."""
    return x if isinstance(x, Tensor) else Tensor(x)


def binary_operands(a, b, op: str = "binary op", *, exact: bool = True):
    """The two operands of a binary op, lifted and promoted to a common dtype (``op`` names the
    op in errors; ``exact``: see :func:`lift`)."""
    # Fast paths for the common cases (every arithmetic operator comes through here): tensors of
    # one dtype, and a float tensor with a Python number.
    if isinstance(a, Tensor):
        tb = type(b)
        if tb is float or tb is int:
            if a.dtype.kind in "fc":
                return a, b
        elif isinstance(b, Tensor) and a.dtype == b.dtype:
            return a, b
    elif isinstance(b, Tensor) and type(a) in (float, int) and b.dtype.kind in "fc":
        return a, b
    if isinstance(a, Tensor):
        b = lift(b, a, op, exact=exact)
    elif isinstance(b, Tensor):
        a = lift(a, b, op, exact=exact)
    else:
        a = Tensor(a)
        b = lift(b, a, op, exact=exact)
    return promote(a, b)


def promote(a, b):
    """Bring two operands (Tensor or Python scalar, at least one Tensor) to a common dtype."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        da, db = a.dtype, b.dtype
        if da != db:
            dt = result_dtype(da, db)
            a = a if da == dt else a.astype(dt)
            b = b if db == dt else b.astype(dt)
        return a, b
    t, s, t_first = (a, b, True) if isinstance(a, Tensor) else (b, a, False)
    if isinstance(s, float) and t.dtype.kind in _INT_KINDS:
        t = t.astype(backend.get_default_dtype())  # int tensor * 0.5 -> float32, as PyTorch
    return (t, s) if t_first else (s, t)


# --- dimensions ---------------------------------------------------------------------------------


def dim_alias(op: str, dim, axis, default=None, names: tuple = ("dim", "axis")):
    """``dim``, or its NumPy alias ``axis`` when that is the one given (also for ``keepdim`` /
    ``keepdims`` with ``names=("keepdim", "keepdims")``). ``dim`` equal to ``default`` counts as
    not given; two different values raise, naming the op."""
    if axis is None or axis == dim:
        return dim
    if dim == default:
        return axis
    raise TypeError(f"{op}: got {names[0]}={dim!r} and {names[1]}={axis!r}; {names[1]} is NumPy's "
                    f"name for {names[0]}, pass only one of them")


def keepdim_alias(op: str, keepdim, keepdims) -> bool:
    if keepdims is None:  # the common case, without a call
        return bool(keepdim)
    return bool(dim_alias(op, keepdim, keepdims, False, ("keepdim", "keepdims")))


def normalize_dims(dim, ndim: int, op: str = "reduction"):
    """``None`` -> None (all dims); an int or a sequence -> a sorted tuple of non-negative dims."""
    if dim is None:
        return None
    if type(dim) is int and -ndim <= dim < ndim:  # the common case, checked cheaply
        return (dim % ndim,)
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} "
                             "dimension(s)")
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated dim in {dim}")
    if ndim == 0:
        return None  # a 0-d tensor accepts dim 0 / -1, as in PyTorch: reduce over nothing
    return tuple(sorted(out))


def one_dim(dim, ndim: int, op: str) -> int:
    """A single dim (an int) made non-negative, range-checked, naming the op."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -builtins.max(ndim, 1) <= dim < builtins.max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimension(s)")
    return dim % ndim if ndim else 0


def keepdim_shape(shape: tuple, dims) -> tuple:
    """The shape a reduction over ``dims`` has with keepdim=True."""
    if dims is None:
        return (1,) * len(shape)
    return tuple(1 if i in dims else s for i, s in enumerate(shape))
