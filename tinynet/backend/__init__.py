"""The backend: devices, their array namespaces (NumPy, CuPy, stand-in), transfers and RNG.

The only package in tinynet that imports NumPy or CuPy for array math. Everything above it reaches
array functions through ``tensor.device.xp``.
"""

import numpy as np

from .device import (
    CUPY_INSTALL_HINT,
    ArrayNamespace,
    Device,
    cuda_device_count,
    cuda_is_available,
    device_of,
    get_default_device,
    get_default_dtype,
    set_default_device,
    set_default_dtype,
    synchronize,
    to_device,
)
from . import host
from .host import blas_thread_count, keep_freed_memory, set_blas_threads
from .random import Generator, default_generator, manual_seed

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
    """Convert host data (lists, scalars, NumPy arrays) to a NumPy array. Used by tensor creation."""
    return np.asarray(data, dtype=dtype)


def host_namespace() -> ArrayNamespace:
    """The NumPy namespace, for host-side work (dataset preparation, RNG draws)."""
    return Device("cpu").xp


__all__ = [
    "ArrayNamespace", "CUPY_INSTALL_HINT", "Device", "Generator", "as_dtype", "bool_",
    "cuda_device_count", "cuda_is_available", "default_generator", "device_of", "float16", "float32",
    "float64", "get_default_device", "get_default_dtype", "host_array", "host_namespace", "int16",
    "int32", "int64", "int8", "manual_seed", "set_default_device", "set_default_dtype",
    "synchronize", "to_device", "uint8",
]
