"""Hypothesis strategies for tinynet: shapes, dtypes, axes, indices, host arrays and Tensors.

Built on ``hypothesis.extra.numpy`` (``array_shapes``, ``mutually_broadcastable_shapes``,
``arrays``). Shapes are small on purpose: a full-Jacobian gradient check costs two forward passes
per input element, so the defaults stay at a few dozen elements per tensor. Which values an input
may take is a :class:`~tinynet.testing.domains.Domain` (``domains.py``).

* shapes: :func:`shapes`, :func:`broadcastable_shapes`, :func:`matmul_shapes`,
  :func:`conv_shapes`, :func:`pool_shapes`;
* arguments: :func:`dtypes`, :func:`axes`, :func:`reduction_kwargs`, :func:`index_arrays`;
* values: :func:`elements`, :func:`arrays` (host NumPy), :func:`tensors`, :func:`grad_outputs`
  (upstream gradients for given outputs), and :func:`to_tensor`, which moves a host array to a
  device keeping its memory layout.

Example:
    >>> from hypothesis import given
    >>> from tinynet.testing import tensors
    >>> @given(tensors(domain="positive", non_contiguous=True))
    ... def test_log_is_finite(x):
    ...     assert bool((x.log() == x.log()).all())
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn

from .domains import DOMAINS, Domain, as_domain

FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))

# --- shapes -------------------------------------------------------------------------------------


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes, 0-d and size-1 axes included (``hnp.array_shapes``)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1, max_side: int = 4, *, with_result: bool = False):
    """Tuples of ``num_shapes`` mutually broadcastable shapes.

    With ``with_result=True`` each draw is ``(input_shapes, result_shape)`` (hypothesis's
    ``BroadcastableShapes``), the shape broadcasting gives, which is the output shape of a
    broadcasting op and the shape its upstream gradient has.

    Example:
        >>> @given(broadcastable_shapes(2, with_result=True))
        ... def test_add_shape(drawn):
        ...     (sa, sb), result = drawn
        ...     assert (tn.zeros(sa) + tn.zeros(sb)).shape == result
    """
    drawn = hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side)
    return drawn if with_result else drawn.map(lambda result: result.input_shapes)


MATMUL_KINDS = ("1d@1d", "2d@2d", "1d@2d", "2d@1d", "batched")


def matmul_shapes(kind: str = "any", max_side: int = 4) -> st.SearchStrategy[tuple]:
    """Operand shapes ``(a_shape, b_shape)`` that ``a @ b`` accepts.

    Args:
        kind: one of ``"1d@1d"``, ``"2d@2d"``, ``"1d@2d"``, ``"2d@1d"``, ``"batched"`` (up to two
            broadcast batch dimensions, every side at most 2 so that a batch stays a few dozen
            elements), or ``"any"`` (all of them).
        max_side: the largest ``n``, ``k``, ``m`` of ``(n, k) @ (k, m)``.
    """
    if kind == "any":
        return st.one_of([matmul_shapes(k, max_side) for k in MATMUL_KINDS])
    if kind == "batched":
        return hnp.mutually_broadcastable_shapes(
            signature="(n,k),(k,m)->(n,m)", min_dims=1, max_dims=2,
            max_side=min(max_side, 2)).map(lambda r: r.input_shapes)
    forms = {"1d@1d": lambda n, k, m: ((k,), (k,)), "2d@2d": lambda n, k, m: ((n, k), (k, m)),
             "1d@2d": lambda n, k, m: ((k,), (k, m)), "2d@1d": lambda n, k, m: ((n, k), (k,))}
    if kind not in forms:
        raise ValueError(f"matmul_shapes: unknown kind {kind!r}; known: any, "
                         f"{', '.join(MATMUL_KINDS)}")
    return st.tuples(*[st.integers(1, max_side)] * 3).map(lambda d: forms[kind](*d))


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """The output length of a convolution or pooling along one axis (PyTorch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _fitting_sizes(kernel: int, padding: int, dilation: int, max_side: int):
    """Input lengths along one axis that give at least one output (and at most a few)."""
    low = max(1, dilation * (kernel - 1) + 1 - 2 * padding)
    return st.integers(low, low + max_side - 1)


def conv_shapes(kernel=(2, 2), stride: int = 1, padding: int = 0, dilation: int = 1,
                groups: int = 1, bias: bool = True, role: str = "conv",
                max_side: int = 3) -> st.SearchStrategy[tuple]:
    """Shapes for ``conv2d``: ``(N, C, H, W)`` inputs with ``N`` and ``C / groups`` in 1..2 and
    ``H``, ``W`` from the smallest size the kernel fits (padding included) up to ``max_side``
    more, so that full-Jacobian checks stay at a few dozen elements.

    ``role="conv"`` draws ``(x, w, b)`` (``(x, w)`` without ``bias``); ``"input_grad"`` draws
    ``(grad_out, w)`` and ``"weight_grad"`` draws ``(x, grad_out)``, the operands of conv2d's two
    backward convolutions.
    """
    kh, kw = kernel
    dims = st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2),
                     _fitting_sizes(kh, padding, dilation, max_side),
                     _fitting_sizes(kw, padding, dilation, max_side))

    def build(d):
        n, cg, og, h, w = d
        x = (n, cg * groups, h, w)
        wt = (og * groups, cg, kh, kw)
        g = (n, og * groups, conv_output_size(h, kh, stride, padding, dilation),
             conv_output_size(w, kw, stride, padding, dilation))
        return {"conv": (x, wt, (og * groups,)) if bias else (x, wt),
                "input_grad": (g, wt), "weight_grad": (x, g)}[role]
    if role not in ("conv", "input_grad", "weight_grad"):
        raise ValueError(f"conv_shapes: role must be conv, input_grad or weight_grad, got {role!r}")
    return dims.map(build)


