"""Array namespaces: the ``xp`` every op computes with, and the few functions NumPy lacks.

A device (``device.py``) owns one namespace: :class:`NumpyNamespace` on the CPU, the plain
:class:`ArrayNamespace` around CuPy on a GPU and around the stand-in module (``standin.py``) on the
stand-in device. The two classes differ in one method, ``broadcast_to``: the CPU copies small
results because that is faster in NumPy; CuPy and the stand-in keep NumPy's zero-copy view, so the
stand-in runs the code path a GPU runs.
"""

from __future__ import annotations

import math


_SMALL = 4096  # elements: below this a copy is cheaper than NumPy's view set-up


class ArrayNamespace:
    """A backend's array module (CuPy, the stand-in, NumPy) plus the few functions NumPy lacks.

    Every NumPy name (``xp.exp``, ``xp.matmul``, ``xp.float32`` ...) is looked up on the wrapped
    module; the extras below (``erf``, ``sigmoid``, ``index_add``) are written once here so that
    forward and backward formulas can use them on any backend. Under ``create_graph=True`` the
    backward formulas see ``tinynet.ops.namespace.TensorNamespace`` instead, which has the same
    names.
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
        """The error function, elementwise: one kernel on every device (``kernels.erf``:
        ``cupyx.scipy.special.erf`` on CUDA; a NumPy series accurate to ~1e-15 elsewhere, which
        the stand-in counts as one call)."""
        from . import kernels  # noqa: PLC0415 - kernels imports the stand-in, which imports this

        return kernels.erf(self, x)

    def broadcast_to(self, x, shape):
        """``x`` broadcast to ``shape``: a zero-copy view (used by every reduction's backward)."""
        return self._module.broadcast_to(x, tuple(shape))

    def sigmoid(self, x):
        """1 / (1 + exp(-x)) without overflow: exp is only ever taken of -|x|."""
        xp = self._module
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    def index_add(self, shape, index, values):
        """A new zero array of ``shape`` with ``values`` added at ``index`` (the adjoint of
        ``a[index]``).

        Repeated integer indices accumulate. Slices, integers and boolean masks cannot repeat, so
        they use a plain assignment, which is much faster than a scatter-add.
        """
        out = self._module.zeros(shape, dtype=values.dtype)
        if _index_is_unique(index):
            out[index] = values
        else:
            self.scatter_add(out, index, values)
        return out

    def scatter_add(self, target, index, values):
        """In place: target[index] += values, with repeated indices accumulating (``add.at``,
        which NumPy and CuPy >= 12 both have)."""
        self._module.add.at(target, index, values)


class NumpyNamespace(ArrayNamespace):
    """NumPy on the CPU: the same functions, with one CPU-only speed-up."""

    def broadcast_to(self, x, shape):
        """``x`` broadcast to ``shape``. NumPy's ``broadcast_to`` spends ~2.5 us setting up a view;
        for small results a materialised copy costs a fraction of that, so small ones are copied.
        Large results stay zero-copy views."""
        shape = tuple(shape)
        if math.prod(shape) > _SMALL:
            return self._module.broadcast_to(x, shape)
        out = self._module.empty(shape, dtype=x.dtype)
        out[...] = x
        return out


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
