"""Hypothesis strategies for tinynet: shapes, dtypes, value domains, host arrays and Tensors.

Built on ``hypothesis.extra.numpy`` (``array_shapes``, ``mutually_broadcastable_shapes``,
``arrays``). Shapes are small on purpose: a full-Jacobian gradient check costs two forward passes
per input element, so the defaults stay at a few dozen elements per tensor.

A :class:`Domain` says which values an input may take: an interval, points to stay away from (the
kink of ``relu``, the pole of ``1/x``) and, for ops whose gradient jumps at ties (``max``,
``maximum``), a grid of distinct values. The named domains are in :data:`DOMAINS`.

Example:
    >>> from hypothesis import given
    >>> from tinynet.testing import tensors
    >>> @given(tensors(domain="positive"))
    ... def test_log_is_finite(x):
    ...     assert bool((x.log() == x.log()).all())
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn

FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))


@dataclass(frozen=True)
class Domain:
    """The values one input may take.

    Attributes:
        lo, hi: the closed interval values are drawn from.
        avoid: points to keep away from: kinks (``relu`` at 0), poles (``1/x`` at 0), thresholds.
        margin: the smallest allowed distance ``|x - p|`` to each point ``p`` in ``avoid``.
        grid: when set, values lie on the grid ``(k + phase) * grid``. Powers of two are exact in
            float32 and float64. Two inputs with different phases never tie.
        phase: offset of the grid, in units of ``grid`` (0 <= phase < 1).
        unique: no two elements of one tensor are equal (needs ``grid``): keeps ``max``/``min``
            and ``std`` away from ties and zero variance.
    """

    lo: float = -2.0
    hi: float = 2.0
    avoid: tuple[float, ...] = ()
    margin: float = 0.0
    grid: float | None = None
    phase: float = 0.0
    unique: bool = False

    def __post_init__(self):
        if not self.lo <= self.hi:
            raise ValueError(f"Domain: lo={self.lo} must not exceed hi={self.hi}")
        if self.unique and self.grid is None:
            raise ValueError("Domain: unique=True needs a grid (distinct grid points cannot tie)")

    def replace(self, **changes) -> Domain:
        """A copy with fields changed: ``DOMAINS["real"].replace(avoid=(0.0,), margin=0.1)``."""
        return dataclasses.replace(self, **changes)

    def allows(self, value: float) -> bool:
        """Whether ``value`` is in the interval and at least ``margin`` from each avoided point."""
        return self.lo <= value <= self.hi and all(abs(value - p) >= self.margin
                                                   for p in self.avoid)

    def intervals(self) -> list[tuple[float, float]]:
        """The interval with the open balls of radius ``margin`` around avoided points cut out."""
        pieces = [(self.lo, self.hi)]
        if self.margin > 0:
            for p in sorted(self.avoid):
                cut = []
                for a, b in pieces:
                    if a < p - self.margin:
                        cut.append((a, min(b, p - self.margin)))
                    if b > p + self.margin:
                        cut.append((max(a, p + self.margin), b))
                pieces = cut
        if not pieces:
            raise ValueError(f"{self}: the margins around {self.avoid} leave no values")
        return pieces

    def points(self, dtype=np.float64) -> list[float]:
        """The grid values allowed by this domain (grid domains only), exact in ``dtype``."""
        if self.grid is None:
            raise ValueError("Domain.points: this domain has no grid")
        first = math.ceil(self.lo / self.grid - self.phase)
        last = math.floor(self.hi / self.grid - self.phase)
        values = [float(np.dtype(dtype).type((k + self.phase) * self.grid))
                  for k in range(first, last + 1)]
        values = [v for v in values if self.allows(v)]
        if not values:
            raise ValueError(f"{self}: no grid point lies in the domain")
        return values


DOMAINS: dict[str, Domain] = {
    # A symmetric interval: exp, tanh, sin ... stay well inside float32 range.
    "real": Domain(-2.0, 2.0),
    # log, sqrt, pow's base: 0 is a pole or a branch point; 0.25 keeps central differences accurate.
    "positive": Domain(0.25, 3.0),
    # divisors: 1/x has a pole at 0.
    "nonzero": Domain(-3.0, 3.0, avoid=(0.0,), margin=0.25),
    # inside (-1, 1), away from the ends where atanh, arcsin ... blow up.
    "unit": Domain(-0.9, 0.9),
    # pairwise distinct values (a grid of 1/16): max/min/std have no ties and no zero variance.
    "distinct": Domain(-2.0, 2.0, grid=1 / 16, unique=True),
}


def as_domain(domain: str | Domain, margin: float = 0.0,
              avoid: tuple[float, ...] | None = None) -> Domain:
    """Resolve a domain name (see :data:`DOMAINS`), optionally adding a margin around ``avoid``
    (default: around 0, the kink of relu and abs)."""
    if isinstance(domain, str):
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
        domain = DOMAINS[domain]
    if margin > 0:
        points = (0.0,) if avoid is None else tuple(avoid)
        domain = domain.replace(avoid=tuple(domain.avoid) + points,
                                margin=max(domain.margin, margin))
    return domain


# --- shapes and dtypes --------------------------------------------------------------------------


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes, 0-d and size-1 axes included (``hnp.array_shapes``)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1,
                         max_side: int = 4) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """Tuples of ``num_shapes`` mutually broadcastable shapes
    (``hnp.mutually_broadcastable_shapes``)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda result: result.input_shapes)


