"""Samplers: the order of dataset positions a ``DataLoader`` walks through in one epoch.

A sampler decides *which* samples an epoch visits and in what order; the loader cuts that order
into batches. ``DataLoader(shuffle=...)`` has its own order (a permutation from its generator, or
``0 .. N-1``); ``DataLoader(sampler=...)`` takes the sampler's instead.

:class:`DistributedSampler` (PyTorch's semantics) gives each rank of a data-parallel job its shard
of one epoch. For epoch ``e`` every rank draws the same permutation of ``0 .. N-1`` from the seed
``seed + e``, pads it (repeating its first positions) to a multiple of the world size ``W`` -- or
cuts it down to one with ``drop_last`` -- and rank ``r`` takes positions ``r, r + W, r + 2W, ...``.
So the shards are disjoint, together they are the whole (padded) epoch, every rank has the same
number of samples (and of batches, so no rank waits on a batch the others do not have), and
``set_epoch(e)`` gives a new permutation every epoch, the same on every rank.

Read next: ``loader.py``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator

from ..backend import Generator, host_namespace

_SAMPLER_STATE_KEYS = ("num_samples", "num_replicas", "shuffle", "drop_last")


class Sampler:
    """Base class: an epoch's order of dataset positions.

    Subclasses define :meth:`indices` (the whole epoch as a host int64 array, which the loader
    slices into batches without a Python loop) and ``__len__``; iterating yields the positions as
    ints, as PyTorch's samplers do. ``state_dict``/``load_state_dict`` let a loader resume.
    """

    def indices(self):
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class DistributedSampler(Sampler):
    """Rank ``rank``'s shard of each epoch's permutation (``torch.utils.data.DistributedSampler``).

    Args:
        dataset: anything with ``__len__``.
        num_replicas: the world size ``W`` (default: the process group's, or 1 without one).
        rank: this process's rank (default: the process group's, or 0).
        shuffle: a new permutation every epoch (``set_epoch``); ``False``: ``0 .. N-1``.
        seed: epoch ``e``'s permutation comes from ``seed + e``; the same on every rank.
        drop_last: cut the epoch to a multiple of ``W`` instead of padding it.

    With ``N`` samples each rank gets ``len(sampler) = ceil(N / W)`` of them (``floor(N / W)``
    with ``drop_last``); padding repeats the epoch's first ``ceil(N / W) * W - N`` positions.

    Example:
        >>> sampler = tn.data.DistributedSampler(dataset, num_replicas=2, rank=0, seed=0)
        >>> loader = tn.data.DataLoader(dataset, batch_size=32, sampler=sampler)
        >>> for epoch in range(10):
        ...     sampler.set_epoch(epoch)    # tn.train.fit does this for you
        ...     for x, y in loader: ...
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from ..distributed.group import rank_and_size  # noqa: PLC0415 - data sits below it

            group_rank, group_size = rank_and_size()
            num_replicas = group_size if num_replicas is None else num_replicas
            rank = group_rank if rank is None else rank
        num_replicas = _integer("num_replicas", num_replicas, 1, "a positive")
        if not _is_integer(rank) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}] for "
                             f"num_replicas={num_replicas}, got {rank!r}")
        rank = int(rank)
        seed = _integer("seed", seed, 0, "a non-negative")
        n = len(dataset)
        if drop_last and n < num_replicas:
            raise ValueError(f"DistributedSampler: drop_last with {n} samples and "
                             f"{num_replicas} replicas leaves every rank without a sample")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_last = bool(drop_last)
        self.epoch = 0
        if self.drop_last:
            self.num_samples = n // num_replicas  # per rank
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas  # the padded (or cut) epoch

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation from now on (call it before each epoch, on every
        rank; without it every epoch repeats the same order)."""
        self.epoch = _integer("epoch", epoch, 0, "a non-negative", "DistributedSampler.set_epoch")

    def epoch_order(self):
        """The whole epoch, every rank's shard interleaved: ``total_size`` host int64 positions
        (the permutation of ``0 .. N-1``, padded or cut)."""
        n = len(self.dataset)
        if self.shuffle:
            order = Generator(self.seed + self.epoch).permutation(n)  # the same on every rank
        else:
            order = host_namespace().arange(n)
        if self.total_size > n:  # pad by repeating the first positions (as often as needed)
            reps = math.ceil(self.total_size / n)
            order = host_namespace().tile(order, reps)
        return order[:self.total_size]

    def indices(self):
        """This rank's positions for the current epoch: ``epoch_order()[rank::num_replicas]``."""
        return self.epoch_order()[self.rank:self.total_size:self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict:
        """The epoch and seed, and the settings a resumed sampler must share. The rank is not
        part of it: every rank may load rank 0's state (a checkpoint is written by rank 0)."""
        return {"epoch": self.epoch, "seed": self.seed, "num_samples": len(self.dataset),
                "num_replicas": self.num_replicas, "shuffle": self.shuffle,
                "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``epoch`` and ``seed``.

        Raises:
            ValueError: the state comes from a sampler over another number of samples or
                replicas, or with another shuffle/drop_last setting (its shards would differ).
        """
        mine = self.state_dict()
        for key in _SAMPLER_STATE_KEYS:
            if state.get(key) != mine[key]:
                raise ValueError(f"DistributedSampler.load_state_dict: the state has "
                                 f"{key}={state.get(key)!r}, this sampler {key}={mine[key]!r}")
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])

    def __repr__(self) -> str:
        return (f"DistributedSampler({len(self.dataset)} samples, rank {self.rank} of "
                f"{self.num_replicas}, {self.num_samples} per rank, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _integer(name: str, value, low: int, kind: str, where: str = "DistributedSampler") -> int:
    """``value`` as an int, or a ValueError naming ``name`` (``kind``: "a positive", ...)."""
    if not _is_integer(value) or value < low:
        raise ValueError(f"{where}: {name} must be {kind} integer, got {value!r}")
    return int(value)
