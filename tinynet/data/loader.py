"""``DataLoader``: epochs of shuffled batches, vectorised, seeded and resumable.

The model (docs/data.md): an *epoch* is one pass over all ``N`` samples in an order drawn when the
epoch starts (``iter(loader)``); it is cut into ``len(loader) = ceil(N / B)`` batches of ``B``
samples, the last one smaller when ``B`` does not divide ``N`` (or dropped, with
``drop_last=True``: then ``floor(N / B)`` batches). A batch never reaches into the next epoch.

How a batch is made: for array-backed datasets (``TensorDataset`` and subsets of it) the epoch's
order is moved once to the device the tensors live on, and each batch is one slice of it and one
fancy-index per stored tensor -- no Python loop over samples, and no host-to-device copy per batch
when the tensors already live on the training device. Other datasets are read sample by sample
and merged by ``collate_fn`` (default: stack).

Shuffles come from the loader's own ``tn.Generator`` and are drawn on the host, so a seed gives the
same batches on every device. ``state_dict()`` records the epoch, the position in it and the
generator, so a run resumed from a checkpoint sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterator

from .. import backend
from ..autograd import no_grad
from ..backend import Device, Generator
from ..creation import as_tensor
from ..tensor import Tensor
from .dataset import array_source, default_collate

_STATE_KEYS = ("num_samples", "batch_size", "shuffle", "drop_last")  # must match this loader


class DataLoader:
    """Iterate over ``dataset`` in batches, one epoch per ``for batch in loader``.

    Args:
        dataset: a ``Dataset`` (anything with ``__len__`` and ``__getitem__``).
        batch_size: samples per batch ``B`` (the last batch of an epoch may be smaller).
        shuffle: draw a fresh order at the start of every epoch.
        drop_last: drop the last batch of an epoch when it is smaller than ``B``.
        seed: seed of the loader's own generator. Give ``seed`` or ``generator``, not both; with
            neither, a shuffling loader seeds its generator from tinynet's default one
            (``tn.manual_seed``) when it is made.
        generator: a ``tn.Generator`` to draw the shuffles from.
        collate_fn: merges a list of samples into a batch. Given, every dataset is read sample by
            sample and this function makes the batch; left out, array-backed datasets are batched
            with one fancy-index per tensor and others with :func:`default_collate`.
        device: put every batch on this device. A ``TensorDataset`` already living there (see
            ``TensorDataset.to``) is indexed there, with no copy per batch.
        sampler: the order of each epoch instead of the loader's own (``shuffle`` must stay
            False): a ``tn.data.Sampler`` such as ``DistributedSampler``, or any iterable of
            dataset positions. Its state is part of ``state_dict()``.
        num_workers, pin_memory, persistent_workers: accepted so PyTorch code runs unchanged;
            batches are always made in this process (one vectorised index per tensor, nothing to
            spread over workers) and host memory is never pinned, so ``num_workers > 0`` and
            ``pin_memory=True`` only warn. ``persistent_workers=True`` needs ``num_workers > 0``,
            as in PyTorch.

    Example:
        >>> ds = tn.data.TensorDataset(tn.randn(10, 3), tn.arange(10))
        >>> loader = tn.data.DataLoader(ds, batch_size=4, shuffle=True, seed=0)
        >>> len(loader)
        3
        >>> [tuple(x.shape) for x, y in loader]
        [(4, 3), (4, 3), (2, 3)]
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 generator: Generator | None = None, collate_fn: Callable | None = None,
                 device=None, sampler=None, *, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__ (a "
                            f"tn.data.Dataset), got {type(dataset).__name__}")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"DataLoader: {name} must be True or False, got {flag!r}")
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative integer, got {seed!r}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"DataLoader: generator must be a tn.Generator, got "
                            f"{type(generator).__name__}")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: give seed= or generator=, not both")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got "
                            f"{type(collate_fn).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler= decides the order, so shuffle must be False "
                             "(a shuffling sampler, such as DistributedSampler, shuffles itself)")
        _check_worker_options(num_workers, pin_memory, persistent_workers)
        if generator is None:
            if seed is None and shuffle:
                # Seeded from the default stream, so tn.manual_seed(...) makes the run repeatable.
                seed = int(backend.default_generator.integers(0, 2**62, ()))
            generator = Generator(seed)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.collate_fn = collate_fn
        self.device = None if device is None else Device(device)
        self.sampler = sampler
        self._epoch = 0  # epochs started
        self._position = 0  # batches handed out in the current epoch
        self._order = None  # the current epoch's order: host int64 array of N positions
        self._epoch_state = None  # generator state before the current epoch's shuffle
        self._device_orders: dict = {}  # this epoch's order, once per device, as index tensors
        self._resume = False  # the next iter() continues the current epoch (after a load)

    # --- the epoch/batch model ----------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch: ``ceil(N / B)``, or ``floor(N / B)`` with ``drop_last``."""
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        """How many epochs have been started (1 while the first epoch runs)."""
        return self._epoch

    @property
    def position(self) -> int:
        """How many batches of the current epoch have been handed out."""
        return self._position

    def __iter__(self) -> Iterator:
        """Start the next epoch (drawing its order), or continue one restored by a load."""
        if self._resume:
            self._resume = False
        else:
            self._start_epoch()
        return self._batches(self._order, self._position)

    def _start_epoch(self) -> None:
        self._epoch_state = self.generator.get_state()
        self._order = self._draw_order()
        self._device_orders = {}
        self._epoch += 1
        self._position = 0

    def _draw_order(self):
        if self.sampler is not None:
            return _sampler_order(self.sampler)
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else backend.host_namespace().arange(n)

    def _batches(self, order, start: int) -> Iterator:
        source = array_source(self.dataset) if self.collate_fn is None else None
        b, n = self.batch_size, len(order)
        for i in range(start, len(self)):
            if self._order is not order:
                raise RuntimeError("DataLoader: a new epoch was started while this iterator was "
                                   "still in use; iterate over one epoch at a time")
            lo, hi = i * b, min(i * b + b, n)  # hi <= n: never past this epoch's samples
            batch = self._gather(source, order, lo, hi) if source else self._collate(order[lo:hi])
            self._position = i + 1
            yield batch

    def _gather(self, source, order, lo: int, hi: int) -> tuple:
        """One fancy-index per stored tensor, with this epoch's order already on its device."""
        tensors, index_map = source
        out = []
        with no_grad():  # a batch is data: never part of a graph reaching back into the dataset
            for t in tensors:
                rows = self._device_order(order, index_map, t.device)[lo:hi]
                out.append(_to(t[rows], self.device))
        return tuple(out)

    def _device_order(self, order, index_map, device: Device) -> Tensor:
        index = self._device_orders.get(device)
        if index is None:
            rows = order if index_map is None else index_map[order]
            # The one host-to-device copy of indices per epoch; batches slice it on the device.
            index = self._device_orders[device] = as_tensor(rows, device=device)
        return index

    def _collate(self, positions):
        samples = [self.dataset[int(p)] for p in positions]
        batch = (self.collate_fn or default_collate)(samples)
        return _to(batch, self.device)

    # --- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Epoch, position and generator state as plain data (``tn.save`` stores it).

        Loading it into a loader over the same dataset (``load_state_dict``) continues with
        exactly the batches this loader would have produced next.
        """
        return {
            "epoch": self._epoch,
            "position": self._position,
            "generator": self.generator.get_state(),
            "epoch_generator": self._epoch_state,
            "num_samples": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "sampler": self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; the next ``iter(loader)`` resumes where that loader was.

        Every field is checked before anything changes, so a bad state leaves the loader as it
        was.

        Raises:
            ValueError: the state comes from a loader with another dataset size, batch size,
                shuffle or drop_last setting (its batches could not be reproduced), or a field is
                missing or out of range (naming it: ``position`` must lie in
                ``0..len(loader)``, a generator state must be what ``Generator.get_state``
                returns, ...).
        """
        if not isinstance(state, dict):
            raise TypeError(f"DataLoader.load_state_dict expects the dict state_dict() returns, "
                            f"got {type(state).__name__}")
        mine = self.state_dict()
        missing = [key for key in mine if key not in state]
        if missing:
            raise ValueError(f"DataLoader.load_state_dict: the state lacks "
                             f"{', '.join(map(repr, missing))} (not a DataLoader.state_dict())")
        for key in _STATE_KEYS:
            if type(state[key]) is not type(mine[key]) or state[key] != mine[key]:
                raise ValueError(f"DataLoader.load_state_dict: the state has {key}={state[key]!r}, "
                                 f"this loader {key}={mine[key]!r}")
        epoch, position = state["epoch"], state["position"]
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"DataLoader.load_state_dict: 'epoch' must be a non-negative "
                             f"integer, got {epoch!r}")
        last = len(self) if epoch > 0 else 0  # no batch is handed out before the first epoch
        if not _is_int(position) or not 0 <= position <= last:
            raise ValueError(f"DataLoader.load_state_dict: 'position' must be an integer in "
                             f"0..{last} (batches handed out of epoch {epoch}, which has "
                             f"{len(self)}), got {position!r}")
        resume = epoch > 0 and position < len(self)
        # The interrupted epoch's order is redrawn from epoch_generator (None when there is none).
        checked = ("generator", "epoch_generator") if resume or state["epoch_generator"] else (
            "generator",)
        for key in checked:
            try:
                Generator().set_state(state[key])  # a scratch stream: checks, changes nothing
            except ValueError as exc:
                raise ValueError(f"DataLoader.load_state_dict: field {key!r}: {exc}") from None
        if state["sampler"] is not None and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])  # before the order is redrawn
        order = None
        if resume:
            self.generator.set_state(state["epoch_generator"])
            order = self._draw_order()
        self.generator.set_state(state["generator"])
        self._epoch, self._position = int(epoch), int(position)
        self._epoch_state = state["epoch_generator"]
        self._device_orders = {}
        self._order = order
        self._resume = resume

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, batches={len(self)}, epoch={self._epoch})")


