"""``tn.cuda``: is a GPU usable, how many, wait for it (``torch.cuda``'s names).

The device itself is ``tinynet/backend/cuda.py``; this module is the user-facing corner of it.
"""

from __future__ import annotations

from .backend import Device, cuda_device_count, cuda_is_available, get_default_device


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
