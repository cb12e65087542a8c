"""Datasets: the ``Dataset`` protocol, array-backed ``TensorDataset``, index views (``Subset``).

A dataset is anything with ``__len__`` and ``__getitem__(i)`` returning one sample. The loader
(``loader.py``) treats two kinds differently:

* array-backed datasets -- a ``TensorDataset``, or a ``Subset`` (of a ``Subset`` ...) of one -- are
  batched with one fancy-index per stored tensor; ``__getitem__`` is never called per sample;
* any other dataset is read one sample at a time and the samples are merged by a collate function
  (:func:`default_collate` stacks them).

Read next: ``loader.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import backend
from ..autograd import no_grad
from ..creation import as_tensor, tensor
from ..ops import stack
from ..tensor import Tensor


class Dataset:
    """Base class of map-style datasets: ``len(ds)`` samples, ``ds[i]`` the i-th one.

    Example:
        >>> class Squares(tn.data.Dataset):
        ...     def __len__(self):
        ...         return 10
        ...     def __getitem__(self, i):
        ...         return tn.tensor([float(i)]), tn.tensor(float(i * i))
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Samples are rows of tensors sharing their first dimension: ``ds[i] = (x[i], y[i])``.

    The tensors are kept as given (NumPy arrays are wrapped without a copy, onto the default
    device), so a dataset built from tensors on a GPU stays there and is batched there.

    Args:
        *tensors: tensors (or arrays) with the same length ``N`` along their first dimension.

    Example:
        >>> ds = tn.data.TensorDataset(tn.randn(100, 4), tn.randint(0, 3, (100,)))
        >>> x, y = ds[0]
        >>> ds_gpu = ds.to("cuda")   # the whole dataset resident on the GPU
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        tensors = tuple(as_tensor(t) for t in tensors)
        for i, t in enumerate(tensors):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; samples are rows, so every "
                                 "tensor needs a first dimension")
        lengths = [t.shape[0] for t in tensors]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: tensors differ in their first dimension {lengths}")
        self.tensors: tuple[Tensor, ...] = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int):
        return tuple(t[index] for t in self.tensors)

    @property
    def device(self):
        """The device of the first tensor (all of them, as made by ``to``)."""
        return self.tensors[0].device

    def to(self, device) -> TensorDataset:
        """A new dataset with every tensor on ``device`` (one transfer per tensor, now)."""
        with no_grad():
            return TensorDataset(*(t.to(device) for t in self.tensors))

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
        return f"TensorDataset({shapes}, device='{self.device}')"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in order: ``Subset(ds, idx)[i] = ds[idx[i]]``.

    A subset of an array-backed dataset is array-backed too: the loader maps a batch's positions
    through ``indices`` on the host and fancy-indexes the stored tensors once per batch.

    Args:
        dataset: the dataset to view.
        indices: sample indices in ``[0, len(dataset))`` (a list, range, host array or CPU tensor).
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = host_indices(indices, len(dataset), "Subset")

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {type(self.dataset).__name__} of {len(self.dataset)})"


def host_indices(indices, n: int, where: str):
    """``indices`` as a 1-d host int64 array, each checked to lie in ``[0, n)``."""
    xp = backend.host_namespace()
    if isinstance(indices, Tensor):
        indices = indices.cpu().numpy()
    elif isinstance(indices, range):
        indices = xp.arange(indices.start, indices.stop, indices.step)
    arr = xp.asarray(indices)
    if arr.size == 0:
        return xp.zeros(0, dtype=xp.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must be a 1-d sequence of integers, got "
                        f"{arr.dtype} of shape {arr.shape}")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= n:
        bad = low if low < 0 else high
        raise IndexError(f"{where}: index {bad} is out of range for a dataset of {n} samples")
    return arr.astype(xp.int64)


def array_source(dataset):
    """``(tensors, host_index_map)`` when ``dataset`` is array-backed, else ``None``.

    ``host_index_map`` (a host int64 array, or ``None`` for the identity) turns positions in
    ``dataset`` into rows of ``tensors``; nested subsets compose their indices here, on the host.
    """
    index_map = None
    while isinstance(dataset, Subset):
        index_map = dataset.indices if index_map is None else dataset.indices[index_map]
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset):
        return dataset.tensors, index_map
    return None


def default_collate(samples: Sequence):
    """Merge a list of samples into a batch: tensors are stacked along a new first dimension,
    tuples/lists and dicts are merged field by field, numbers and host arrays become tensors.

    Example:
        >>> x, y = tn.data.default_collate([(tn.zeros(3), 1), (tn.ones(3), 0)])
        >>> x.shape, y.tolist()
        ((2, 3), [1, 0])
    """
    first = samples[0]
    if isinstance(first, Tensor):
        _check_same_shape(samples)
        with no_grad():  # a batch is data, not part of a graph
            return stack(list(samples))
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: samples have different numbers of fields")
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    _check_same_shape(samples)
    try:
        return tensor(list(samples))
    except TypeError as exc:
        raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; "
                        "pass collate_fn= to the DataLoader") from exc


def _check_same_shape(samples: Sequence) -> None:
    """Samples stacked into one batch must agree in type and shape; say which ones do not."""
    def kind(sample) -> tuple:
        if isinstance(sample, Tensor):
            return type(sample).__name__, tuple(sample.shape)
        return type(sample).__name__, backend.host_namespace().shape(sample)

    first = kind(samples[0])
    odd = next((i for i, sample in enumerate(samples) if kind(sample) != first), None)
    if odd is not None:
        (name, shape), (name0, shape0) = kind(samples[odd]), first
        raise ValueError(f"default_collate (the DataLoader's collate_fn): sample {odd} of the "
                         f"batch has shape {shape} ({name}), sample 0 has shape {shape0} "
                         f"({name0}); samples batched together must match: pad or crop them in "
                         "the dataset, or pass collate_fn= to the DataLoader")