def pool_shapes(kernel_size: int, stride: int, padding: int = 0, dilation: int = 1,
                max_side: int = 3) -> st.SearchStrategy[tuple[int, int, int, int]]:
    """``(N, C, H, W)`` input shapes a square pooling window fits, as in :func:`conv_shapes`."""
    side = _fitting_sizes(kernel_size, padding, dilation, max_side)
    return st.tuples(st.integers(1, 2), st.integers(1, 2), side, side)


# --- arguments: dtypes, axes, indices -----------------------------------------------------------


def dtypes() -> st.SearchStrategy[np.dtype]:
    """The floating dtypes tinynet computes in: float32 and float64."""
    return st.sampled_from(FLOAT_DTYPES)


def axes(ndim: int, *, allow_none: bool = True, allow_tuple: bool = True,
         negative: bool = True) -> st.SearchStrategy[int | tuple[int, ...] | None]:
    """``axis`` arguments valid for an ``ndim``-dimensional tensor: ``None`` (all axes), one axis,
    or a tuple of distinct axes (``()`` included: no axis reduced), negative axes included unless
    ``negative=False``."""
    choices = [st.none()] if allow_none else []
    if ndim > 0:
        choices.append(st.integers(-ndim if negative else 0, ndim - 1))
    if allow_tuple:
        tuples = hnp.valid_tuple_axes(ndim)
        choices.append(tuples if negative else tuples.map(lambda t: tuple(a % ndim for a in t)))
    if not choices:
        raise ValueError(f"axes: nothing to draw for ndim={ndim} with allow_none=False, "
                         "allow_tuple=False")
    return st.one_of(choices)


def reduction_kwargs(ndim: int, **axes_options) -> st.SearchStrategy[dict]:
    """``{"axis": ..., "keepdims": ...}`` for a reduction over an ``ndim``-dimensional tensor;
    the same dict works for tinynet (``tn.sum(x, **kw)``) and NumPy (``np.sum(a, **kw)``).
    ``axes_options`` go to :func:`axes`."""
    return st.fixed_dictionaries({"axis": axes(ndim, **axes_options), "keepdims": st.booleans()})


