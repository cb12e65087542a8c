"""Devices and the array namespace each one computes with.

This is the only place where tinynet decides *which* array library runs the math:

* ``"cpu"``      -> NumPy
* ``"cuda:N"``   -> CuPy (imported lazily, only when asked for)
* ``"standin"``  -> NumPy behind CuPy's rules (see ``standin.py``): arrays that refuse implicit
  conversion to host NumPy arrays. It lets CI prove the GPU code path has no stray ``np.`` call.

Every tensor carries its ``Device``; an op reads ``device.xp`` (an :class:`ArrayNamespace`) and never
imports NumPy itself. Read ``tensor.py`` next.
"""

from __future__ import annotations

import math

import numpy as np

CUPY_INSTALL_HINT = (
    'install the GPU extra: pip install "tinynet[gpu]" (CuPy for CUDA 12; for CUDA 11 or 13 install '
    "cupy-cuda11x or cupy-cuda13x instead)"
)

_SQRT_PI = math.sqrt(math.pi)
_SMALL = 4096  # elements: below this a copy is cheaper than NumPy's view set-up


class ArrayNamespace:
    """A backend's array module (NumPy, CuPy or the stand-in) plus the few functions NumPy lacks.

    Every NumPy name (``xp.exp``, ``xp.matmul``, ``xp.float32`` ...) is looked up on the wrapped
    module; the extras below (``erf``, ``sigmoid``, ``index_add``) are written once here so that
    forward and backward formulas can use them on any backend. Under ``create_graph=True`` the
    backward formulas see ``tinynet.ops.namespace.TensorNamespace`` instead, which has the same names.
    """

    def __init__(self, module, name: str):
        self._module = module
        self.name = name

    def __getattr__(self, attr):
        value = getattr(self._module, attr)
        setattr(self, attr, value)  # cache: the next lookup is a plain attribute read
        return value

    def __repr__(self) -> str:
        return f"ArrayNamespace({self.name})"

    # --- functions NumPy does not have -------------------------------------------------------

    def erf(self, x):
        """Error function without SciPy: ~1e-15 relative error in float64, 0.5 ulp in float32.

        |x| < 2: erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n x (2x^2)^n / (1*3*...*(2n+1)), whose terms
        are all positive (no cancellation). |x| >= 2: the continued fraction
        erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated backwards.
        Narrower dtypes are computed in float64 and rounded once: in float32 both formulas amplify
        the rounding error of x*x by about x^2, which costs ~10 ulp near |x| = 2.
        """
        if x.dtype != np.float64:
            out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
            return self.erf(x.astype(np.float64)).astype(out_dtype)
        xp = self._module
        out = xp.empty_like(x)
        small = xp.abs(x) < 2
        xs = x[small]
        term = xp.ones_like(xs)
        total = xp.ones_like(xs)
        two_x2 = 2 * xs * xs
        for n in range(1, 33):
            term = term * two_x2 / (2 * n + 1)
            total = total + term
        out[small] = (2 / _SQRT_PI) * xp.exp(-xs * xs) * xs * total
        large = ~small
        xl = x[large]
        al = xp.abs(xl)
        frac = al
        for k in range(40, 0, -1):
            frac = al + (k / 2) / frac
        erfc = xp.exp(-al * al) / (_SQRT_PI * frac)
        out[large] = xp.sign(xl) * (1 - erfc)
        return out

    def broadcast_to(self, x, shape):
        """``x`` broadcast to ``shape``. NumPy's ``broadcast_to`` spends ~2.5 us setting up a view;
        for small results a materialised copy costs a fraction of that, so small ones are copied
        (used by every reduction's backward). Large results, and CuPy's, stay zero-copy views."""
        shape = tuple(shape)
        if self.name == "cupy" or math.prod(shape) > _SMALL:
            return self._module.broadcast_to(x, shape)
        out = self._module.empty(shape, dtype=x.dtype)
        out[...] = x
        return out

    def sigmoid(self, x):
        """1 / (1 + exp(-x)) without overflow: exp is only ever taken of -|x|."""
        xp = self._module
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    def index_add(self, shape, index, values):
        """A new zero array of ``shape`` with ``values`` added at ``index`` (the adjoint of ``a[index]``).

        Repeated integer indices accumulate. Slices, integers and boolean masks cannot repeat, so they
        use a plain assignment, which is much faster than a scatter-add.
        """
        out = self._module.zeros(shape, dtype=values.dtype)
        if _index_is_unique(index):
            out[index] = values
        else:
            self.scatter_add(out, index, values)
        return out

    def scatter_add(self, target, index, values):
        """In place: target[index] += values, with repeated indices accumulating."""
        if self.name == "cupy":
            import cupyx  # noqa: PLC0415 - only on the CuPy backend

            cupyx.scatter_add(target, index, values)
        else:
            self._module.add.at(target, index, values)


