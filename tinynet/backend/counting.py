"""Counting what a GPU would pay for, on the CPU: array calls and host synchronisations.

On a GPU a small training step is bound by kernel launches (5-10 us each) and by host syncs
(each one stalls the queue until the device catches up), not by arithmetic. The stand-in device
(``standin.py``) reports both here as they happen, so a CPU-only machine can measure them:

    with tn.backend.count_calls() as counts:
        loss = loss_fn(model(x), y)          # x, y, model on device "standin"
        loss.backward()
    counts.array_calls, counts.syncs, counts.uploads

What counts, and what it stands for on CuPy:

* an **array call** (about one kernel launch): a function of the array namespace, an array method
  or an operator that writes array memory (a new result, an in-place update, ``a[i] = v``, a
  gather ``a[idx]``). Views (``reshape`` of a contiguous array, ``transpose``, slicing) and
  metadata (``shape``, ``dtype``) are free on a GPU and are not counted; nor is ``empty``.
* a **sync** (a device -> host read that waits for the device): ``.item()``, ``float()``,
  ``int()``, ``bool()``, ``.tolist()``, ``.get()`` (so ``.cpu()`` and ``.numpy()`` after it),
  printing an array, ``synchronize()``, and the calls whose result size needs the host: boolean-mask
  indexing ``a[mask]``, ``nonzero``, ``argwhere``, ``flatnonzero``, ``unique``, one-argument
  ``where``, ``compress``, ``extract``.
* an **upload**: a host -> device copy (``tn.tensor(host_data, device=...)``, ``.to(device)``).

Counting is per thread and only inside a ``count_calls()`` block (blocks nest: each counts
everything inside it); the CPU and CUDA devices count nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator


class CallCounts:
    """What ran on the stand-in device inside one :func:`count_calls` block.

    Attributes:
        calls: array calls by name (``"matmul"``, ``"multiply"``, ``"getitem"``, ``"add.at"``...).
        sync_calls: host syncs by name (``"item"``, ``"bool"``, ``"getitem[mask]"``...).
        uploads: host -> device copies.
        bytes_written: bytes of array memory the array calls wrote (their results, or the
            region an in-place call or ``a[i] = v`` wrote): the memory traffic of a step, which
            shows work that grows faster than the data (a backward quadratic in the sequence
            length writes more bytes per element as the sequence grows).
    """

    __slots__ = ("bytes_written", "calls", "sync_calls", "uploads")

    def __init__(self):
        self.calls: Counter = Counter()
        self.sync_calls: Counter = Counter()
        self.uploads = 0
        self.bytes_written = 0

    @property
    def array_calls(self) -> int:
        """Array calls (about kernel launches on a GPU)."""
        return sum(self.calls.values())

    @property
    def syncs(self) -> int:
        """Device -> host reads that wait for the device."""
        return sum(self.sync_calls.values())

    def __repr__(self) -> str:
        return (f"CallCounts(array_calls={self.array_calls}, syncs={self.syncs}, "
                f"uploads={self.uploads})")


class _Active(threading.local):
    def __init__(self):
        self.counts: list[CallCounts] = []


_active = _Active()


@contextlib.contextmanager
def count_calls() -> Iterator[CallCounts]:
    """Count the stand-in device's array calls, host syncs and uploads in this thread, inside the
    block; the object it gives is filled in as the block runs.

    Example:
        >>> x = tn.ones(3, device="standin")
        >>> with tn.backend.count_calls() as counts:
        ...     y = (x * 2).sum().item()
        >>> counts.array_calls, counts.syncs
        (2, 1)
    """
    counts = CallCounts()
    _active.counts.append(counts)
    try:
        yield counts
    finally:
        _active.counts.remove(counts)


def counting() -> bool:
    """Whether a :func:`count_calls` block is open in this thread (the stand-in checks before
    it works out what to count)."""
    return bool(_active.counts)


def array_call(name: str, nbytes: int = 0) -> None:
    """Count one array call named ``name`` that wrote ``nbytes`` bytes."""
    for counts in _active.counts:
        counts.calls[name] += 1
        counts.bytes_written += nbytes


def sync(name: str) -> None:
    for counts in _active.counts:
        counts.sync_calls[name] += 1


def upload() -> None:
    for counts in _active.counts:
        counts.uploads += 1
