"""``tn.cuda``: is a GPU usable, how many, wait for it (``torch.cuda``'s names).

The device itself is ``tinynet/backend/cuda.py``; this module is the user-facing corner of it.
Seeding and the pool answer ported scripts' ``torch.cuda.manual_seed_all(s)`` and
``torch.cuda.empty_cache()``; ``tn.accelerator`` asks the same questions for any accelerator.
"""

from __future__ import annotations

from .backend import Device, cuda_device_count, cuda_is_available, get_default_device
from .backend import manual_seed as _manual_seed
from .backend.cuda import import_cupy


def is_available() -> bool:
    """True when CuPy is installed and sees a CUDA device (install with
    ``pip install "tinynet[gpu-cuda12]"`` or ``"tinynet[gpu-cuda13]"``)."""
    return cuda_is_available()


def device_count() -> int:
    return cuda_device_count()


def synchronize(device=None) -> None:
    """Block until all queued work on a CUDA device is done (do this before reading a clock).

    The same wait as ``tn.synchronize``, for CUDA devices only, spelled as ``torch.cuda``:
    ``device`` is an index (``1``), a name (``"cuda:1"``) or a ``tn.Device``; None means the
    default device when that is a CUDA device, else ``cuda:0``.
    """
    if device is None:
        default = get_default_device()
        dev = default if default.type == "cuda" else Device("cuda", 0)
    elif isinstance(device, int):
        dev = Device("cuda", device)
    else:
        dev = Device(device)
    if dev.type != "cuda":
        raise ValueError(f"tn.cuda.synchronize: expected a CUDA device, got {dev}; "
                         "tn.synchronize(device) waits for any device")
    dev.synchronize()


def current_device() -> int:
    """The index of the default CUDA device when that is the default device, else 0."""
    default = get_default_device()
    return default.index if default.type == "cuda" else 0


def get_device_name(device=None) -> str:
    """The GPU's name, e.g. ``"NVIDIA H100 80GB HBM3"`` (CuPy must be installed)."""
    index = current_device() if device is None else device if isinstance(device, int) else \
        Device(device).index
    props = import_cupy().cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


def manual_seed(seed: int) -> None:
    """Seed the random numbers used on the GPU. tinynet draws them from its one default stream on
    every device (a seed gives the same numbers on CPU and GPU): this is ``tn.manual_seed``."""
    _manual_seed(seed)


manual_seed_all = manual_seed  # every GPU shares the default stream


def empty_cache() -> None:
    """Give the GPU memory CuPy holds in its pool but no array uses back to the driver (nothing
    to do without CuPy)."""
    if cuda_is_available():
        cupy = import_cupy()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
