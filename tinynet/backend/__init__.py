"""The backend: devices (one class per kind), their array namespaces, transfers, RNG, and the
stand-in device's call counters.

The only package in tinynet that imports NumPy or CuPy for array math. Everything above it reaches
array functions through ``tensor.device.xp``. Layout: ``device.py`` (the base class, the default
device, transfers, the CPU), ``cuda.py`` and ``standin.py`` (the other device kinds),
``namespace.py`` (the ``xp`` extras), ``counting.py`` (``count_calls``), ``random.py``,
``kernels.py`` (fused kernels with their NumPy twins), ``checks.py`` (deferred index checks).
"""

import warnings

import numpy as np

from . import checks, counting, kernels
from .counting import CallCounts, count_calls
from .cuda import CUPY_INSTALL_HINT, CudaDevice, cuda_device_count, cuda_is_available
from .device import (
    CpuDevice,
    Device,
    device_of,
    get_default_device,
    get_default_dtype,
    set_default_device,
    set_default_dtype,
    synchronize,
    transfer,
)
from .namespace import ArrayNamespace
from .random import Generator, default_generator, manual_seed
from .standin import StandinDevice

# dtypes users name (tn.float32, ...): NumPy dtype objects, which CuPy accepts too.
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")


def as_dtype(dtype):
    """Normalise a dtype given as a NumPy dtype, a type or a name ('float32')."""
    return np.dtype(dtype)


def host_array(data, dtype=None):
    """Host data (lists, scalars, NumPy arrays) as a NumPy array. Used by tensor creation."""
    return np.asarray(data, dtype=dtype)


def host_namespace() -> ArrayNamespace:
    """The NumPy namespace, for host-side work (dataset preparation, RNG draws)."""
    return Device("cpu").xp


# The process settings that used to live here moved to tinynet.runtime (they are not about
# devices); these names keep working for scripts written against the old place.
_MOVED_TO_RUNTIME = ("keep_freed_memory", "allocator_settings", "blas_thread_count",
                     "set_blas_threads")


def __getattr__(name):
    if name in _MOVED_TO_RUNTIME:
        warnings.warn(f"tinynet.backend.{name} moved to tinynet.runtime.{name}",
                      DeprecationWarning, stacklevel=2)
        from .. import runtime  # noqa: PLC0415

        return getattr(runtime, name)
    raise AttributeError(f"module 'tinynet.backend' has no attribute {name!r}")


__all__ = [
    "ArrayNamespace", "CUPY_INSTALL_HINT", "CallCounts", "CpuDevice", "CudaDevice", "Device",
    "Generator", "StandinDevice", "as_dtype", "bool_", "checks", "count_calls", "counting",
    "cuda_device_count", "cuda_is_available", "default_generator", "device_of", "float16",
    "float32", "float64", "get_default_device", "get_default_dtype", "host_array",
    "host_namespace", "int16", "int32", "int64", "int8", "kernels", "manual_seed", "set_default_device",
    "set_default_dtype", "synchronize", "transfer", "uint8",
]
