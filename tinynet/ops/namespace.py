"""The array namespace that backward formulas see under ``create_graph=True``.

A first-order backward runs with ``ctx.xp`` = the device's array namespace (NumPy/CuPy functions on
raw arrays). Under ``create_graph=True`` the engine runs the *same* backward with ``ctx.xp`` =
:data:`tensor_namespace` and the saved inputs and output as Tensors: every name here has NumPy's
signature and meaning, but is a recorded tinynet op, so the gradient it builds can be
differentiated again. Array *methods* and operators (``g.sum(axis=0)``, ``g * out``,
``g.reshape(shape)``) need nothing here: Tensor has them with NumPy's keywords.

Op modules add their functions where they define them (``@tensor_namespace.register`` under the
op's class); :meth:`TensorNamespace.register` is also how a user makes a function of their own
available to backward formulas. Anything else raises an ``AttributeError`` that says so.
"""

from __future__ import annotations

from ..tensor import Tensor


class TensorNamespace:
    """NumPy-named, differentiable functions on Tensors (see the module docstring)."""

    name = "tensor"

    def register(self, fn=None, *, name: str | None = None):
        """Make ``fn`` available as ``ctx.xp.<name>`` (default: its own name) under create_graph.

        ``fn`` must take NumPy's arguments for that name and be built from tinynet ops, so that
        its result is differentiable. Usable as a decorator; returns ``fn``.
        """
        if fn is None:
            return lambda f: self.register(f, name=name)
        setattr(type(self), name or fn.__name__, staticmethod(fn))
        return fn

    # constants of the derivative: no gradient flows through these
    @staticmethod
    def sign(x: Tensor) -> Tensor:
        return Tensor.wrap(x.device.xp.sign(x.data), x.device)

    def __getattr__(self, name):
        raise AttributeError(
            f"'{name}' is not available to backward formulas under create_graph=True: make a "
            f"differentiable version known with tinynet.ops.namespace.tensor_namespace.register")


tensor_namespace = TensorNamespace()
