"""Data pipeline: datasets, the epoch/batch loader, and train/validation splits.

``dataset.py`` (``Dataset``, ``TensorDataset``, ``Subset``) -> ``loader.py`` (``DataLoader``: one
shuffle per epoch, ``ceil(N / B)`` batches, each one fancy-index per stored tensor, resumable) ->
``split.py`` (``random_split``, ``KFold``); ``sampler.py`` (``DistributedSampler``: each rank's
shard of an epoch, for ``DataLoader(sampler=...)``). Built-in datasets live in
``tinynet.datasets``; the training loop that consumes loaders in ``tinynet.train``. Guide:
docs/data.md.
"""

from .dataset import Dataset, Subset, TensorDataset, default_collate
from .loader import DataLoader
from .sampler import DistributedSampler, Sampler
from .split import KFold, random_split, stratified_split

__all__ = [
    "DataLoader", "Dataset", "DistributedSampler", "KFold", "Sampler", "Subset", "TensorDataset",
    "default_collate", "random_split", "stratified_split",
]
