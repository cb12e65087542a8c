"""The array namespace that backward formulas see under ``create_graph=True``.

A first-order backward runs with ``ctx.xp`` = the device's array namespace (NumPy/CuPy functions on
raw arrays). Under ``create_graph=True`` the engine runs the *same* backward with ``ctx.xp`` = this
module's :class:`TensorNamespace`, bound to the node's device, and the saved inputs and output as
Tensors: every name here has NumPy's signature and meaning, but is built from recorded tinynet ops,
so the gradient it computes can be differentiated again. Array *methods* and operators
(``g.sum(axis=0)``, ``g * out``, ``g.reshape(shape)``) need nothing here: Tensor has them with
NumPy's keywords.

What a backward may call, three kinds (:func:`names` lists them all; docs/autograd.md, section
11, has the table):

* differentiable functions: the op modules register theirs where they define them
  (``@tensor_namespace.register`` under the op's class: ``exp``, ``matmul``, ``clip`` ...); the
  rest of NumPy's common math is composed below from tinynet ops (``square``, ``power``, ``sum``,
  ``concatenate`` ...) or, where a composition would lose precision (``expm1``, ``log1p``,
  ``sinh`` ...), is a small op of its own whose backward is again written against ``ctx.xp``;
* constants of the derivative: functions whose result is piecewise constant (``sign``, ``floor``,
  comparisons, ``argmax``) and creation functions (``zeros``, ``ones_like`` ...) give Tensors that
  need no gradient;
* dtypes and numbers (``float64``, ``pi``, ``newaxis``), as in NumPy.

:func:`register` and :func:`register_constant` are how a user makes a function of their own
available; anything else raises an ``AttributeError`` that says how.
"""

from __future__ import annotations

import difflib
import math
from typing import ClassVar

from .. import backend
from ..autograd import Op
from ..tensor import Tensor

__all__ = ["TensorNamespace", "names", "register", "register_constant", "tensor_namespace",
           "unregister"]

# NumPy's dtypes and numbers: passed through unchanged (they are host metadata, on every device).
_PASSTHROUGH = frozenset({
    "bool_", "int8", "int16", "int32", "int64", "uint8", "float16", "float32", "float64",
    "complex64", "complex128", "dtype", "finfo", "iinfo", "result_type", "promote_types",
    "pi", "e", "inf", "nan", "newaxis"})

# Functions whose result is a constant of the derivative: run by the device's own array module on
# the raw data, the result wrapped as a Tensor that needs no gradient.
_CONSTANT_FUNCTIONS = (
    "sign", "signbit", "floor", "ceil", "rint", "round", "trunc", "isnan", "isinf", "isfinite",
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and",
    "logical_or", "logical_not", "logical_xor", "argmax", "argmin", "argsort", "heaviside")

# Names left out on purpose, and what to write instead.
_HINTS = {name: " An array to fill in place is not differentiable: writes into it (out[i] = ...) "
                "are not recorded. Build the result out of place (where, concatenate, stack), "
                "starting from zeros if needed." for name in ("empty", "empty_like")}

_LN2, _LN10 = math.log(2.0), math.log(10.0)