@st.composite
def index_arrays(draw, size, shape=None, *, repeats: bool | None = None,
                 negative: bool = True) -> np.ndarray:
    """Integer index arrays (host int64) into an axis of length ``size``.

    Args:
        size: the length of the indexed axis (an int or a strategy).
        shape: the index array's shape (a tuple or a strategy); by default 1-d, up to 5 long.
        repeats: True: some element is indexed at least twice (gradients of gathers must
            accumulate there), False: every element at most once, None: either.
        negative: also draw negative indices (``-1`` is the last element; a repeat may be
            written ``i`` once and ``i - size`` the other time).

    Example:
        >>> @given(tensors(shape=(4, 2)), st.data())
        ... def test_gather(x, data):
        ...     idx = tn.tensor(data.draw(index_arrays(4, repeats=True)))
        ...     check_gradients(lambda x: x[idx], x)
    """
    size = draw(size) if isinstance(size, st.SearchStrategy) else int(size)
    if size < 1:
        raise ValueError(f"index_arrays: size must be >= 1, got {size}")
    if shape is None:
        longest = min(5, size) if repeats is False else 5
        shape = shapes(1, 1, min_side=2 if repeats else 1, max_side=longest)
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    n = math.prod(shape)
    if repeats and n < 2:
        raise ValueError(f"index_arrays: repeats=True needs at least 2 indices, shape is {shape}")
    if repeats is False and n > size:
        raise ValueError(f"index_arrays: {n} distinct indices do not fit an axis of {size}")
    if repeats is False:
        flat = np.array(draw(st.permutations(range(size)))[:n], dtype=np.int64)
    else:
        flat = np.array(draw(st.lists(st.integers(0, size - 1), min_size=n, max_size=n)),
                        dtype=np.int64)
        if repeats and len(set(flat.tolist())) == n:  # no repeat drawn: copy one index onto another
            i, j = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
            flat[j] = flat[i]
    if negative:
        flip = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        flat = np.where(flip, flat - size, flat)
    return flat.reshape(shape)


# --- values -------------------------------------------------------------------------------------


def elements(domain: str | Domain = "real", dtype=np.float64, *, margin: float = 0.0,
             avoid: tuple[float, ...] | None = None) -> st.SearchStrategy[float]:
    """Single values from a domain, exactly representable in ``dtype``.

    Args:
        domain: a name from :data:`DOMAINS` or a :class:`Domain`.
        dtype: float32 or float64.
        margin: keep ``|x - p| >= margin`` for every ``p`` in ``avoid`` (default: 0), to stay off
            kinks such as relu's and abs's.
        avoid: the points ``margin`` applies to.
    """
    dom = as_domain(domain, margin, avoid)
    dtype = np.dtype(dtype)
    if dom.grid is not None:
        return st.sampled_from(dom.points(dtype))
    width = 8 * dtype.itemsize
    parts = []
    for a, b in dom.intervals():
        a, b = _inward(a, b, dtype)
        parts.append(st.floats(a, b, width=width, allow_nan=False, allow_infinity=False,
                               allow_subnormal=False))
    return st.one_of(parts)


def _inward(a: float, b: float, dtype) -> tuple[float, float]:
    """Round interval ends inward to values ``dtype`` represents exactly (hypothesis insists)."""
    lo, hi = dtype.type(a), dtype.type(b)
    if lo < a:
        lo = np.nextafter(lo, dtype.type(np.inf))
    if hi > b:
        hi = np.nextafter(hi, dtype.type(-np.inf))
    return float(lo), float(hi)


def _layouts(shape: tuple) -> list[str]:
    """The non-contiguous layouts that really are non-contiguous for ``shape``. A transpose of a
    shape with a single axis longer than 1 is still contiguous; one element never has a gap."""
    if math.prod(shape) <= 1:
        return []
    return ["strided"] + (["transposed"] if sum(s > 1 for s in shape) >= 2 else [])


@st.composite
def arrays(draw, shape, dtype=np.float64, domain: str | Domain = "real", *,
           margin: float = 0.0, avoid: tuple[float, ...] | None = None,
           non_contiguous: bool = False) -> np.ndarray:
    """Host NumPy arrays of ``shape`` (a tuple or a strategy) with values from ``domain``.

    ``dtype`` may be a strategy (``dtypes()``). ``non_contiguous=True`` returns a view that is
    not C-contiguous whenever the array has two or more elements: a transpose (all axes
    reversed) or every other element of a twice-as-long last axis, so ops meet the memory
    layouts a user's data may have. Pass it to :func:`to_tensor` to keep the layout on a device.
    """
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    dtype = np.dtype(draw(dtype) if isinstance(dtype, st.SearchStrategy) else dtype)
    dom = as_domain(domain, margin, avoid)
    layouts = _layouts(shape) if non_contiguous else []
    layout = draw(st.sampled_from(layouts)) if layouts else "contiguous"
    base_shape = {"contiguous": shape, "transposed": shape[::-1],
                  "strided": shape[:-1] + (2 * shape[-1],) if shape else shape}[layout]
    base = draw(hnp.arrays(dtype, base_shape, elements=elements(dom, dtype), unique=dom.unique))
    if layout == "transposed":
        return base.T
    if layout == "strided":
        return base[..., ::2]  # every other element of the last axis
    return base


