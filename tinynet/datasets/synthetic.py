"""Generated datasets: spirals, moons, blobs (classification) and a regression set.

Each is made on the host from a seeded :class:`tinynet.Generator`: the same ``seed`` gives the same
points on every machine and device. Features are float32, class labels int64, regression targets
float32 of shape (N, 1) (the shape of a ``Linear(D, 1)`` output, so ``MSELoss`` needs no reshape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..backend.random import Generator, default_generator
from .base import to_dataset


def _generator(seed: int | None, generator: Generator | None) -> Generator:
    """``generator`` if given, else a fresh stream from ``seed``; ``seed=None``: the default stream
    (so ``tn.manual_seed`` governs it)."""
    if generator is not None:
        return generator
    return Generator(seed) if seed is not None else default_generator


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_nonnegative(name: str, value: float) -> None:
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _split_counts(n: int, parts: int) -> list[int]:
    """``n`` items in ``parts`` groups as evenly as possible (the first groups get one more)."""
    return [n // parts + (k < n % parts) for k in range(parts)]


def _finish(x: np.ndarray, y: np.ndarray, shuffle: bool, rng: Generator, device):
    if shuffle:
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
    return to_dataset(x.astype(np.float32), y, device=device)


def spirals(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2, seed: int | None = 0, *,
            shuffle: bool = True, generator: Generator | None = None, device=None):
    """Interleaved spiral arms in 2-D, one per class (not linearly separable).

    Arm ``k`` has points at radius ``r`` in [0, 1] and angle ``4k + 4r`` plus Gaussian noise of
    standard deviation ``noise`` on the angle, i.e. ``(r sin t, r cos t)``.

    Args:
        n_samples: total number of points, split as evenly as possible between the classes.
        n_classes: number of arms (classes).
        noise: standard deviation of the angle noise (radians).
        seed: seed of a private random stream; ``None`` uses tinynet's default stream.
        shuffle: shuffle the samples (otherwise they are ordered by class).
        generator: a :class:`tinynet.Generator` to draw from instead of ``seed``.
        device: where the tensors live (default: tinynet's default device).

    Returns:
        ``TensorDataset(X, y)``: X float32 (n_samples, 2), y int64 (n_samples,) in 0..n_classes-1.

    Example:
        >>> x, y = tn.datasets.spirals(300, n_classes=3, seed=0).tensors
    """
    _check_positive("n_samples", n_samples)
    _check_positive("n_classes", n_classes)
    _check_nonnegative("noise", noise)
    rng = _generator(seed, generator)
    xs, ys = [], []
    for k, n in enumerate(_split_counts(n_samples, n_classes)):
        r = np.linspace(0.0, 1.0, n)
        t = np.linspace(4.0 * k, 4.0 * (k + 1), n) + noise * rng.normal((n,), np.float64)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))  # (n, 2)
        ys.append(np.full(n, k, dtype=np.int64))
    return _finish(np.concatenate(xs), np.concatenate(ys), shuffle, rng, device)


def moons(n_samples: int = 200, noise: float = 0.1, seed: int | None = 0, *, shuffle: bool = True,
          generator: Generator | None = None, device=None):
    """Two interleaving half circles in 2-D (binary classification).

    Class 0 lies on ``(cos t, sin t)`` and class 1 on ``(1 - cos t, 0.5 - sin t)`` for ``t`` in
    [0, pi]; Gaussian noise of standard deviation ``noise`` is added to both coordinates.

    Args:
        n_samples: total number of points (class 0 gets ``n_samples // 2``, class 1 the rest).
        noise: standard deviation of the Gaussian noise on the coordinates.
        seed, shuffle, generator, device: as in :func:`spirals`.

    Returns:
        ``TensorDataset(X, y)``: X float32 (n_samples, 2), y int64 (n_samples,) in {0, 1}.
    """
    _check_positive("n_samples", n_samples)
    _check_nonnegative("noise", noise)
    rng = _generator(seed, generator)
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    t_outer = np.linspace(0.0, math.pi, n_outer)
    t_inner = np.linspace(0.0, math.pi, n_inner)
    x = np.concatenate([
        np.stack([np.cos(t_outer), np.sin(t_outer)], axis=1),
        np.stack([1.0 - np.cos(t_inner), 0.5 - np.sin(t_inner)], axis=1),
    ])  # (N, 2)
    x = x + noise * rng.normal(x.shape, np.float64)
    y = np.concatenate([np.zeros(n_outer, np.int64), np.ones(n_inner, np.int64)])
    return _finish(x, y, shuffle, rng, device)


def blobs(n_samples: int = 300, centers: int | Sequence[Sequence[float]] = 3,
          cluster_std: float | Sequence[float] = 1.0, n_features: int = 2,
          center_box: tuple[float, float] = (-10.0, 10.0), seed: int | None = 0, *,
          shuffle: bool = True, generator: Generator | None = None, device=None):
    """Isotropic Gaussian clusters, one class per cluster.

    Args:
        n_samples: total number of points, split as evenly as possible between the clusters.
        centers: the number of clusters (their centres are drawn uniformly in ``center_box``), or
            the centres themselves, shape (n_centers, n_features) (then ``n_features`` is ignored).
        cluster_std: the standard deviation of every cluster, or one per cluster.
        n_features: dimension of the points when ``centers`` is a number.
        center_box: the (low, high) bounds of randomly drawn centres.
        seed, shuffle, generator, device: as in :func:`spirals`.

    Returns:
        ``TensorDataset(X, y)``: X float32 (n_samples, n_features), y int64 (n_samples,), the
        index of each point's cluster.
    """
    _check_positive("n_samples", n_samples)
    rng = _generator(seed, generator)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        _check_positive("centers", centers)
        _check_positive("n_features", n_features)
        low, high = center_box
        means = rng.uniform((int(centers), n_features), np.float64, low, high)
    else:
        means = np.asarray(centers, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"centers must be a count or an array (n_centers, n_features), "
                             f"got shape {means.shape}")
    n_centers, dim = means.shape
    stds = np.asarray(cluster_std, dtype=np.float64)
    if stds.ndim == 0:
        stds = np.full(n_centers, stds)
    elif stds.shape != (n_centers,):
        raise ValueError(f"cluster_std must be a number or one value per centre ({n_centers}), "
                         f"got shape {stds.shape}")
    if not np.all(stds >= 0):
        raise ValueError(f"cluster_std must be >= 0, got {cluster_std!r}")
    xs, ys = [], []
    for k, n in enumerate(_split_counts(n_samples, n_centers)):
        xs.append(means[k] + stds[k] * rng.normal((n, dim), np.float64))  # (n, D)
        ys.append(np.full(n, k, dtype=np.int64))
    return _finish(np.concatenate(xs), np.concatenate(ys), shuffle, rng, device)


def regression(n_samples: int = 200, n_features: int = 1, noise: float = 0.1,
               function: str = "linear", seed: int | None = 0, *,
               generator: Generator | None = None, device=None):
    """A regression set: inputs uniform in [-1, 1], targets a known function plus Gaussian noise.

    ``function="linear"``: ``y = X @ w + b`` with ``w`` (n_features,) and ``b`` drawn from the
    standard normal distribution by the same stream (so with ``noise=0`` the targets are exactly
    affine in X, and least squares recovers ``w`` and ``b``). ``function="sine"``:
    ``y = sum_j sin(pi * x_j)``, a smooth non-linear target (one period across the input range).

    Args:
        n_samples: number of samples.
        n_features: number of input features.
        noise: standard deviation of the Gaussian noise added to the targets.
        function: ``"linear"`` or ``"sine"``.
        seed, generator, device: as in :func:`spirals`.

    Returns:
        ``TensorDataset(X, y)``: X float32 (n_samples, n_features), y float32 (n_samples, 1).
    """
    _check_positive("n_samples", n_samples)
    _check_positive("n_features", n_features)
    _check_nonnegative("noise", noise)
    if function not in ("linear", "sine"):
        raise ValueError(f"function must be 'linear' or 'sine', got {function!r}")
    rng = _generator(seed, generator)
    x = rng.uniform((n_samples, n_features), np.float64, -1.0, 1.0)  # (N, D)
    if function == "linear":
        w = rng.normal((n_features,), np.float64)
        b = rng.normal((), np.float64)
        y = x @ w + b  # (N,)
    else:
        y = np.sin(math.pi * x).sum(axis=1)  # (N,)
    y = y + noise * rng.normal((n_samples,), np.float64)
    return to_dataset(x.astype(np.float32), y.astype(np.float32).reshape(-1, 1), device=device)
