"""Process settings that decide how fast a NumPy training loop runs on the host: the C allocator
(glibc's ``malloc``) and the number of BLAS threads.

They belong to the process, not to a device (so not to ``tinynet/backend/``): ``tinynet train``
and ``tinynet bench`` set them for the process they own, and a script may call them once at the
top (``from tinynet import runtime; runtime.keep_freed_memory()``).

**Allocator.** A training step allocates the same large temporaries every step (activations,
gradients, im2col columns). glibc serves blocks above its mmap threshold (128 KiB to start) with
fresh ``mmap`` pages and gives freed memory at the top of the heap back to the OS above its trim
threshold, so each step can pay a page fault per 4 KiB page of every temporary again. On the
2-vCPU VMs the benchmarks ran on, that was half of a small CNN's training step (7.4 ms -> 3.2 ms per
step at batch 32). :func:`keep_freed_memory` raises both thresholds, so freed blocks stay in the
process for the next step: the steady state of any long-running training loop. It changes the whole
process's allocator, so tinynet never calls it on import; ``tinynet train`` and ``tinynet bench``
call it (their process is theirs), and a script may call it once at the top. The environment
variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do the same from outside.

**BLAS threads.** :func:`set_blas_threads` changes OpenBLAS's thread count at run time
(threadpoolctl when installed, else OpenBLAS's own C function in the library NumPy loaded).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems. Blocks above it
# (rare for the models here) still come from mmap.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_allocator_settings: dict | None = None


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") else None  # musl has no mallopt
    except OSError:
        return None


def keep_freed_memory() -> dict | None:
    """Keep freed heap memory in the process instead of returning it to the OS (glibc only).

    Sets glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB with ``mallopt``, so a
    training loop's repeated temporaries reuse the same pages instead of faulting fresh ones in
    every step. Memory is not lost: it stays available to this process (peak use is unchanged;
    the resident size just does not shrink after a peak).

    Returns:
        The settings applied (``{"mmap_threshold": ..., "trim_threshold": ...}``), or None where
        the C library is not glibc (macOS, Windows, musl): nothing is changed there.
    """
    global _allocator_settings
    libc = _libc()
    if libc is None:
        return None
    ok = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
          and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not ok:
        return None
    _allocator_settings = {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    return dict(_allocator_settings)


def allocator_settings() -> dict | None:
    """What :func:`keep_freed_memory` set in this process (None if it was not called or had no
    effect); environment variables set before start-up are not seen here."""
    return None if _allocator_settings is None else dict(_allocator_settings)


# --- BLAS threads at run time -----------------------------------------------------------------

@functools.cache
def _openblas_function(kind: str):
    """OpenBLAS's ``get`` or ``set`` thread-count C function from the library NumPy loaded, or
    None (another BLAS, or no /proc: not Linux).

    NumPy's wheels bundle scipy-openblas, whose symbols carry a ``scipy_`` prefix (and a ``64_``
    suffix in the 64-bit-integer build); a system OpenBLAS exports plain ``openblas_*`` names.
    """
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:
        return None
    names = [f"{prefix}openblas_{kind}_num_threads{suffix}"
             for prefix in ("scipy_", "") for suffix in ("64_", "")]
    for path in paths:
        if not path.startswith("/"):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            func = getattr(lib, name, None)
            if func is not None:
                func.restype = ctypes.c_int if kind == "get" else None
                func.argtypes = [] if kind == "get" else [ctypes.c_int]
                return func
    return None


def blas_thread_count() -> int | None:
    """The thread count NumPy's BLAS reports now (threadpoolctl, else OpenBLAS's C API), or
    None when neither can read it."""
    try:
        import threadpoolctl
    except ImportError:
        func = _openblas_function("get")
        return None if func is None else int(func())
    pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    numpy_pools = [p for p in pools if "numpy" in p.get("filepath", "")]  # not torch's BLAS
    return (numpy_pools or pools or [{}])[0].get("num_threads")


def set_blas_threads(n: int) -> bool:
    """Make NumPy's BLAS use ``n`` threads from now on; True when the library reports ``n``.

    Uses threadpoolctl when installed, else OpenBLAS's ``*openblas_set_num_threads*`` through
    ctypes; either way the count is read back, so True means it really changed.
    """
    try:
        import threadpoolctl
    except ImportError:
        func = _openblas_function("set")
        if func is None:
            return False
        func(n)
    else:
        threadpoolctl.threadpool_limits(n, user_api="blas")
    return blas_thread_count() == n