class TensorNamespace:
    """NumPy-named, differentiable functions on Tensors (see the module docstring).

    ``tensor_namespace`` is the unbound instance (for registering, and for functions that take
    their device from their arguments); the engine hands each node ``tensor_namespace.on(device)``,
    which also knows the device for ``zeros(shape)`` and the other creation functions.
    """

    name = "tensor"
    _registered: ClassVar[dict] = {}  # name -> "differentiable" or "constant" (shared by all)
    _bound: ClassVar[dict] = {}  # device -> the namespace bound to it

    def __init__(self, device=None):
        self.device = device

    def __repr__(self) -> str:
        return f"TensorNamespace({self.device or 'unbound'})"

    def on(self, device) -> TensorNamespace:
        """This namespace bound to ``device`` (cached): creation functions make tensors there."""
        bound = TensorNamespace._bound.get(device)
        if bound is None:
            bound = TensorNamespace._bound[device] = TensorNamespace(device)
        return bound

    def register(self, fn=None, *, name: str | None = None, replace: bool = False):
        """Make ``fn`` available as ``ctx.xp.<name>`` (default: its own name) under create_graph.

        ``fn`` must take NumPy's arguments for that name and be built from tinynet ops, so that
        its result is differentiable. Usable as a decorator; returns ``fn``. A name that is
        already taken raises ``ValueError`` unless ``replace=True``.
        """
        if fn is None:
            return lambda f: self.register(f, name=name, replace=replace)
        return _add(name or getattr(fn, "__name__", None), fn, "differentiable", replace)

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and friends probe for dunders: plain "no"
            raise AttributeError(name)
        if name in _PASSTHROUGH:
            return getattr(backend.host_namespace(), name)
        close = difflib.get_close_matches(name, names(), n=3)
        hint = _HINTS.get(name) or (f" Did you mean {' or '.join(repr(c) for c in close)}?"
                                    if close else "")
        raise AttributeError(
            f"'{name}' is not available to backward formulas under create_graph=True: there "
            f"ctx.xp is tinynet's tensor namespace, whose functions are recorded ops (so the "
            f"gradient can be differentiated again).{hint} Write it from the available functions "
            f"(tinynet.ops.namespace.names() lists them), or make it available: "
            f"tinynet.ops.namespace.register(fn, name='{name}') with fn built from tinynet ops, "
            f"or tinynet.ops.namespace.register_constant('{name}') if its result is a constant of "
            f"the derivative (a mask, an index). See docs/autograd.md, section 11.")

    # --- helpers for the functions below -------------------------------------------------------

    def _device_of(self, *args):
        for a in args:
            if isinstance(a, Tensor):
                return a.device
        if self.device is not None:
            return self.device
        for a in args:
            if hasattr(a, "dtype") and hasattr(a, "shape"):
                return backend.device_of(a)
        raise TypeError("this function needs a device: call it on a Tensor, or through "
                        "ctx.xp (the engine binds the namespace to the node's device)")

    def _constant(self, array, device) -> Tensor:
        if type(array) is not (device._array_type or device.array_type):
            array = device.xp.asarray(array)  # NumPy returns scalars for 0-d results
        return Tensor.wrap(array, device)

    def _tensor(self, x, device=None) -> Tensor:
        """``x`` as a Tensor: a Tensor as it is, a raw array or number as a constant."""
        if isinstance(x, Tensor):
            return x
        device = device or self._device_of(x)
        return self._constant(device.xp.asarray(x), device)


def _add(name, fn, kind: str, replace: bool, method: bool = False):
    """Put ``fn`` on the namespace as ``name``; ``method``: it takes the namespace as ``self``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"tensor namespace: a function needs a name that is an identifier, "
                         f"got {name!r}")
    if not callable(fn):
        raise TypeError(f"tensor namespace: '{name}' must be callable, got {type(fn).__name__}")
    if name in _PASSTHROUGH:
        raise ValueError(f"tensor namespace: '{name}' is NumPy's dtype or number, not a function")
    if name in TensorNamespace._registered and not replace:
        raise ValueError(f"tensor namespace: '{name}' is already available to backward formulas; "
                         f"pass replace=True to replace it")
    TensorNamespace._registered[name] = kind
    setattr(TensorNamespace, name, fn if method else staticmethod(fn))
    return fn


def _constant_function(name: str):
    """A method running the device's ``xp.<name>`` on raw data: its result needs no gradient."""

    def constant(self, *args, **kwargs):
        device = self._device_of(*args)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        return self._constant(getattr(device.xp, name)(*raw, **kwargs), device)

    constant.__name__ = constant.__qualname__ = name
    constant.__doc__ = f"``xp.{name}`` on the raw data: a constant of the derivative."
    return constant


tensor_namespace = TensorNamespace()
register = tensor_namespace.register


def register_constant(name: str, *, replace: bool = False) -> None:
    """Make ``xp.<name>`` available under create_graph as a constant of the derivative: the
    device's own function runs on the raw data and its result gets no gradient (right for
    piecewise-constant functions, masks and indices, e.g. ``floor``, ``argmax``)."""
    _add(name, _constant_function(name), "constant", replace, method=True)


def unregister(name: str) -> None:
    """Remove a function registered with :func:`register` or :func:`register_constant`."""
    if TensorNamespace._registered.pop(name, None) is None:
        raise KeyError(f"tensor namespace: '{name}' is not registered")
    delattr(TensorNamespace, name)


def names(kind: str | None = None) -> list[str]:
    """The functions backward formulas may call under create_graph, sorted; ``kind`` filters:
    ``"differentiable"`` or ``"constant"``. (Dtypes and numbers such as ``float64`` and ``pi``
    are available too.)"""
    return sorted(n for n, k in TensorNamespace._registered.items() if kind in (None, k))


