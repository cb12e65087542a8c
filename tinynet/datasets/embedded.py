"""The embedded default dataset: 8x8 handwritten digits, shipped inside the package.

Data: the test set of the UCI "Optical Recognition of Handwritten Digits" data by E. Alpaydin and
C. Kaynak (1998), UCI Machine Learning Repository, https://doi.org/10.24432/C50P49, licensed under
CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). The file ``data/digits.csv.gz`` is the copy
scikit-learn redistributes, unchanged; ``data/ATTRIBUTION.md`` next to it says where it comes from.
1,797 samples, 64 integer pixels in 0..16 each, labels 0..9.
"""

from __future__ import annotations

import functools
import gzip
import io
from importlib import resources
from pathlib import Path

import numpy as np

from .base import check_digest, to_dataset

DIGITS_FILE = "digits.csv.gz"
# SHA-256 of data/digits.csv.gz (byte for byte sklearn/datasets/data/digits.csv.gz).
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def read_digits_file(path: str | Path, sha256: str = DIGITS_SHA256) -> tuple[np.ndarray, np.ndarray]:
    """Parse and verify a digits file: ``(pixels uint8 (N, 64), labels uint8 (N,))``.

    Raises:
        ChecksumError: the file's SHA-256 is not ``sha256`` (corrupted or replaced).
        ValueError: the file passes the checksum but is not 65 integer columns (only possible with
            a custom ``sha256``).
    """
    raw = Path(path).read_bytes()
    check_digest(raw, sha256, path)
    table = np.loadtxt(io.StringIO(gzip.decompress(raw).decode("ascii")), delimiter=",",
                       dtype=np.int64, ndmin=2)
    if table.shape[1] != 65:
        raise ValueError(f"{path}: expected 65 columns (64 pixels, 1 label), got {table.shape[1]}")
    return table[:, :64].astype(np.uint8), table[:, 64].astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    # Parsed once per process (a few milliseconds); callers get copies, never these arrays.
    with resources.as_file(resources.files(__package__) / "data" / DIGITS_FILE) as path:
        return read_digits_file(path)


def digits(as_image: bool = False, device=None):
    """The 8x8 handwritten digits: 1,797 samples, 10 classes (the embedded default dataset).

    Pixels are scaled to [0, 1] (the stored counts 0..16 divided by 16). The samples keep the file's
    order; split them with :func:`tinynet.data.random_split` (which shuffles) before training.

    Args:
        as_image: ``False`` gives X of shape (1797, 64); ``True`` gives (1797, 1, 8, 8) for a CNN.
        device: where the tensors live (default: tinynet's default device).

    Returns:
        ``TensorDataset(X, y)``: X float32 in [0, 1], y int64 in 0..9.

    Raises:
        ChecksumError: the packaged file is corrupted (its SHA-256 is checked on load).

    Example:
        >>> ds = tn.datasets.digits()
        >>> x, y = ds.tensors
        >>> x.shape, y.shape
        ((1797, 64), (1797,))
    """
    pixels, labels = _digits_arrays()
    x = pixels.astype(np.float32) / np.float32(16.0)  # (N, 64)
    if as_image:
        x = x.reshape(-1, 1, 8, 8)  # (N, C=1, H=8, W=8), rows of the image in order
    return to_dataset(x, labels.astype(np.int64), device=device)
