"""Making tensors: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``randn``, ``rand`` and the
``*_like`` forms, plus DLPack interop.

Defaults: float32 for floating data (``tn.set_default_dtype`` changes it) and the default device
(``tn.set_default_device``, or ``with tn.device("cuda"):``). Random tensors come from a seeded
:class:`tinynet.Generator`: small ones drawn on the host and moved, large ones drawn on their device
(``backend/random.py``); either way a seed gives the same values on every device.
"""

from __future__ import annotations

import math

from . import backend
from .backend import Device
from .backend.random import on_counter_stream
from .tensor import Tensor


def _device(device) -> Device:
    return backend.get_default_device() if device is None else Device(device)


def _dtype(dtype):
    return backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)


def _to_array(data, dtype, device):
    """Turn user data into an array on a device: (array, Device)."""
    if isinstance(data, Tensor):
        arr, src = data.data, data.device
    else:
        try:
            src = backend.device_of(data)
            arr = data
        except TypeError:  # lists, scalars, anything NumPy understands: host data
            src = Device("cpu")
            arr = _host_from_python(data, dtype)
    dst = _target(src, device)
    if dtype is not None:
        dtype = backend.as_dtype(dtype)
        if arr.dtype != dtype:
            _check_lossless(arr, dtype, src)
            arr = arr.astype(dtype)
    arr = backend.transfer(arr, src, dst)
    if arr is data or (isinstance(data, Tensor) and arr is data.data):
        arr = arr.copy()  # tn.tensor(a) is a copy, never an alias of the caller's memory (PyTorch)
    return arr, dst


def _target(src: Device, device) -> Device:
    """Where new data goes: ``device`` if given; else host data to the default device, device data
    stays where it is."""
    if device is not None:
        return Device(device)
    return backend.get_default_device() if src.type == "cpu" else src


def _host_from_python(data, dtype):
    arr = backend.host_array(data)
    if dtype is None and arr.dtype.kind == "f" and not hasattr(data, "dtype"):
        # Python floats -> float32 by default; a NumPy scalar keeps its dtype, like an array
        arr = arr.astype(backend.get_default_dtype())
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"tn.tensor: cannot make a tensor from {type(data).__name__} "
                        f"(NumPy reads it as dtype {arr.dtype})")
    return arr


