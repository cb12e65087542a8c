"""The array namespace that backward formulas see under ``create_graph=True``.

A first-order backward runs with ``ctx.xp`` = the device's array namespace (NumPy/CuPy functions on
raw arrays). Under ``create_graph=True`` the engine runs the *same* backward with ``ctx.xp`` =
``tensor_namespace`` below and the saved values as Tensors: every name here has NumPy's signature and
meaning, but is a recorded tinynet op, so the gradient it builds can be differentiated again.

Only the names backward formulas use are here; anything else raises a clear ``AttributeError``.
"""

from __future__ import annotations

from ..tensor import Tensor
from . import elementwise, indexing, linalg, shape


class TensorNamespace:
    """NumPy-named, differentiable functions on Tensors (see the module docstring)."""

    name = "tensor"

    # differentiable, NumPy signatures
    exp = staticmethod(elementwise.exp)
    log = staticmethod(elementwise.log)
    sqrt = staticmethod(elementwise.sqrt)
    sin = staticmethod(elementwise.sin)
    cos = staticmethod(elementwise.cos)
    tanh = staticmethod(elementwise.tanh)
    erf = staticmethod(elementwise.erf)
    sigmoid = staticmethod(elementwise.sigmoid)
    abs = staticmethod(elementwise.abs)
    maximum = staticmethod(elementwise.maximum)
    minimum = staticmethod(elementwise.minimum)
    where = staticmethod(elementwise.where)
    matmul = staticmethod(linalg.matmul)
    swapaxes = staticmethod(shape.swapaxes)
    broadcast_to = staticmethod(shape.broadcast_to)

    @staticmethod
    def transpose(x, axes=None):
        """NumPy's transpose (a full permutation), not PyTorch's two-axis swap."""
        return shape.transpose(x, axes)

    @staticmethod
    def index_add(shape_, index, values):
        return indexing.index_add(values, shape_, index)

    # constants of the derivative: no gradient flows through these
    @staticmethod
    def sign(x: Tensor) -> Tensor:
        return Tensor._make(x.device.xp.sign(x.data), x.device)

    def __getattr__(self, name):
        raise AttributeError(
            f"'{name}' is not available to backward formulas under create_graph=True; add a "
            "differentiable version to tinynet/ops/namespace.py (TensorNamespace)")


tensor_namespace = TensorNamespace()