def to_tensor(host: np.ndarray, dtype=None, device="cpu",
              requires_grad: bool = False) -> tn.Tensor:
    """A Tensor with the values and the memory layout of a host array.

    On ``"cpu"`` in the array's own dtype the Tensor shares the array (``tn.from_numpy``): same
    memory, same strides. Otherwise the data is copied to ``device``/``dtype`` and the layout
    rebuilt there: a transposed array (F-ordered) becomes a transposed device view, any other
    non-contiguous array every other element of a twice-as-long last axis. ``tn.tensor`` instead
    always makes a fresh contiguous copy, so an op would never meet a strided input.
    """
    dtype = host.dtype if dtype is None else np.dtype(dtype)
    dev = tn.Device(device)
    if dev.type == "cpu" and host.dtype == dtype:
        t = tn.from_numpy(host)
    elif host.flags.c_contiguous:
        t = tn.tensor(host, dtype=dtype, device=dev)
    elif host.flags.f_contiguous:  # a transpose: copy the contiguous base, transpose on the device
        t = tn.as_tensor(tn.tensor(host.T, dtype=dtype, device=dev).data.T)
    else:
        wide = np.zeros(host.shape[:-1] + (2 * host.shape[-1],), dtype=dtype)
        wide[..., ::2] = host
        t = tn.as_tensor(tn.tensor(wide, device=dev).data[..., ::2])
    t.requires_grad = requires_grad
    return t


@st.composite
def tensors(draw, shape=None, dtype=np.float64, domain: str | Domain = "real", device="cpu",
            requires_grad: bool = True, non_contiguous: bool = False, *, margin: float = 0.0,
            avoid: tuple[float, ...] | None = None) -> tn.Tensor:
    """tinynet Tensors with values from ``domain``.

    Args:
        shape: a tuple, a strategy of shapes, or None for :func:`shapes`'s defaults.
        dtype: float64 (the default: gradient checks need it), float32, or a strategy such as
            :func:`dtypes`.
        domain: a name from :data:`DOMAINS` or a :class:`Domain`.
        device: where the tensor lives ("cpu", "standin", "cuda").
        requires_grad: whether the tensor is a leaf that gradients flow to.
        non_contiguous: the tensor's data is a transposed or strided view whenever it has two
            or more elements (``x.data.flags.c_contiguous`` is False), on every device.
        margin, avoid: see :func:`elements`.

    Example:
        >>> @given(tensors(shape=(3,), domain="real", margin=0.1))   # |x| >= 0.1: off relu's kink
        ... def test_relu(x):
        ...     check_gradients(tn.relu, x)
    """
    shape = shapes() if shape is None else shape
    dtype = draw(dtype) if isinstance(dtype, st.SearchStrategy) else dtype
    host = draw(arrays(shape, dtype, domain, margin=margin, avoid=avoid,
                       non_contiguous=non_contiguous))
    return to_tensor(host, dtype, device, requires_grad)


def grad_outputs(outputs, domain: str | Domain = "real", *, non_contiguous: bool = False):
    """Upstream gradients for ``outputs`` (a Tensor, or a tuple/list of them): each of its
    output's shape, dtype and device, values from ``domain``, not requiring grad. Draws a Tensor
    for a Tensor and a tuple for a tuple.

    Example:
        >>> @given(tensors(shape=(2, 3)), st.data())
        ... def test_backward_runs(x, data):
        ...     y = x.tanh()
        ...     y.backward(data.draw(grad_outputs(y)))
    """
    if isinstance(outputs, tn.Tensor):
        return tensors(shape=tuple(outputs.shape), dtype=outputs.dtype, domain=domain,
                       device=outputs.device, requires_grad=False,
                       non_contiguous=non_contiguous)
    return st.tuples(*[grad_outputs(o, domain, non_contiguous=non_contiguous) for o in outputs])


__all__ = ["DOMAINS", "FLOAT_DTYPES", "MATMUL_KINDS", "Domain", "arrays", "as_domain", "axes",
           "broadcastable_shapes", "conv_output_size", "conv_shapes", "dtypes", "elements",
           "grad_outputs", "index_arrays", "matmul_shapes", "pool_shapes", "reduction_kwargs",
           "shapes", "tensors", "to_tensor"]
