"""Value domains for tinynet's hypothesis strategies: which values an input may take.

A :class:`Domain` is an interval, points to stay away from (the kink of ``relu``, the pole of
``1/x``) and, for ops whose gradient jumps at ties (``max``, ``maximum``), a grid of distinct
values. The named domains are in :data:`DOMAINS`; :func:`as_domain` resolves a name. The strategies
that draw from a domain are in ``strategies.py``.

Example:
    >>> from tinynet.testing import DOMAINS, Domain
    >>> DOMAINS["real"].replace(avoid=(0.0,), margin=0.1).allows(0.05)
    False
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


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


__all__ = ["DOMAINS", "Domain", "as_domain"]
