"""The CUDA device: CuPy computes on an NVIDIA GPU.

CuPy is an optional extra, imported the first time a ``"cuda"`` device is used (naming one does
not import it). tinynet does not care which wheel provided the ``cupy`` module (``cupy-cuda12x``,
``cupy-cuda13x``, a source build), so a machine with CuPy already installed runs a tinynet
checkout with no install step; two CuPy wheels installed side by side share one ``cupy`` folder
and break each other, so that is detected (from the installed distributions' metadata) and
reported before CuPy is imported.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re

import numpy as np

from .device import Device
from .namespace import ArrayNamespace

CUPY_INSTALL_HINT = (
    'install the GPU extra for your CUDA version: pip install "tinynet[gpu-cuda12]" (CUDA 12; '
    '"tinynet[gpu]" is the same) or "tinynet[gpu-cuda13]" (CUDA 13)'
)
# Distribution names of CuPy wheels and source builds (PEP 503 normalised).
_CUPY_DISTRIBUTION = re.compile(r"^cupy(-cuda\d+x?|-rocm-[\d-]+)?$")


class CudaDevice(Device, kind="cuda"):
    """``Device("cuda:N")``: CuPy arrays on GPU ``N``."""

    __slots__ = ()

    def _namespace(self) -> ArrayNamespace:
        cupy = import_cupy()
        count = cupy.cuda.runtime.getDeviceCount()
        if self.index >= count:
            raise RuntimeError(f"device {self} does not exist: CuPy sees {count} CUDA device(s)")
        return ArrayNamespace(cupy, "cupy")

    def from_host(self, host: np.ndarray):
        cupy = self.xp._module
        with cupy.cuda.Device(self.index):
            return cupy.asarray(host)

    def copy_from(self, array, src: Device):
        if not isinstance(src, CudaDevice):
            return super().copy_from(array, src)
        cupy = self.xp._module
        with cupy.cuda.Device(self.index):  # GPU to GPU, without a stop in host memory
            return cupy.array(array, copy=True)

    def synchronize(self) -> None:
        self.xp._module.cuda.Device(self.index).synchronize()


def cupy_distributions() -> list[str]:
    """The installed CuPy distributions, as ``"name version"`` (more than one is a broken
    install: they all write the same ``cupy`` package)."""
    found = set()
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "").lower())
        if _CUPY_DISTRIBUTION.match(name):
            found.add(f"{name} {dist.version}")
    return sorted(found)


@functools.cache
def _duplicate_cupy_message() -> str | None:
    found = cupy_distributions()
    if len(found) < 2:
        return None
    names = [f.split()[0] for f in found]
    return (f"several CuPy packages are installed side by side ({', '.join(found)}); they share "
            "one 'cupy' folder and overwrite each other's files. Keep the one for your CUDA "
            f"version: pip uninstall {' '.join(names)}, then reinstall one of them")


def import_cupy():
    """The ``cupy`` module, once it is known to see a CUDA device; RuntimeError saying what to do
    otherwise (install CuPy, remove a second CuPy package, or find a GPU)."""
    duplicate = _duplicate_cupy_message()
    if duplicate is not None:
        raise RuntimeError(f"device 'cuda': {duplicate}")
    try:
        import cupy  # noqa: PLC0415 - CuPy is an optional extra
    except ImportError as exc:
        raise RuntimeError(
            f"device 'cuda' needs CuPy, which is not installed: {CUPY_INSTALL_HINT}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise RuntimeError(f"device 'cuda' needs a CUDA GPU, and CuPy found none ({exc})") from exc
    if count == 0:
        raise RuntimeError("device 'cuda' needs a CUDA GPU, and CuPy found none")
    return cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import_cupy()
    except RuntimeError:
        return False
    return True


def cuda_device_count() -> int:
    return import_cupy().cuda.runtime.getDeviceCount() if cuda_is_available() else 0