for _name in _CONSTANT_FUNCTIONS:
    register_constant(_name)


# --- creation: constants on the namespace's device (NumPy's signatures and float64 default) -----

def _creator(name: str, like: bool):
    def create(self, *args, **kwargs):
        if like:
            device = self._device_of(args[0])
            args = (args[0].data if isinstance(args[0], Tensor) else args[0],) + args[1:]
        else:
            device = self._device_of()
        return self._constant(getattr(device.xp, name)(*args, **kwargs), device)

    create.__name__ = create.__qualname__ = name
    create.__doc__ = f"NumPy's ``{name}``, on the namespace's device: a constant."
    return create


for _name, _like in (("zeros", False), ("ones", False), ("full", False), ("eye", False),
                     ("arange", False), ("zeros_like", True), ("ones_like", True),
                     ("full_like", True)):
    _add(_name, _creator(_name, _like), "constant", False, method=True)


def _asarray(self, x, dtype=None):
    """A Tensor stays itself (cast, differentiably, if ``dtype`` differs); anything else becomes
    a constant Tensor on the namespace's device."""
    t = self._tensor(x)
    return t if dtype is None or t.dtype == dtype else t.astype(dtype)


_add("asarray", _asarray, "differentiable", False, method=True)


# --- elementwise math whose composition would lose precision: small ops of their own -----------

