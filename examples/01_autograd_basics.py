# Run: python examples/01_autograd_basics.py
"""Tensors, ops, ``backward``, ``.grad``, ``no_grad``, and a Hessian-vector product.

Every gradient printed here is also worked out by hand (in a comment and in a check), so you can
see that autograd computes exactly the derivative you would write down.
"""

import numpy as np

import tinynet as tn


def section(title: str) -> None:
    print(f"\n== {title}")


def check(label: str, got: tn.Tensor, expected) -> None:
    ok = np.allclose(got.detach().cpu().numpy(), expected, rtol=1e-5, atol=1e-6)
    print(f"{label}: {got.detach().cpu().numpy().round(4).tolist()}  matches by hand: {ok}")


section("tensors")
x = tn.tensor([[1.0, 2.0], [3.0, 4.0]])
print("x =", x)
print("shape", x.shape, "dtype", x.dtype, "device", x.device)  # float32 on cpu by default
print("x @ x.T =", x @ x.T)
print("x.sum(axis=0) =", x.sum(axis=0), " x.exp().max() =", round(x.exp().max().item(), 3))

section("backward: y = sum(w * x^2 + 3 w)")
x = tn.tensor([1.0, 2.0, 3.0], requires_grad=True)
w = tn.tensor([0.5, -1.0, 2.0], requires_grad=True)
y = (w * x**2 + 3 * w).sum()
print("y =", y.item(), " y.grad_fn =", y.grad_fn)  # the last op of the recorded graph
y.backward()  # walks the graph backwards, filling .grad of every leaf that requires it
xs, ws = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
check("dy/dx = 2 w x   ", x.grad, 2 * ws * xs)
check("dy/dw = x^2 + 3 ", w.grad, xs**2 + 3)

section("gradients accumulate until you reset them")
(w * x).sum().backward()  # adds dy/dx = w on top of the previous 2 w x
check("x.grad = 2 w x + w", x.grad, 2 * ws * xs + ws)
x.grad = None  # the usual reset before the next step

section("no_grad: compute without recording a graph")
with tn.no_grad():
    z = (x * 2).sum()
print("inside no_grad, z.requires_grad =", z.requires_grad)
print("outside,       (x * 2).requires_grad =", (x * 2).requires_grad)
frozen = x.detach()  # the same values, cut from the graph
print("x.detach().requires_grad =", frozen.requires_grad)

section("broadcasting is undone in the gradient")
b = tn.tensor([10.0, 20.0], requires_grad=True)  # (2,)
m = tn.ones(3, 2)  # (3, 2)
((m + b) ** 2).sum().backward()  # b is broadcast over 3 rows, so its gradient sums 3 rows
check("d/db = 3 * 2 (1 + b)", b.grad, 3 * 2 * (1 + np.array([10.0, 20.0])))

section("second order: a Hessian-vector product")
# f(v) = sum(v^3) + v0 * v1: gradient g = 3 v^2 + (v1, v0), Hessian H = diag(6 v) + [[0,1],[1,0]]
v = tn.tensor([1.0, 2.0], requires_grad=True)
f = (v**3).sum() + v[0] * v[1]
(g,) = tn.grad(f, [v], create_graph=True)  # g is itself differentiable
u = tn.tensor([1.0, -1.0])
(hvp,) = tn.grad((g * u).sum(), [v])  # d/dv (g . u) = H u, without forming H
check("gradient 3 v^2 + (v1, v0)", g, [3 * 1 + 2, 3 * 4 + 1])
hessian = np.diag(6 * np.array([1.0, 2.0])) + np.array([[0, 1], [1, 0]])
check("H u                      ", hvp, hessian @ np.array([1.0, -1.0]))

section("gradients checked numerically (float64 central differences)")
a = tn.tensor([[0.3, -1.2], [0.8, 0.5]], dtype=tn.float64, requires_grad=True)
print("gradcheck(tanh(a @ a) * a):", tn.gradcheck(lambda t: (t @ t).tanh() * t, (a,)))
print("gradgradcheck(same)       :", tn.gradgradcheck(lambda t: (t @ t).tanh() * t, (a,)))