def dtypes() -> st.SearchStrategy[np.dtype]:
    """The floating dtypes tinynet computes in: float32 and float64."""
    return st.sampled_from(FLOAT_DTYPES)


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


@st.composite
def arrays(draw, shape, dtype=np.float64, domain: str | Domain = "real", *,
           margin: float = 0.0, avoid: tuple[float, ...] | None = None,
           non_contiguous: bool = False) -> np.ndarray:
    """Host NumPy arrays of ``shape`` (a tuple or a strategy) with values from ``domain``.

    ``non_contiguous=True`` returns a strided view (a transpose, or every other column) instead of
    a fresh contiguous array, so ops meet the memory layouts a user's data may have.
    """
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    dom = as_domain(domain, margin, avoid)
    elems = elements(dom, dtype)
    layout = "contiguous"
    if non_contiguous and len(shape) >= 1:
        layout = "transposed" if len(shape) >= 2 and draw(st.booleans()) else "strided"
    base_shape = {"contiguous": shape, "transposed": shape[::-1],
                  "strided": shape[:-1] + (2 * shape[-1],) if shape else shape}[layout]
    base = draw(hnp.arrays(np.dtype(dtype), base_shape, elements=elems, unique=dom.unique))
    if layout == "transposed":
        return base.T
    if layout == "strided":
        return base[..., ::2]  # every other element of the last axis
    return base


@st.composite
def tensors(draw, shape=None, dtype=np.float64, domain: str | Domain = "real", device="cpu",
            requires_grad: bool = True, non_contiguous: bool = False, *, margin: float = 0.0,
            avoid: tuple[float, ...] | None = None) -> tn.Tensor:
    """tinynet Tensors with values from ``domain``.

    Args:
        shape: a tuple, a strategy of shapes, or None for :func:`shapes`'s defaults.
        dtype: float64 (the default: gradient checks need it) or float32.
        domain: a name from :data:`DOMAINS` or a :class:`Domain`.
        device: where the tensor lives ("cpu", "standin", "cuda").
        requires_grad: whether the tensor is a leaf that gradients flow to.
        non_contiguous: build the tensor on a transposed/strided view of the data (on "cpu" the
            Tensor keeps the view; other devices copy it).
        margin, avoid: see :func:`elements`.

    Example:
        >>> @given(tensors(shape=(3,), domain="real", margin=0.1))   # |x| >= 0.1: off relu's kink
        ... def test_relu(x):
        ...     check_gradients(tn.relu, x)
    """
    shape = shapes() if shape is None else shape
    host = draw(arrays(shape, dtype, domain, margin=margin, avoid=avoid,
                       non_contiguous=non_contiguous))
    return tn.tensor(host, dtype=dtype, device=device, requires_grad=requires_grad)


__all__ = ["DOMAINS", "FLOAT_DTYPES", "Domain", "arrays", "as_domain", "broadcastable_shapes",
           "dtypes", "elements", "shapes", "tensors"]