class NamespaceUfunc(Op):
    """Base of the namespace's one-input ops: forward is ``xp.<ufunc>(x)`` (exact values),
    backward multiplies ``g`` by the subclass's ``derivative(xp, x)``, written against ``ctx.xp``
    like every op's backward, so it is differentiable again."""

    ufunc = ""

    @staticmethod
    def forward(ctx, x):
        ctx.save_inputs(0)
        return getattr(ctx.xp, ctx.fn.ufunc)(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return g * ctx.fn.derivative(ctx.xp, x)

    @staticmethod
    def derivative(xp, x):
        raise NotImplementedError


class Expm1Op(NamespaceUfunc):
    """exp(x) - 1  ->  grad_x = g * exp(x)"""

    ufunc = "expm1"

    @staticmethod
    def derivative(xp, x):
        return xp.exp(x)


class Log1pOp(NamespaceUfunc):
    """log(1 + x)  ->  grad_x = g / (1 + x)"""

    ufunc = "log1p"

    @staticmethod
    def derivative(xp, x):
        return 1 / (1 + x)


class SinhOp(NamespaceUfunc):
    """sinh(x)  ->  grad_x = g * cosh(x)"""

    ufunc = "sinh"

    @staticmethod
    def derivative(xp, x):
        return xp.cosh(x)


class CoshOp(NamespaceUfunc):
    """cosh(x)  ->  grad_x = g * sinh(x)"""

    ufunc = "cosh"

    @staticmethod
    def derivative(xp, x):
        return xp.sinh(x)


class TanOp(NamespaceUfunc):
    """tan(x)  ->  grad_x = g / cos(x)^2"""

    ufunc = "tan"

    @staticmethod
    def derivative(xp, x):
        c = xp.cos(x)
        return 1 / (c * c)


class ArctanOp(NamespaceUfunc):
    """arctan(x)  ->  grad_x = g / (1 + x^2)"""

    ufunc = "arctan"

    @staticmethod
    def derivative(xp, x):
        return 1 / (1 + x * x)


class ArcsinOp(NamespaceUfunc):
    """arcsin(x)  ->  grad_x = g / sqrt(1 - x^2)"""

    ufunc = "arcsin"

    @staticmethod
    def derivative(xp, x):
        return 1 / xp.sqrt(1 - x * x)


class ArccosOp(NamespaceUfunc):
    """arccos(x)  ->  grad_x = -g / sqrt(1 - x^2)"""

    ufunc = "arccos"

    @staticmethod
    def derivative(xp, x):
        return -1 / xp.sqrt(1 - x * x)


class ArcsinhOp(NamespaceUfunc):
    """arcsinh(x)  ->  grad_x = g / sqrt(x^2 + 1)"""

    ufunc = "arcsinh"

    @staticmethod
    def derivative(xp, x):
        return 1 / xp.sqrt(x * x + 1)


class ArctanhOp(NamespaceUfunc):
    """arctanh(x)  ->  grad_x = g / (1 - x^2)"""

    ufunc = "arctanh"

    @staticmethod
    def derivative(xp, x):
        return 1 / (1 - x * x)


def _unary_op(op):
    def apply(x):
        if isinstance(x, Tensor):
            return op.apply(x)
        device = backend.device_of(x) if hasattr(x, "dtype") else backend.Device("cpu")
        return Tensor.wrap(device.xp.asarray(getattr(device.xp, op.ufunc)(x)), device)

    apply.__name__ = apply.__qualname__ = op.ufunc
    apply.__doc__ = f"``{op.ufunc}`` as a recorded op ({op.__name__}): {op.__doc__}"
    return apply


for _op in (Expm1Op, Log1pOp, SinhOp, CoshOp, TanOp, ArctanOp, ArcsinOp, ArccosOp, ArcsinhOp,
            ArctanhOp):
    register(_unary_op(_op))


# --- NumPy's other common functions, composed from tinynet ops -----------------------------------
# ``tensor_namespace._tensor`` turns a raw array (a saved constant) into a constant Tensor, so each
# function accepts what NumPy's would.

_t = tensor_namespace._tensor


def _binary(a, b):
    """Two operands for an arithmetic function: at least one of them a Tensor."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return a, b
    if hasattr(a, "shape"):
        return _t(a), b
    return a, _t(b)


@register
def add(a, b):
    a, b = _binary(a, b)
    return a + b


@register
def subtract(a, b):
    a, b = _binary(a, b)
    return a - b


@register
def multiply(a, b):
    a, b = _binary(a, b)
    return a * b


@register
def divide(a, b):
    a, b = _binary(a, b)
    return a / b


register(divide, name="true_divide")


@register
def power(a, b):
    a, b = _binary(a, b)
    return a ** b


@register
def negative(x):
    return -_t(x)


@register
def positive(x):
    return _t(x)


@register
def absolute(x):
    return abs(_t(x))


@register
def square(x):
    """x^2 as x * x (one op; its second derivative is 2)."""
    x = _t(x)
    return x * x


@register
def reciprocal(x):
    return 1 / _t(x)


@register
def exp2(x):
    return (_t(x) * _LN2).exp()


@register
def log2(x):
    return _t(x).log() / _LN2


@register
def log10(x):
    return _t(x).log() / _LN10


@register(name="sum")
def sum_(x, axis=None, keepdims=False):
    return _t(x).sum(axis=axis, keepdims=keepdims)


@register
def mean(x, axis=None, keepdims=False):
    return _t(x).mean(axis=axis, keepdims=keepdims)


@register
def amax(x, axis=None, keepdims=False):
    return _t(x).amax(axis=axis, keepdims=keepdims)


@register
def amin(x, axis=None, keepdims=False):
    return _t(x).amin(axis=axis, keepdims=keepdims)


register(amax, name="max")  # NumPy's max is amax (tinynet's x.max(dim) also returns indices)
register(amin, name="min")


@register
def var(x, axis=None, ddof=0, keepdims=False):
    return _t(x).var(axis=axis, correction=ddof, keepdims=keepdims)


@register
def std(x, axis=None, ddof=0, keepdims=False):
    return _t(x).std(axis=axis, correction=ddof, keepdims=keepdims)


@register
def reshape(x, shape):
    return _t(x).reshape(shape)


@register
def ravel(x):
    return _t(x).reshape(-1)


@register
def expand_dims(x, axis):
    x = _t(x)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = x.ndim + len(axes)
    shape = iter(x.shape)
    new = {a % ndim for a in axes}
    return x.reshape(tuple(1 if i in new else next(shape) for i in range(ndim)))


@register
def squeeze(x, axis=None):
    return _t(x).squeeze(axis=axis)


@register(name="copy")
def copy_(x):
    return _t(x).clone()


@register
def concatenate(arrays, axis=0):
    from .shape import cat  # noqa: PLC0415 - shape.py imports this module

    return cat([_t(a) for a in arrays], axis)


@register
def stack(arrays, axis=0):
    from .shape import stack as stack_  # noqa: PLC0415 - shape.py imports this module

    return stack_([_t(a) for a in arrays], axis)


@register
def outer(a, b):
    return _t(a).reshape(-1, 1) * _t(b).reshape(1, -1)


@register
def dot(a, b):
    """NumPy's dot for 1-D and 2-D operands (an inner product, or a matrix product)."""
    a, b = _t(a), _t(b)
    if a.ndim == 1 and b.ndim == 1:
        return (a * b).sum()
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"dot: the tensor namespace takes 1-D and 2-D operands, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}; use matmul for batches")
    return a @ b
