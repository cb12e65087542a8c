"""Devices: where a tensor's data lives, and the array namespace it computes with.

One class per kind, the differences between kinds written as methods (Chainer's
``chainer/backends`` layout):

* :class:`CpuDevice` (``"cpu"``, here) computes with NumPy;
* :class:`~tinynet.backend.cuda.CudaDevice` (``"cuda:N"``) with CuPy, imported only when used;
* :class:`~tinynet.backend.standin.StandinDevice` (``"standin"``) with NumPy behind CuPy's rules,
  so CI proves the GPU code path without a GPU, and counts array calls and host syncs.

This module holds the base class (naming, interning, the ``with tn.device(...)`` context), the
default device and dtype, and the two functions that move data: :func:`transfer` (an array from
one device to another) and :func:`synchronize`. Every tensor carries its ``Device``; an op reads
``device.xp`` (an :class:`~tinynet.backend.namespace.ArrayNamespace`) and never imports NumPy
itself. Read ``cuda.py`` and ``standin.py`` next, then ``tensor.py``.
"""

from __future__ import annotations

import threading

import numpy as np

from . import checks
from .namespace import ArrayNamespace, NumpyNamespace


class Device:
    """Where a tensor's data lives: ``Device("cpu")``, ``Device("cuda:0")``, ``Device("standin")``.

    ``Device(spec)`` returns the instance of the kind's subclass. Devices are interned
    (``Device("cuda") is Device("cuda:0")``), compare equal to their string names, and work as
    context managers that set this thread's default device::

        with tn.device("cuda"):
            w = tn.randn(3, 3)        # created on the GPU

    Attributes:
        type: ``"cpu"``, ``"cuda"`` or ``"standin"``.
        index: the GPU number on ``"cuda"``, else None.
        name: ``str(device)``: ``"cpu"``, ``"cuda:0"``, ``"standin"``.
        xp: the array namespace (NumPy, CuPy or the stand-in), imported on first use.
        array_type: the class of this device's arrays.

    What differs between kinds (each subclass defines it): :meth:`to_host`, :meth:`from_host`,
    :meth:`copy_from`, :meth:`synchronize`, :meth:`read_scalars`, :meth:`read_arrays`.
    """

    __slots__ = ("type", "index", "_xp", "_array_type")
    _interned: dict = {}  # (spec, index) as given, and (kind, index) -> the one instance
    _kinds: dict = {}  # "cpu" -> CpuDevice, ...: filled in by the subclasses

    def __init_subclass__(cls, kind: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            Device._kinds[kind] = cls

    def __new__(cls, spec="cpu", index: int | None = None):
        if isinstance(spec, Device):
            return spec
        key = (spec, index)
        dev = Device._interned.get(key)
        if dev is not None:
            return dev
        kind, idx = _parse(spec, index)
        canonical = Device._interned.get((kind, idx))
        if canonical is None:
            canonical = object.__new__(Device._kinds[kind])
            canonical.type = kind
            canonical.index = idx
            canonical._xp = None
            canonical._array_type = None
            Device._interned[(kind, idx)] = canonical
        Device._interned[key] = canonical
        return canonical

    # --- what every device has ------------------------------------------------------------------
    @property
    def xp(self) -> ArrayNamespace:
        """The array namespace of this device (NumPy, CuPy or the stand-in), made on first use."""
        if self._xp is None:
            self._xp = self._namespace()
        return self._xp

    @property
    def array_type(self) -> type:
        """The class of this device's arrays (``numpy.ndarray``, ``cupy.ndarray``, ...)."""
        if self._array_type is None:
            self._array_type = self.xp.ndarray
        return self._array_type

    @property
    def name(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (ValueError, RuntimeError):
                return False
        return self is other

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self):
        # Devices are interned: copy.deepcopy(model) and pickling must give back the same object,
        # not a copy of its array namespace (which holds the NumPy/CuPy module).
        return (Device, (str(self),))

    def __enter__(self):
        _thread.stack.append(_thread.device)
        _thread.device = self
        return self

    def __exit__(self, *exc):
        _thread.device = _thread.stack.pop()
        return False

    # --- what differs between kinds -------------------------------------------------------------
    def _namespace(self) -> ArrayNamespace:
        raise NotImplementedError

    def to_host(self, array) -> np.ndarray:
        """``array`` (on this device) as a host NumPy array: a copy, which waits for the device
        (the array itself on the CPU). A deferred check that failed raises here (``checks.py``)."""
        checks.before_read(self)
        return array.get()

    def from_host(self, host: np.ndarray):
        """A host NumPy array as an array on this device: a copy (the array itself on the CPU)."""
        raise NotImplementedError

    def copy_from(self, array, src: Device):
        """``array``, which lives on the other device ``src``, copied to this device."""
        return self.from_host(src.to_host(array))

    def synchronize(self) -> None:
        """Wait until all work queued on this device is done (a no-op where nothing is queued)."""

    def read_scalars(self, *arrays) -> tuple:
        """The values of 0-d arrays on this device as Python numbers, in one device -> host read
        (one sync on a GPU instead of one per value). The flags of deferred checks come along in
        the same read, and a check that failed raises its error here (``checks.py``)."""
        pending = checks.pending(self)
        if pending is not None:
            return tuple(a.item() for a in pending.read(arrays))
        if len(arrays) == 1:
            return (arrays[0].item(),)
        return tuple(self.xp.stack(arrays).tolist())

    def read_arrays(self, *arrays) -> list:
        """Arrays on this device as host NumPy arrays; on a GPU one read for all of them and the
        deferred checks' flags (``checks.py``), with a failed check raising its error here."""
        pending = checks.pending(self)
        if pending is not None:
            return pending.read(arrays)
        return [self.to_host(a) for a in arrays]


class CpuDevice(Device, kind="cpu"):
    """``Device("cpu")``: NumPy arrays in host memory, the default device of every thread.

    Host memory is this device's memory, so moving data to or from it needs no copy here
    (``Tensor.to`` copies where a copy is the contract), nothing is queued, and reading a value
    needs no synchronisation.
    """

    __slots__ = ()

    def _namespace(self) -> NumpyNamespace:
        return NumpyNamespace(np, "numpy")

    def to_host(self, array) -> np.ndarray:
        return array

    def from_host(self, host: np.ndarray) -> np.ndarray:
        return host

    def read_arrays(self, *arrays) -> list:
        return list(arrays)

    def read_scalars(self, *arrays) -> tuple:
        # No transfer to batch up, so no stack. int()/float() are ~4x cheaper than .item() on
        # NumPy scalars, and this runs in every cross-entropy call's label check.
        return tuple([int(a) if isinstance(a, np.integer) else
                      float(a) if isinstance(a, np.floating) else a.item() for a in arrays])


def _parse(spec, index):
    if not isinstance(spec, str):
        raise TypeError(f"a device is a string like 'cpu' or 'cuda:0', got {spec!r}")
    name, colon, num = spec.partition(":")
    if colon:
        if index is not None:
            raise ValueError(f"device {spec!r} already names an index; got index={index} too")
        if not num.isdigit():
            raise ValueError(f"bad device index in {spec!r}: an index is a number, as in 'cuda:0'")
        index = int(num)
    if index is not None and int(index) < 0:
        raise ValueError(f"device index must be >= 0, got {index}")
    if name == "cpu" or name == "standin":
        if index not in (None, 0):
            raise ValueError(f"device {name!r} has no index {index}")
        return name, None
    if name in ("cuda", "gpu"):
        return "cuda", 0 if index is None else int(index)
    raise ValueError(f"unknown device {spec!r}: use 'cpu', 'cuda', 'cuda:N' or 'standin'")


# --- the default device (per thread) and dtype -----------------------------------------------


class _ThreadDevice(threading.local):
    """This thread's default device and the stack of ``with tn.device(...)`` blocks around it.
    Per thread, like grad mode: a block entered in one thread never moves another thread's
    tensors. Every thread starts on the CPU."""

    def __init__(self):
        self.device = Device("cpu")
        self.stack: list = []


_thread = _ThreadDevice()
_default_dtype = np.dtype("float32")


def get_default_device() -> Device:
    """The device new tensors go to in this thread (``"cpu"`` unless changed)."""
    return _thread.device


def set_default_device(device) -> None:
    """Create new tensors on ``device`` from now on, in this thread (as PyTorch's
    ``torch.set_default_device``; ``tn.set_default_device("cuda")`` atop a script moves it)."""
    _thread.device = Device(device)


def get_default_dtype():
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Default floating dtype for new tensors, in every thread: float32 unless changed (float64
    for gradient checks)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"the default dtype must be a floating dtype, got {dtype}")
    _default_dtype = dtype


# --- moving data -----------------------------------------------------------------------------

def transfer(array, src: Device, dst: Device):
    """``array``, which lives on ``src``, as an array on ``dst``: itself when ``src is dst``, else
    a copy. The one place host <-> device copies happen (``Tensor.to`` records it as an op)."""
    if src is dst:
        return array
    return dst.copy_from(array, src)


def synchronize(device=None) -> None:
    """Wait for all queued work on ``device`` (this thread's default device if None; a no-op on
    the CPU): call it before reading a clock."""
    (Device(device) if device is not None else _thread.device).synchronize()


# array class -> the device its arrays live on (each kind adds its own)
_ARRAY_DEVICES: dict = {np.ndarray: Device("cpu")}


def device_of(array) -> Device:
    """The device an array lives on, from its type."""
    device = _ARRAY_DEVICES.get(type(array))
    if device is not None:
        return device
    if isinstance(array, np.ndarray):  # subclasses: np.memmap, np.matrix
        return Device("cpu")
    if type(array).__module__.startswith("cupy"):  # one class, many GPUs: ask the array
        return Device("cuda", array.device.id)
    raise TypeError(f"not an array tinynet knows: {type(array).__name__}")
