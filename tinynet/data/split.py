"""Splitting a dataset: ``random_split`` (train/validation/test), ``stratified_split`` (the same,
class by class) and ``KFold`` (cross-validation folds).

Every split shuffles before splitting, from a seeded ``tn.Generator`` (``seed=``/``generator=``,
else tinynet's default stream, ``tn.manual_seed``), and all index work happens on the host.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from .. import backend
from ..backend import Generator
from ..tensor import Tensor
from .dataset import Subset


def random_split(dataset, lengths: Sequence, seed: int | None = None,
                 generator: Generator | None = None) -> list[Subset]:
    """Shuffle ``dataset``'s indices, then cut them into disjoint subsets covering it.

    Args:
        dataset: the dataset to split (``N = len(dataset)`` samples).
        lengths: sample counts summing to ``N``, or fractions summing to 1. Fractions become
            ``floor(N * f)`` samples each, and the samples left over go one each to the subsets
            in turn, from the first (PyTorch's rule).
        seed: seed of a private generator for the shuffle.
        generator: a ``tn.Generator`` to draw the shuffle from (default: tinynet's default one).

    Example:
        >>> ds = tn.data.TensorDataset(tn.arange(10))
        >>> train, val = tn.data.random_split(ds, [0.8, 0.2], seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    n = len(dataset)
    counts = _counts(lengths, n, "random_split")
    order = _generator(seed, generator, "random_split").permutation(n)
    stops = _cumsum(counts)
    return [Subset(dataset, order[stop - count:stop]) for count, stop in zip(counts, stops)]


def stratified_split(dataset, fractions: Sequence[float], labels, seed: int | None = None,
                     generator: Generator | None = None) -> list[Subset]:
    """Like :func:`random_split` with fractions, applied to each class on its own, so every subset
    keeps the class proportions of ``labels``.

    Each class is cut by PyTorch's rounding rule; the classes take turns in which subset gets
    their left-over samples, so a subset's size is within one sample per class of
    ``fraction * N``.

    Args:
        dataset: the dataset to split.
        fractions: one fraction per subset, summing to 1.
        labels: the class of every sample (a sequence, host array or tensor of length ``N``).
        seed, generator: as in :func:`random_split`.
    """
    n = len(dataset)
    fractions = [float(f) for f in fractions]
    if not fractions or not math.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"stratified_split: fractions must be >= 0 and sum to 1, got {fractions}")
    labels = _host_labels(labels, n, "stratified_split")
    xp = backend.host_namespace()
    order = _generator(seed, generator, "stratified_split").permutation(n)
    parts: list[list] = [[] for _ in fractions]
    for turn, label in enumerate(xp.unique(labels)):
        members = order[labels[order] == label]  # this class, in shuffled order
        counts = _fraction_counts(fractions, len(members), start=turn)
        for part, count, stop in zip(parts, counts, _cumsum(counts)):
            part.append(members[stop - count:stop])
    return [Subset(dataset, xp.concatenate(part) if part else []) for part in parts]


class KFold:
    """K-fold cross-validation: ``n_splits`` disjoint validation folds that together cover every
    sample; each round trains on the other folds.

    Fold sizes differ by at most one (the first ``N % n_splits`` folds hold one more). With
    ``labels`` given to :meth:`split`, folds are stratified: each holds every class in its
    proportion, within one sample per class.

    Args:
        n_splits: number of folds ``k`` (at least 2).
        shuffle: shuffle the samples before cutting folds (otherwise folds are contiguous).
        seed: seed for the shuffle; the same seed gives the same folds on every ``split`` call.
            Without one, each call draws from tinynet's default generator.

    Example:
        >>> for train_idx, val_idx in tn.data.KFold(n_splits=3, seed=0).split(9):
        ...     print(len(train_idx), len(val_idx))
        6 3
        6 3
        6 3
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = True, seed: int | None = None):
        if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
            raise ValueError(f"KFold: n_splits must be an integer >= 2, got {n_splits!r}")
        self.n_splits = n_splits
        self.shuffle = bool(shuffle)
        self.seed = seed

    def get_n_splits(self) -> int:
        return self.n_splits

    def split(self, n, labels=None) -> Iterator[tuple]:
        """Yield ``(train_idx, val_idx)`` per fold: sorted host int64 index arrays.

        Args:
            n: the number of samples, or a dataset (its length).
            labels: optional class of every sample, for stratified folds.
        """
        n = n if isinstance(n, int) else len(n)
        k = self.n_splits
        if n < k:
            raise ValueError(f"KFold: cannot cut {n} samples into {k} folds")
        xp = backend.host_namespace()
        if self.shuffle:
            gen = Generator(self.seed) if self.seed is not None else backend.default_generator
            order = gen.permutation(n)
        else:
            order = xp.arange(n)
        if labels is None:
            sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
            folds = [order[stop - size:stop] for size, stop in zip(sizes, _cumsum(sizes))]
        else:
            labels = _host_labels(labels, n, "KFold.split")
            # Group the classes (stable: the shuffle survives within each class), then deal the
            # samples round-robin: every class is spread over the folds within one sample.
            order = order[xp.argsort(labels[order], kind="stable")]
            folds = [order[i::k] for i in range(k)]
        for i in range(k):
            train = xp.concatenate([f for j, f in enumerate(folds) if j != i])
            yield xp.sort(train), xp.sort(folds[i])

    def __repr__(self) -> str:
        return f"KFold(n_splits={self.n_splits}, shuffle={self.shuffle}, seed={self.seed})"


def _counts(lengths: Sequence, n: int, where: str) -> list[int]:
    lengths = list(lengths)
    if not lengths:
        raise ValueError(f"{where}: lengths is empty")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 for x in lengths):
        raise ValueError(f"{where}: lengths must be non-negative numbers, got {lengths}")
    if math.isclose(sum(lengths), 1.0) and not all(isinstance(x, int) for x in lengths):
        return _fraction_counts(lengths, n)
    if not all(isinstance(x, int) or float(x).is_integer() for x in lengths):
        raise ValueError(f"{where}: lengths must be sample counts summing to {n} or fractions "
                         f"summing to 1, got {lengths}")
    counts = [int(x) for x in lengths]
    if sum(counts) != n:
        raise ValueError(f"{where}: lengths sum to {sum(counts)}, the dataset has {n} samples")
    return counts


def _fraction_counts(fractions, n: int, start: int = 0) -> list[int]:
    """``floor(n * f)`` each, then the left-over samples one each in turn (from ``start``)."""
    if any(f > 1 for f in fractions):
        raise ValueError(f"fractions must lie in [0, 1], got {list(fractions)}")
    counts = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(counts)):
        counts[(start + i) % len(counts)] += 1
    return counts


def _cumsum(counts) -> list[int]:
    out, total = [], 0
    for c in counts:
        total += c
        out.append(total)
    return out


def _generator(seed, generator, where: str) -> Generator:
    if seed is not None and generator is not None:
        raise ValueError(f"{where}: give seed= or generator=, not both")
    if generator is not None:
        return generator
    return Generator(seed) if seed is not None else backend.default_generator


def _host_labels(labels, n: int, where: str):
    if isinstance(labels, Tensor):
        labels = labels.cpu().numpy()
    labels = backend.host_namespace().asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{where}: labels must have shape ({n},), got {labels.shape}")
    return labels
