# Run: python examples/02_custom_op.py
"""Write your own op: a ``tn.Function`` with ``forward`` and ``backward``, checked by ``gradcheck``.

The op is SiLU (also called swish): silu(x) = x * sigmoid(x), with derivative
silu'(x) = s + x s (1 - s), where s = sigmoid(x). Three rules make a custom op work everywhere:

1. ``forward`` and ``backward`` receive raw arrays; do all math through ``ctx.xp`` (NumPy on CPU,
   CuPy on a GPU), never through ``np.``: then the same code runs on every device.
2. ``backward`` returns one gradient per positional input of ``forward``.
3. Save inputs or the output with ``ctx.save_for_backward``, and recompute intermediates from them
   in ``backward``: under ``create_graph=True`` saved inputs become differentiable tensors again, so
   second derivatives (``gradgradcheck``) come out right too.
"""

import numpy as np

import tinynet as tn


class SiLU(tn.Function):
    """x * sigmoid(x)  ->  grad_x = g * (s + x s (1 - s)),  s = sigmoid(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * ctx.xp.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        s = ctx.xp.sigmoid(x)  # recomputed from x, so a second derivative sees its dependence on x
        return grad_out * (s + x * s * (1 - s))


class BuggySiLU(tn.Function):
    """The same op with a derivative that forgets the product rule: grad_x = g * s."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * ctx.xp.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.xp.sigmoid(x)  # wrong: d/dx (x s) is not s


class SiLUSavingS(tn.Function):
    """The right first derivative, but the intermediate s is saved instead of recomputed."""

    @staticmethod
    def forward(ctx, x):
        s = ctx.xp.sigmoid(x)
        ctx.save_for_backward(x, s)  # s is neither an input nor the output: a constant to autograd
        return x * s

    @staticmethod
    def backward(ctx, grad_out):
        x, s = ctx.saved_tensors
        return grad_out * (s + x * s * (1 - s))


def silu(x: tn.Tensor) -> tn.Tensor:
    return SiLU.apply(x)


print("== use it like any other op")
x = tn.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
y = silu(x)
print("silu(x)        =", y)
y.sum().backward()
print("d silu / dx    =", x.grad)
composed = tn.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
(composed * composed.sigmoid()).sum().backward()  # the same function built from existing ops
print("same as composing x * x.sigmoid():",
      np.allclose(x.grad.numpy(), composed.grad.numpy(), rtol=1e-6))

print("\n== check the derivatives against central differences (float64)")
a = tn.randn(3, 4, dtype=tn.float64, requires_grad=True, generator=tn.Generator(0))
print("gradcheck(silu)     :", tn.gradcheck(silu, (a,)))
print("gradgradcheck(silu) :", tn.gradgradcheck(silu, (a,)))
print("inside a bigger expression:",
      tn.gradcheck(lambda t: (silu(t) @ t.T).log_softmax(axis=1), (a,)))

print("\n== a wrong backward is caught, and the report says where")
print("gradcheck(buggy)    :", tn.gradcheck(BuggySiLU.apply, (a,), raise_exception=False))
try:
    tn.gradcheck(BuggySiLU.apply, (a,))
except tn.GradcheckError as err:
    print("GradcheckError:", "\n".join(str(err).splitlines()[:2]))  # the headline, the worst entry
print("saving the intermediate s: gradcheck", tn.gradcheck(SiLUSavingS.apply, (a,)),
      "but gradgradcheck", tn.gradgradcheck(SiLUSavingS.apply, (a,), raise_exception=False))

print("\n== the same class runs on the stand-in device (CuPy's rules, checked without a GPU)")
s = tn.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], device="standin", requires_grad=True)
silu(s).sum().backward()
print("device", s.grad.device, "gradient equal to the CPU one:",
      np.allclose(s.grad.cpu().numpy(), x.grad.numpy()))
