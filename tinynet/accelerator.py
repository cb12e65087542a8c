"""``tn.accelerator``: ``torch.accelerator``'s device-agnostic names, so the usual "use the GPU
if there is one" lines run unchanged::

    device = (tn.accelerator.current_accelerator() if tn.accelerator.is_available()
              else tn.device("cpu"))

tinynet's one accelerator is CUDA (through CuPy); these are the same answers ``tn.cuda`` gives,
phrased for any accelerator. Porting guide: docs/porting.md.
"""

from __future__ import annotations

from .backend import Device, cuda_device_count, cuda_is_available, get_default_device


def is_available() -> bool:
    """True when an accelerator (a CUDA GPU through CuPy) is usable."""
    return cuda_is_available()


def current_accelerator(check_available: bool = False) -> Device | None:
    """``tn.device("cuda")`` when a CUDA GPU is usable, else None (tinynet has no accelerator
    without CuPy, so ``check_available`` changes nothing)."""
    return Device("cuda", current_device_index()) if cuda_is_available() else None


def device_count() -> int:
    """How many accelerators (CUDA GPUs) there are; 0 without CuPy."""
    return cuda_device_count()


def current_device_index() -> int:
    """The index of the default CUDA device when it is the default device, else 0."""
    default = get_default_device()
    return default.index if default.type == "cuda" else 0


def synchronize(device=None) -> None:
    """Wait for the queued work of an accelerator (``tn.cuda.synchronize``)."""
    from . import cuda  # noqa: PLC0415 - cuda.py is the one place that picks the device

    cuda.synchronize(device)
