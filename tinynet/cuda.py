"""``tn.cuda``: is a GPU usable, how many, wait for it."""

from .backend import cuda_device_count, cuda_is_available, synchronize as _synchronize


def is_available() -> bool:
    """True when CuPy is installed and sees a CUDA device (install with ``pip install "tinynet[gpu]"``)."""
    return cuda_is_available()


def device_count() -> int:
    return cuda_device_count()


def synchronize(index: int = 0) -> None:
    """Block until all queued GPU work on ``cuda:index`` is done (do this before reading a clock)."""
    _synchronize(f"cuda:{index}")