def _check_worker_options(num_workers, pin_memory, persistent_workers) -> None:
    """PyTorch's worker and pinning options: checked as PyTorch checks them, then a warning for
    each one that asks for something tinynet does not do."""
    if not _is_int(num_workers) or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers must be a non-negative integer, got "
                         f"{num_workers!r}")
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers=True needs num_workers > 0 (as in "
                         "PyTorch)")
    ignored = [f"num_workers={num_workers}"] if num_workers else []
    ignored += ["pin_memory=True"] if pin_memory else []
    if ignored:
        verb = "has" if len(ignored) == 1 else "have"
        warnings.warn(f"DataLoader: {' and '.join(ignored)} {verb} no effect in tinynet: batches "
                      "are made in this process, one vectorised index per stored tensor (pass "
                      "device= to have them on the GPU)", UserWarning, stacklevel=3)


def _is_int(value) -> bool:
    """An integer, NumPy's included, but not a bool (``True`` is not a batch size)."""
    return (isinstance(value, numbers.Integral)
            and not isinstance(value, (bool, backend.host_namespace().bool_)))


def _sampler_order(sampler):
    """A sampler's epoch as a host int64 array (``Sampler.indices()``, or its iteration)."""
    if hasattr(sampler, "indices"):
        return sampler.indices()
    return backend.host_namespace().fromiter(iter(sampler), dtype="int64")


def _to(batch, device: Device | None):
    """``batch`` (a tensor, or tuples/lists/dicts of them) moved to ``device``."""
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch if batch.device is device else batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch
