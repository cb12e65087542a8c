"""Seeded random streams owned by tinynet (NumPy's global RNG is never touched).

A :class:`Generator` holds two streams, both determined by its seed:

* the **host stream**: NumPy's PCG64, drawn on the host. It makes shuffles, ``randint``,
  ``randperm``, the small ``randn``/``rand`` tensors and initialisations, and dropout masks on the
  CPU; what it draws is copied to the tensor's device. Its values are the same on every device.
* the **counter stream**: a counter-based generator (SplitMix64 of ``key + counter * gamma``, see
  ``kernels.py``), drawn where the tensor lives by one kernel: no host draw and no upload. A
  draw of ``n`` values takes the words ``counter .. counter + n - 1`` and advances the counter by
  ``n``; its state is two integers (``key``, from the seed, and ``counter``), so it is saved and
  restored exactly like the host stream. It makes random tensors and initialisations of at least
  :data:`COUNTER_STREAM_MIN` elements (on every device, the CPU included, so a seed gives the same
  weights everywhere) and dropout masks on GPUs and the stand-in device. Uniform values and masks
  are bit-identical on every device (24-bit floats, exact); normal values (Box-Muller) agree to
  the last bit of float32 except where CUDA's and the host's ``log``/``cos`` round differently.

Dropout masks are the one stream that differs between the CPU and a GPU: the CPU keeps drawing
them on the host (cheaper there than hashing), a GPU draws them in the dropout kernel. The
stand-in device draws them as a GPU does, so a seeded run gives the same masks on the stand-in
and on CUDA. Everything else a seed decides (initial weights, batch order) is the same on every
device.
"""

from __future__ import annotations

import numbers

import numpy as np

COUNTER_STREAM_MIN = 1 << 16  # elements: random tensors at least this large are drawn on device
_WORD = 1 << 64


class Generator:
    """A seeded random stream. ``tn.Generator(seed)`` for a private stream, or the default one.

    Example:
        >>> g = tn.Generator(0)
        >>> a = tn.randn(2, 2, generator=g)
    """

    def __init__(self, seed: int | None = None):
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> Generator:
        seed = _checked_seed(seed, "Generator: seed")
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._key = _stream_key(seed)
        self._counter = 0
        return self

    def initial_seed(self) -> int | None:
        return self._seed

    # The draws return host NumPy arrays; tensor creation moves them to the device.
    def normal(self, shape, dtype, mean=0.0, std=1.0) -> np.ndarray:
        out = self._rng.standard_normal(shape, dtype=_float_dtype(dtype))
        if mean != 0.0 or std != 1.0:
            out = out * out.dtype.type(std) + out.dtype.type(mean)
        return out

    def uniform(self, shape, dtype, low=0.0, high=1.0) -> np.ndarray:
        out = self._rng.random(shape, dtype=_float_dtype(dtype))
        if low != 0.0 or high != 1.0:
            out = out * out.dtype.type(high - low) + out.dtype.type(low)
        return out

    def integers(self, low, high, shape) -> np.ndarray:
        return self._rng.integers(low, high, size=shape, dtype=np.int64)

    def permutation(self, n: int) -> np.ndarray:
        return self._rng.permutation(n)

    # The counter stream: draws made by a kernel on the tensor's device (see the module doc).
    def take(self, n: int) -> tuple[int, int]:
        """Reserve ``n`` words of the counter stream: ``(key, first counter)``, for a kernel that
        draws them itself (dropout)."""
        start = self._counter
        self._counter = (start + n) % _WORD
        return self._key, start

    def device_uniform(self, xp, shape: tuple, dtype, low=0.0, high=1.0, out=None):
        """U(low, high) samples drawn by one kernel on the device of ``xp`` (into ``out``, an
        array of that shape and dtype, when given)."""
        from . import kernels  # noqa: PLC0415 - kernels imports the device kinds

        out = xp.empty(shape, dtype=dtype) if out is None else out
        key, start = self.take(out.size)
        return kernels.UNIFORM(xp, key, start, low, high - low, out)

    def device_normal(self, xp, shape: tuple, dtype, mean=0.0, std=1.0, out=None):
        """N(mean, std**2) samples drawn by one kernel on the device of ``xp`` (into ``out``)."""
        from . import kernels  # noqa: PLC0415

        out = xp.empty(shape, dtype=dtype) if out is None else out
        key, start = self.take(out.size)
        return kernels.NORMAL(xp, key, start, mean, std, out)


    def get_state(self) -> dict:
        """Both streams' positions, as plain data (for checkpoints)."""
        return {"seed": self._seed, "bit_generator": self._rng.bit_generator.state,
                "counter_stream": {"key": self._key, "counter": self._counter}}

    def set_state(self, state: dict) -> None:
        """Restore a :meth:`get_state`; a malformed state raises ``ValueError`` and changes
        nothing."""
        keys = {"seed", "bit_generator"}
        if not isinstance(state, dict) or not keys <= set(state) <= keys | {"counter_stream"}:
            raise ValueError("Generator.set_state expects the dict get_state() returns, with keys "
                             f"'seed', 'bit_generator' and 'counter_stream'; got "
                             f"{_describe(state)}")
        seed = _checked_seed(state["seed"], "Generator.set_state: 'seed'")
        # States saved before the counter stream existed start it at the seed's beginning.
        stream = state.get("counter_stream", {"key": _stream_key(seed), "counter": 0})
        if not (isinstance(stream, dict) and set(stream) == {"key", "counter"} and all(
                type(stream[k]) is int and 0 <= stream[k] < _WORD for k in stream)):
            raise ValueError("Generator.set_state: 'counter_stream' is {'key': int, 'counter': "
                             f"int}} with 64-bit values; got {_describe(stream)}")
        bits = state["bit_generator"]
        inner = bits.get("state") if isinstance(bits, dict) else None
        if not (isinstance(inner, dict) and bits.get("bit_generator") == "PCG64" and all(
                type(value) is int and 0 <= value < end for value, end in (
                    (inner.get("state"), 2**128), (inner.get("inc"), 2**128),
                    (bits.get("has_uint32"), 2), (bits.get("uinteger"), 2**32)))):
            raise ValueError("Generator.set_state: 'bit_generator' is not a PCG64 state "
                             "({'bit_generator': 'PCG64', 'state': {'state': int, 'inc': int}, "
                             f"'has_uint32': 0 or 1, 'uinteger': int}}); got {_describe(bits)}")
        self._rng.bit_generator.state = bits
        self._seed = seed
        self._key, self._counter = stream["key"], stream["counter"]


def on_counter_stream(shape: tuple, dtype) -> bool:
    """Whether a random tensor of ``shape`` and ``dtype`` is drawn from the counter stream (on its
    device) rather than the host stream: float32/float64 with at least COUNTER_STREAM_MIN
    elements. The rule looks at nothing else, so every device draws the same values."""
    return np.dtype(dtype) in (np.float32, np.float64) and \
        int(np.prod(shape, dtype=np.int64)) >= COUNTER_STREAM_MIN

def _checked_seed(seed, what: str) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    raise ValueError(f"{what} must be a non-negative integer or None, got {seed!r}")


def _stream_key(seed: int | None) -> int:
    """The counter stream's 64-bit key: from the seed (fresh entropy when it is None)."""
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    # NumPy's generators draw float32 and float64 natively; other floats go through float32.
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


default_generator = Generator(None)


def manual_seed(seed: int) -> Generator:
    """Seed the default stream (all of tinynet's randomness unless a ``generator=`` is passed)."""
    return default_generator.manual_seed(seed)
