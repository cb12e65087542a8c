"""MNIST and Fashion-MNIST from the standard IDX files in a local folder.

A folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each plain or gzip-compressed (``.gz``, as the mirrors serve them).
``download=True`` fetches the missing ones from the standard mirrors and verifies each against the
MD5 checksum the dataset's distributors publish (where a network exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import to_dataset
from .download import download_file
from .idx import read_idx

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

# MD5 of the .gz files, as published with the datasets (and used by torchvision).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def idx_file_names(train: bool) -> tuple[str, str]:
    """The (images, labels) file names of a split, without ``.gz``."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def mnist(root: str | Path, train: bool = True, download: bool = False, *,
          mirrors: Sequence[str] = MNIST_MIRRORS, timeout: float = 30.0, device=None):
    """MNIST handwritten digits (60,000 training / 10,000 test images, 28x28, 10 classes).

    Args:
        root: the folder holding the IDX files (plain or ``.gz``).
        train: the training split (``True``) or the test split (``False``).
        download: fetch the split's missing files into ``root`` (MD5-verified) first.
        mirrors: base URLs tried in order when downloading.
        timeout: seconds to wait for each connection and read when downloading.
        device: where the tensors live (default: tinynet's default device).

    Returns:
        ``TensorDataset(X, y)``: X float32 (N, 1, 28, 28) in [0, 1] (pixels / 255), y int64 (N,).

    Raises:
        FileNotFoundError: the folder or a file is missing (the message names the path and the
            expected file names).
        DownloadError: ``download=True`` and no mirror could be reached.
        ChecksumError: a downloaded file does not have the published checksum.
        IDXError, ValueError: a file is malformed, or images and labels do not match.

    Example:
        >>> train = tn.datasets.mnist("data/mnist", train=True)
    """
    return _load("MNIST", root, train, download, mirrors, MNIST_MD5, timeout, device)


def fashion_mnist(root: str | Path, train: bool = True, download: bool = False, *,
                  mirrors: Sequence[str] = FASHION_MNIST_MIRRORS, timeout: float = 30.0,
                  device=None):
    """Fashion-MNIST (Zalando article images, same format and sizes as :func:`mnist`).

    Arguments, returns and errors as in :func:`mnist`.
    """
    return _load("Fashion-MNIST", root, train, download, mirrors, FASHION_MNIST_MD5, timeout,
                 device)


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load(title, root, train, download, mirrors, md5, timeout, device):
    root = Path(root).expanduser()
    names = idx_file_names(train)
    if download:
        for name in names:
            if _find(root, name) is None:
                gz = f"{name}.gz"
                download_file([m.rstrip("/") + "/" + gz for m in mirrors], root / gz, md5[gz],
                              algorithm="md5", timeout=timeout)
    expected = ", ".join(f"{n}[.gz]" for n in names)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{title} folder {root} does not exist; it should hold {expected} "
            "(pass download=True to fetch them where a network exists)"
        )
    paths = [_find(root, name) for name in names]
    missing = [f"{n}[.gz]" for n, p in zip(names, paths) if p is None]
    if missing:
        raise FileNotFoundError(
            f"{title} folder {root} lacks {', '.join(missing)}; it should hold {expected} "
            "(pass download=True to fetch them where a network exists)"
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected uint8 images (N, H, W), got {images.dtype} "
                         f"{images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{paths[1]}: expected uint8 labels (N,), got {labels.dtype} "
                         f"{labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]}: labels must be 0..9, found {int(labels.max())}")
    x = images.astype(np.float32)  # (N, H, W)
    x /= np.float32(255.0)  # in place: MNIST's training images are 188 MB as float32
    return to_dataset(x[:, None], labels.astype(np.int64), device=device)  # x: (N, 1, H, W)
