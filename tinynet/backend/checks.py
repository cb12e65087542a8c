"""Deferred checks: bounds of labels and indices, checked on the device without a host sync.

A label out of range must give a clear error, never a silently wrong loss. On the CPU checking is
free (the data is in host memory), so the error is raised at the call, as always. On a GPU a check
that reads its answer back stalls the queue every step, and CuPy does not raise for an
out-of-range index (it wraps, and the stand-in device does the same). So on a device a check
is a kernel that only *writes*: when an index is out of range it adds to a counter and stores the
offending value in a small flags array on the device, which stays there. The flags are read
along with the next value the host reads anyway (``Tensor.item()``, ``fit``'s per-epoch read of
its running sums, ``Device.read_scalars``: one transfer for both), and a set flag raises the
error there, as CUDA reports its asynchronous errors at the next synchronisation. The kernels
that check also poison their result (a NaN loss), so a value computed from a bad label is never
a plausible number.

Each check site registers a *slot* (its name and what it checked against, e.g. cross entropy with
10 classes), which says how to word the error: ``cross_entropy: target labels must be in [0, 9]
...; got label 12 (3 out of range since the last read of a value on standin)``.

Read next: ``kernels.py`` (``INDEX_CHECK``, ``CE_ROWS``), ``tinynet/nn/loss.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

_CAPACITY = 16  # slots a device's flags array holds before it grows
# For a kernel whose check already ran on the host (the CPU checks at the call): never written.
UNUSED_FLAGS = np.zeros(2)


class DeviceChecks:
    """One device's flags (2 float64 per slot: how many bad values, one of them) and the wording
    of each slot's error. ``pending`` is True once a check ran since the flags were last read."""

    def __init__(self, device):
        self.device = device
        self.flags = None
        self.slots: dict = {}  # key -> slot number
        self.errors: list = []  # slot number -> (exception class, message(count, value))
        self.pending = False
        self.order: dict = {}  # slots launched since the last read, first launch first
        self._lock = threading.Lock()

    def slot(self, key, error: type, message: Callable[[int, int], str]) -> int:
        """The slot of a check site (made on first use; the flags array grows to hold it). The
        wording given last is the one an error of this slot uses."""
        found = self.slots.get(key)
        if found is not None:
            self.errors[found] = (error, message)
            return found
        with self._lock:
            if key not in self.slots:
                self.errors.append((error, message))
                self.slots[key] = len(self.errors) - 1
                self._grow(len(self.errors))
            return self.slots[key]

    def _grow(self, needed: int) -> None:
        size = 0 if self.flags is None else self.flags.shape[0] // 2
        if needed <= size:
            return
        xp = self.device.xp
        flags = xp.zeros(2 * max(_CAPACITY, 2 * size), dtype=np.float64)
        if self.flags is not None:
            flags[: self.flags.shape[0]] = self.flags
        self.flags = flags

    def launched(self, slot: int) -> None:
        """A check kernel of ``slot`` wrote to the flags: on the CPU look now (free), else later
        (noting the launch order, so that the first check to fail is the one reported)."""
        if self.device.type == "cpu":
            self.raise_if_set(self.flags)
        else:
            self.order.setdefault(slot, None)
            self.pending = True

    def raise_if_set(self, host_flags: np.ndarray) -> None:
        """Raise the error of the first check (in launch order) whose slot is set, after clearing
        every flag: an error is told once, and what a bad value caused later is not the cause."""
        order, self.order = self.order, {}
        bad = np.flatnonzero(host_flags[0::2])
        if bad.size == 0:
            return
        self.flags[...] = 0
        self.pending = False
        launched = [s for s in order if host_flags[2 * s]]
        slot = launched[0] if launched else int(bad[0])
        error, message = self.errors[slot]
        raise error(message(int(host_flags[2 * slot]), int(host_flags[2 * slot + 1])))

    def read(self, arrays: tuple) -> list:
        """``arrays`` (on this device) as host NumPy arrays, the flags read in the same transfer;
        raises the error of a check that failed since the last read."""
        xp = self.device.xp
        parts = [a.reshape(-1).view(np.uint8) for a in arrays]
        self.pending = False  # the flags travel with the values: to_host need not read them
        blob = self.device.to_host(xp.concatenate(parts + [self.flags.view(np.uint8)]))
        out, start = [], 0
        for a in arrays:
            end = start + a.nbytes
            out.append(blob[start:end].view(a.dtype).reshape(a.shape))
            start = end
        self.raise_if_set(blob[start:].view(np.float64))
        return out


_devices: dict = {}


def of(device) -> DeviceChecks:
    """The checks of ``device`` (made on first use)."""
    checks = _devices.get(id(device))  # devices are interned: id() is a cheap, stable key
    if checks is None:
        checks = _devices.setdefault(id(device), DeviceChecks(device))
    return checks


def pending(device) -> DeviceChecks | None:
    """The checks of ``device`` if a check ran there since its flags were last read, else None."""
    checks = _devices.get(id(device))
    return checks if checks is not None and checks.pending else None


def before_read(device) -> None:
    """Called before the host reads device data other than through :meth:`DeviceChecks.read`
    (``.tolist()``, ``bool()``, a copy to the host): read the flags first, raise a failed
    check's error."""
    checks = pending(device)
    if checks is not None:
        checks.pending = False
        checks.raise_if_set(device.to_host(checks.flags))


def reset() -> None:
    """Forget every pending check on every device (tests start clean)."""
    for checks in _devices.values():
        if checks.flags is not None:
            checks.flags[...] = 0
        checks.pending = False
        checks.order = {}


def index_range(xp, device, indices, low: int, high: int, key, error: type,
                message: Callable[[int, int], str], exempt: int | None = None) -> None:
    """Check that every value of the integer array ``indices`` lies in ``[low, high)`` (or equals
    ``exempt``): at once on the CPU, else by one kernel whose failure is raised at the next read.

    Args:
        key: names the check site and what it checks against (one slot per distinct key).
        error, message: the exception class, and its text from ``(count, one bad value)``.
    """
    if indices.size == 0:
        return
    if device.type == "cpu":  # host memory: read the answer now, it costs nothing
        if low <= int(indices.min()) and int(indices.max()) < high:
            return
        bad = (indices < low) | (indices >= high)
        if exempt is not None:
            bad &= indices != exempt
        if bad.any():
            raise error(message(int(np.count_nonzero(bad)), int(indices[bad][0])))
        return
    from . import kernels  # noqa: PLC0415 - kernels imports the device kinds, which import this

    checks = of(device)
    slot = checks.slot(key, error, message)
    kernels.INDEX_CHECK(xp, indices, low, high, 0 if exempt is None else exempt,
                        int(exempt is not None), slot, checks.flags)
    checks.launched(slot)
