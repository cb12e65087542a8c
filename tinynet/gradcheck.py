"""Numerical gradient checks: ``gradcheck`` and ``gradgradcheck``.

The analytic gradients (what backward computes) are compared with central differences
``(f(x + eps) - f(x - eps)) / 2 eps`` in float64. Two modes:

* full (default): the whole Jacobian, element by element: one backward per output element and two
  forward passes per input element. Exact localisation of any error; meant for small inputs.
* ``fast_mode=True``: random directions ``u`` (inputs) and ``v`` (outputs), comparing
  ``v . J u`` from one backward with the same quantity from two forward passes, per input. Cheap for
  large inputs; a wrong gradient is caught with probability 1.

A failure raises :class:`GradcheckError` naming the input, the worst element, the analytic and
numeric values and the relative error. Comparison happens on the host (explicit ``.cpu()`` copies).
"""

from __future__ import annotations

from . import backend
from .autograd import enable_grad, grad, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree (the message says where and by how much)."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _host(t: Tensor):
    return t.detach().cpu().numpy().astype("float64").ravel()


def _float_outputs(outputs) -> list:
    return [o for o in _as_tuple(outputs) if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _evaluate(fn, inputs):
    """fn(*inputs) as one flat host vector of all floating outputs."""
    with no_grad():
        outs = _float_outputs(fn(*inputs))
    host = backend.host_namespace()
    return host.concatenate([_host(o) for o in outs]) if outs else host.zeros(0)


def _unravel(flat: int, shape: tuple) -> tuple:
    index = []
    for size in reversed(shape):
        flat, r = divmod(flat, size)
        index.append(r)
    return tuple(reversed(index))


def _check_inputs(inputs, allow_float32: bool):
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != backend.float64 and not allow_float32:
            raise ValueError(
                f"gradcheck: input {i} is {inputs[i].dtype}; central differences need float64 "
                f"(eps=1e-6 is below float32 resolution). Pass float64 inputs, or "
                f"allow_float32=True with a much larger eps and tolerances")
    return checked


def gradcheck(fn, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, raise_exception: bool = True, allow_float32: bool = False,
              seed: int = 0) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central differences.

    Args:
        fn: takes the inputs, returns a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple; those with ``requires_grad=True`` (float64) are checked.
        eps, atol, rtol: step and tolerances; an element passes when
            ``|analytic - numeric| <= atol + rtol * |numeric|``.
        fast_mode: compare random directional derivatives instead of full Jacobians.
        raise_exception: raise :class:`GradcheckError` on failure (else return False).
        seed: seeds the random directions (fast mode).

    Example:
        >>> x = tn.randn(3, 4, dtype=tn.float64, requires_grad=True)
        >>> tn.gradcheck(lambda x: (x * x).tanh().sum(axis=0), (x,))
        True
    """
    inputs = _as_tuple(inputs)
    checked = _check_inputs(inputs, allow_float32)
    try:
        if fast_mode:
            _check_directional(fn, inputs, checked, eps, atol, rtol, seed)
        else:
            _check_full(fn, inputs, checked, eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _numeric_column(fn, inputs, x: Tensor, index: tuple, eps: float):
    """d(all outputs)/d(x[index]) by central differences, restoring x exactly afterwards."""
    data = x.data
    orig = data[index].item()
    try:
        data[index] = orig + eps
        plus = _evaluate(fn, inputs)
        data[index] = orig - eps
        minus = _evaluate(fn, inputs)
    finally:
        data[index] = orig
    return (plus - minus) / (2 * eps)


def _analytic_rows(fn, inputs, checked):
    """The analytic Jacobian of every checked input, built one output element at a time."""
    host = backend.host_namespace()
    with enable_grad():
        outputs = _float_outputs(fn(*inputs))
    sizes = [o.numel() for o in outputs]
    total = sum(sizes)
    jac = {i: host.zeros((total, inputs[i].numel())) for i in checked}
    live = [o for o in outputs if o.requires_grad]
    if not live:
        return jac, outputs
    row = 0
    for o, size in zip(outputs, sizes):
        for k in range(size):
            if o.requires_grad:
                # Seed this one output alone: fn may return the same Tensor twice (``a + b``'s
                # first derivative is ``(v, v)``), and seeding by identity would count it twice.
                onehot = host.zeros(o.shape, dtype=o.dtype)
                onehot[_unravel(k, o.shape)] = 1
                grads = grad([o], [inputs[i] for i in checked], [Tensor(onehot, device=o.device)],
                             retain_graph=True, allow_unused=True)
                for i, g in zip(checked, grads):
                    if g is not None:
                        _check_grad_meta(i, inputs[i], g)
                        jac[i][row] = _host(g)
            row += 1
    return jac, outputs


def _check_grad_meta(i, x: Tensor, g: Tensor):
    if g.shape != x.shape or g.dtype != x.dtype or g.device != x.device:
        raise GradcheckError(f"gradcheck: gradient for input {i} has shape {tuple(g.shape)}, dtype "
                             f"{g.dtype}, device {g.device}; the input has shape {tuple(x.shape)}, "
                             f"dtype {x.dtype}, device {x.device}")


def _check_full(fn, inputs, checked, eps, atol, rtol):
    host = backend.host_namespace()
    analytic, _ = _analytic_rows(fn, inputs, checked)
    for i in checked:
        x = inputs[i]
        numeric = host.zeros_like(analytic[i])
        for col in range(x.numel()):
            numeric[:, col] = _numeric_column(fn, inputs, x, _unravel(col, x.shape), eps)
        _compare(i, x, analytic[i], numeric, atol, rtol)


def _compare(i, x: Tensor, analytic, numeric, atol, rtol):
    host = backend.host_namespace()
    if analytic.size == 0:
        return
    excess = host.abs(analytic - numeric) - (atol + rtol * host.abs(numeric))
    bad = ~(excess <= 0)  # NaN counts as a failure
    if not bad.any():
        return
    flat = int(host.argmax(host.where(bad, host.nan_to_num(excess, nan=host.inf), -host.inf)))
    row, col = divmod(flat, analytic.shape[1])
    a, n = float(analytic[row, col]), float(numeric[row, col])
    rel = abs(a - n) / max(abs(n), 1e-300)
    raise GradcheckError(
        f"gradcheck failed for input {i} (shape {tuple(x.shape)}): {int(bad.sum())} of "
        f"{bad.size} Jacobian entries differ; worst at input element "
        f"{_unravel(col, x.shape)}, output element {row}: analytic {a!r}, numeric {n!r}, "
        f"absolute error {abs(a - n):.3g}, relative error {rel:.3g} "
        f"(atol={atol}, rtol={rtol})")


def _check_directional(fn, inputs, checked, eps, atol, rtol, seed):
    gen = backend.Generator(seed)
    with enable_grad():
        outputs = _float_outputs(fn(*inputs))
    live = [o for o in outputs if o.requires_grad]
    vs = [gen.normal(o.shape, backend.float64) for o in outputs]
    v_flat = backend.host_namespace().concatenate([v.ravel() for v in vs]) if vs else None
    seeds = [Tensor(v, dtype=o.dtype, device=o.device) for v, o in zip(vs, outputs)
             if o.requires_grad]
    grads = (grad(live, [inputs[i] for i in checked], seeds, allow_unused=True) if live
             else [None] * len(checked))
    for i, g in zip(checked, grads):
        x = inputs[i]
        u = gen.normal(x.shape, backend.float64)
        analytic = 0.0
        if g is not None:
            _check_grad_meta(i, x, g)
            analytic = float((_host(g) * u.ravel()).sum())
        numeric = _directional_numeric(fn, inputs, x, u, eps, v_flat)
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            rel = abs(analytic - numeric) / max(abs(numeric), 1e-300)
            raise GradcheckError(
                f"gradcheck (fast mode) failed for input {i} (shape {tuple(x.shape)}): directional "
                f"derivative v.J.u analytic {analytic!r}, numeric {numeric!r}, relative error "
                f"{rel:.3g}; rerun with fast_mode=False to find the worst element")


def _directional_numeric(fn, inputs, x: Tensor, u, eps, v_flat) -> float:
    if v_flat is None:
        return 0.0
    orig = x.data.copy()
    step = Tensor(u * eps, dtype=x.dtype, device=x.device).data
    try:
        x.data[...] = orig + step
        plus = _evaluate(fn, inputs)
        x.data[...] = orig - step
        minus = _evaluate(fn, inputs)
    finally:
        x.data[...] = orig
    return float(((plus - minus) / (2 * eps) * v_flat).sum())


def gradgradcheck(fn, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool = False, raise_exception: bool = True,
                  seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of ``(inputs, v) -> v . J`` built with
    ``create_graph=True``. ``grad_outputs`` (``v``) are random float64 tensors unless given; they are
    checked as inputs too.

    Example:
        >>> x = tn.randn(3, dtype=tn.float64, requires_grad=True)
        >>> tn.gradgradcheck(lambda x: (x ** 3).sum(), (x,))
        True
    """
    inputs = _as_tuple(inputs)
    checked = _check_inputs(inputs, False)
    with enable_grad():
        outputs = _float_outputs(fn(*inputs))
    if grad_outputs is None:
        gen = backend.Generator(seed)
        grad_outputs = tuple(
            Tensor(gen.normal(o.shape, backend.float64), device=o.device, requires_grad=True)
            for o in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    n = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        with enable_grad():  # gradcheck evaluates under no_grad; this graph is needed here
            outs = _float_outputs(fn(*xs))
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        if not pairs:
            return tuple(Tensor(backend.host_namespace().zeros(xs[i].shape), device=xs[i].device)
                         for i in checked)
        return grad([o for o, _ in pairs], [xs[i] for i in checked], [v for _, v in pairs],
                    create_graph=True, materialize_grads=True)

    return gradcheck(first_derivative, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     fast_mode=fast_mode, raise_exception=raise_exception, seed=seed)


__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]
