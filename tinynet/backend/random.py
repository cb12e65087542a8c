"""Seeded random streams owned by tinynet (NumPy's global RNG is never touched).

How a seed maps to devices: every random draw (``randn``, ``rand``, initialisation, dropout masks,
shuffles) is made on the host by a :class:`Generator` (NumPy's PCG64) and then moved to the tensor's
device. So ``tn.manual_seed(0)`` gives the *same numbers on CPU and GPU*: the same initial weights and
the same batch order on both, at the cost of one host->device copy per draw.
"""

from __future__ import annotations

import numbers

import numpy as np


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

    def get_state(self) -> dict:
        """The stream's position, as plain data (for checkpoints)."""
        return {"seed": self._seed, "bit_generator": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        """Restore a :meth:`get_state`; a malformed state raises ``ValueError`` and changes
        nothing."""
        if not isinstance(state, dict) or set(state) != {"seed", "bit_generator"}:
            raise ValueError("Generator.set_state expects the dict get_state() returns, with keys "
                             f"'seed' and 'bit_generator'; got {_describe(state)}")
        seed = _checked_seed(state["seed"], "Generator.set_state: 'seed'")
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


def _checked_seed(seed, what: str) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    raise ValueError(f"{what} must be a non-negative integer or None, got {seed!r}")


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