def _check_lossless(arr, dtype, src):
    """Casting float data to an integer dtype must not silently drop fractions."""
    if arr.dtype.kind in "fc" and dtype.kind in "biu":
        xp = src.xp
        if not bool(xp.all(arr == xp.trunc(arr))):
            raise ValueError(f"tn.tensor: casting {arr.dtype} data with fractional values to {dtype} "
                             "would lose data; round it explicitly first")


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Make a tensor from data: lists, scalars, NumPy/CuPy arrays, another tensor. Always a copy or
    a transfer, never sharing the argument's memory (:func:`as_tensor` and :func:`from_numpy` do).

    Python floats become float32 (the default dtype); NumPy arrays keep their dtype, as in PyTorch.

    Example:
        >>> x = tn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor`, but without a copy where none is needed: a matching Tensor is returned
    itself, and a NumPy/CuPy array already of the right dtype and device is shared, not copied."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == backend.as_dtype(dtype)) \
            and (device is None or data.device == Device(device)):
        return data
    if not isinstance(data, Tensor) and hasattr(data, "dtype") and hasattr(data, "shape"):
        try:
            src = backend.device_of(data)
        except TypeError:
            src = None
        if src is not None and _target(src, device) is src \
                and (dtype is None or data.dtype == backend.as_dtype(dtype)):
            return Tensor.wrap(data, src)
    return Tensor(data, dtype=dtype, device=device)


def from_numpy(array) -> Tensor:
    """A CPU tensor sharing memory with a NumPy array (no copy)."""
    return Tensor.wrap(array, Device("cpu"))


def from_dlpack(obj) -> Tensor:
    """Import an array through DLPack (PyTorch, CuPy, JAX, NumPy ...) without copying.

    CPU data becomes a NumPy-backed tensor, CUDA data a CuPy-backed one.
    """
    kind, index = obj.__dlpack_device__()
    if int(kind) == 1:  # kDLCPU
        dev = Device("cpu")
    elif int(kind) == 2:  # kDLCUDA
        dev = Device("cuda", int(index))
    else:
        raise RuntimeError(f"from_dlpack: unsupported DLPack device type {kind}")
    return Tensor.wrap(dev.xp.from_dlpack(obj), dev)


def _filled(shape, value, dtype, device, requires_grad) -> Tensor:
    dev = _device(device)
    shape = _shape(shape)
    arr = dev.xp.full(shape, value, dtype=_dtype(dtype))
    return _new(arr, dev, requires_grad)


def _new(arr, dev: Device, requires_grad: bool) -> Tensor:
    t = Tensor.wrap(arr, dev)
    if requires_grad:
        t.requires_grad = True  # validates the dtype
    return t


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(shape, 0, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(shape, 1, dtype, device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dev = _device(device)
    arr = dev.xp.empty(_shape(shape), dtype=_dtype(dtype))
    return _new(arr, dev, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = backend.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = backend.int64
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _filled(shape, fill_value, dtype, device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    dev = _device(device)
    arr = dev.xp.eye(n, m, dtype=_dtype(dtype))
    return _new(arr, dev, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive). Integer arguments give int64, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, end, step))
        dtype = backend.int64 if is_int else backend.get_default_dtype()
    dev = _device(device)
    arr = dev.xp.arange(start, end, step, dtype=backend.as_dtype(dtype))
    return _new(arr, dev, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    dev = _device(device)
    arr = dev.xp.linspace(start, end, steps, dtype=_dtype(dtype))
    return _new(arr, dev, requires_grad)


def _random(host, dtype, device, requires_grad) -> Tensor:
    dev = _device(device)
    arr = backend.transfer(host.astype(_dtype(dtype), copy=False), Device("cpu"), dev)
    return _new(arr, dev, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    """Standard normal samples from the seeded generator: drawn on the host and moved, or, from
    ``backend.random.COUNTER_STREAM_MIN`` elements on, drawn where they live (docs/devices.md)."""
    gen = generator or backend.default_generator
    shape, dev = _shape(shape), _device(device)
    if on_counter_stream(shape, _dtype(dtype)):
        return _new(gen.device_normal(dev.xp, shape, _dtype(dtype)), dev, requires_grad)
    return _random(gen.normal(shape, _dtype(dtype)), dtype, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    """Uniform samples in [0, 1) from the seeded generator (drawn as :func:`randn` says)."""
    gen = generator or backend.default_generator
    shape, dev = _shape(shape), _device(device)
    if on_counter_stream(shape, _dtype(dtype)):
        return _new(gen.device_uniform(dev.xp, shape, _dtype(dtype)), dev, requires_grad)
    return _random(gen.uniform(shape, _dtype(dtype)), dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None) -> Tensor:
    """Integers in [low, high) (int64 unless ``dtype``)."""
    if high is None:
        low, high = 0, low
    gen = generator or backend.default_generator
    host = gen.integers(low, high, tuple(size))
    dev = _device(device)
    host = host.astype(backend.as_dtype(dtype or backend.int64), copy=False)
    return Tensor.wrap(backend.transfer(host, Device("cpu"), dev), dev)


def randperm(n: int, device=None, generator=None) -> Tensor:
    gen = generator or backend.default_generator
    dev = _device(device)
    return Tensor.wrap(backend.transfer(gen.permutation(n), Device("cpu"), dev), dev)


def _like(t: Tensor, dtype, device):
    return (t.dtype if dtype is None else dtype), (t.device if device is None else device)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return zeros(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return ones(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return empty(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return randn(t.shape, dtype=dtype, device=device, requires_grad=requires_grad,
                 generator=generator)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return rand(t.shape, dtype=dtype, device=device, requires_grad=requires_grad,
                generator=generator)


def numel(t: Tensor) -> int:
    return math.prod(t.shape)
