"""What every dataset here shares: checksums of files, and turning host arrays into a dataset.

Datasets are prepared on the host with NumPy (parsing files, generating points), then handed to
:class:`tinynet.data.TensorDataset` as tensors, one fancy-index away from a batch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..creation import as_tensor
from ..data import TensorDataset


class ChecksumError(RuntimeError):
    """A file's checksum is not the one it should have (corrupted or truncated)."""


def digest(data: bytes, algorithm: str = "sha256") -> str:
    """The hex digest of ``data`` (``"sha256"`` or ``"md5"``)."""
    if algorithm == "md5":
        # MD5 only because it is what the MNIST mirrors publish; it guards against corruption.
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.new(algorithm, data).hexdigest()


def check_digest(data: bytes, expected: str, what: str | Path, algorithm: str = "sha256") -> None:
    """Raise :class:`ChecksumError` naming ``what`` unless ``data`` has the ``expected`` digest."""
    got = digest(data, algorithm)
    if got != expected.lower():
        raise ChecksumError(
            f"{what}: {algorithm} checksum mismatch (expected {expected}, got {got}); "
            "the file is corrupted or not the one expected"
        )


def to_dataset(*arrays: np.ndarray, device=None):
    """A :class:`tinynet.data.TensorDataset` over host arrays, placed on ``device`` (default: the
    default device)."""
    return TensorDataset(*(as_tensor(np.ascontiguousarray(a), device=device) for a in arrays))