def _index_is_unique(index) -> bool:
    """True when ``a[index]`` can never select one element twice (no integer arrays in it)."""
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if part is None or part is Ellipsis or isinstance(part, (slice, int)):
            continue
        dtype = getattr(part, "dtype", None)
        if dtype is not None and dtype.kind == "b" and len(parts) == 1:
            continue  # a lone boolean mask selects each element at most once
        return False
    return True


class Device:
    """Where a tensor's data lives: ``Device("cpu")``, ``Device("cuda:0")``, ``Device("standin")``.

    Devices are interned (``Device("cuda") is Device("cuda:0")``), compare equal to their string
    names, and work as context managers that set the default device::

        with tn.device("cuda"):
            w = tn.randn(3, 3)        # created on the GPU
    """

    __slots__ = ("type", "index", "_xp", "_array_type")
    _interned: dict = {}

    def __new__(cls, spec="cpu", index: int | None = None):
        if isinstance(spec, Device):
            return spec
        key = (spec, index)
        dev = cls._interned.get(key)
        if dev is not None:
            return dev
        kind, idx = _parse(spec, index)
        canonical = cls._interned.get((kind, idx))
        if canonical is None:
            canonical = object.__new__(cls)
            canonical.type = kind
            canonical.index = idx
            canonical._xp = None
            canonical._array_type = None
            cls._interned[(kind, idx)] = canonical
        cls._interned[key] = canonical
        return canonical

    @property
    def xp(self) -> ArrayNamespace:
        """The array namespace for this device (NumPy, CuPy or the stand-in), imported on first use."""
        if self._xp is None:
            if self.type == "cpu":
                self._xp = ArrayNamespace(np, "numpy")
            elif self.type == "standin":
                from . import standin  # noqa: PLC0415

                self._xp = ArrayNamespace(standin.namespace, "standin")
            else:
                cupy = _import_cupy()
                if self.index >= cupy.cuda.runtime.getDeviceCount():
                    raise RuntimeError(f"device {self} does not exist: CuPy sees "
                                       f"{cupy.cuda.runtime.getDeviceCount()} CUDA device(s)")
                self._xp = ArrayNamespace(cupy, "cupy")
        return self._xp

    @property
    def array_type(self) -> type:
        """The class of this device's arrays (``numpy.ndarray``, ``cupy.ndarray``, ...)."""
        if self._array_type is None:
            self._array_type = self.xp.ndarray
        return self._array_type

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
        _default_device_stack.append(_state.default_device)
        _state.default_device = self
        return self

    def __exit__(self, *exc):
        _state.default_device = _default_device_stack.pop()
        return False


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


def _import_cupy():
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


class _State:
    """The library's only global state besides grad mode: default device and dtype."""

    def __init__(self):
        self.default_device = Device("cpu")
        self.default_dtype = np.dtype("float32")


_state = _State()
_default_device_stack: list = []


def get_default_device() -> Device:
    return _state.default_device


def set_default_device(device) -> None:
    """Create new tensors on ``device`` from now on (``tn.set_default_device("cuda")`` moves a script)."""
    _state.default_device = Device(device)


def get_default_dtype():
    return _state.default_dtype


def set_default_dtype(dtype) -> None:
    """Default floating dtype for new tensors: float32 unless changed (float64 for gradient checks)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"the default dtype must be a floating dtype, got {dtype}")
    _state.default_dtype = dtype


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def cuda_device_count() -> int:
    return _import_cupy().cuda.runtime.getDeviceCount() if cuda_is_available() else 0


def device_of(array) -> Device:
    """The device an array lives on, from its type."""
    if isinstance(array, np.ndarray):
        return Device("cpu")
    module = type(array).__module__
    if module.startswith("cupy"):
        return Device("cuda", array.device.id)
    from . import standin  # noqa: PLC0415

    if isinstance(array, standin.StandinArray):
        return Device("standin")
    raise TypeError(f"not an array tinynet knows: {type(array).__name__}")


def to_device(array, src: Device, dst: Device):
    """Copy ``array`` from ``src`` to ``dst`` (the one place host<->device transfers happen)."""
    if src is dst:
        return array
    host = array
    if src.type == "cuda":
        host = array.get()
    elif src.type == "standin":
        host = array.get()
    if dst.type == "cpu":
        return host
    if dst.type == "standin":
        from . import standin  # noqa: PLC0415

        return standin.from_host(host)
    cupy = dst.xp._module
    with cupy.cuda.Device(dst.index):
        return cupy.asarray(host) if src.type != "cuda" else cupy.array(array, copy=True)


def synchronize(device=None) -> None:
    """Wait for all queued work on ``device`` (a no-op on CPU): call before reading a clock."""
    dev = Device(device) if device is not None else _state.default_device
    if dev.type == "cuda":
        dev.xp._module.cuda.Device(dev.index).synchronize()
