"""Numerical gradient checks: ``gradcheck`` and ``gradgradcheck``.

The analytic gradients (what backward computes) are compared with central differences
``(f(x + eps) - f(x - eps)) / 2 eps`` on the host in float64 (divided by the step actually
stored, which in float32 differs from ``2 eps``). Two modes:

* full (default): the whole Jacobian, element by element: one backward per output element and two
  forward passes per input element. Exact localisation of any error; meant for small inputs.
* ``fast_mode=True``: random directions ``u`` (inputs) and ``v`` (outputs), comparing
  ``v . J u`` from one backward with the same quantity from two forward passes, per input. Cheap for
  large inputs; a wrong gradient is caught with probability 1.

Before comparing numbers, ``fn`` runs once forward and once backward under watch
(``gradcheck_inplace.py``): an op that writes to its inputs or to its upstream gradient, or a
``.grad`` that shares memory with an input, fails with a message saying exactly that. A
disagreement raises :class:`GradcheckError`, worded by ``gradcheck_report.py``: the function and
the argument by name, every failing ``d out[i] / d x[j]`` (worst first), the input values near the
worst one and both Jacobians when small.

Tolerances (:data:`TOLERANCES`) follow the inputs' dtype: float64 by default; float32 inputs need
``allow_float32=True`` and get a larger step and looser tolerances.
"""

from __future__ import annotations

from . import backend
from .autograd import enable_grad, grad, no_grad
from .gradcheck_inplace import graph, watched_backward, watched_forward
from .gradcheck_report import GradcheckError, Labels, jacobian_mismatch, unravel
from .tensor import Tensor

# float64: rounding (~1e-16 / 1e-6) and truncation (~1e-12) errors of the difference are far below
# the tolerances. float32: rounding error is ~6e-8 * |f| / step, so the step must be much larger;
# 1e-3 balances it against the truncation error (step^2 * f''' / 6).
TOLERANCES = {
    "float64": {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3},
    "float32": {"eps": 1e-3, "atol": 1e-2, "rtol": 1e-2},
}

SECOND_ORDER_HINT = (
    "Hint: under create_graph=True a backward runs on Tensors and is itself recorded. A value "
    "saved with ctx.save_for_backward that is neither an input nor the output of forward (a "
    "derived array such as 1 / x, or a mask) comes back as a constant of the derivative: its own "
    "dependence on the inputs is lost, and the second derivative misses that term. Save the "
    "inputs (or the output) and recompute derived values in backward with ctx.xp.")


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


_CPU = backend.Device("cpu")


def _host(t: Tensor):
    """A flat float64 host copy of ``t``'s data (a copy: fn may return an input it perturbs)."""
    return backend.transfer(t.data, t.device, _CPU).astype("float64").ravel()


def _float_outputs(outputs) -> list:
    return [o for o in _as_tuple(outputs) if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _evaluate(fn, inputs):
    """fn(*inputs) as one flat host vector of all floating outputs."""
    with no_grad():
        outs = _float_outputs(fn(*inputs))
    host = backend.host_namespace()
    return host.concatenate([_host(o) for o in outs]) if outs else host.zeros(0)


def _check_inputs(inputs, allow_float32: bool, labels: Labels) -> list[int]:
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError(f"{labels.prefix()}: no input has requires_grad=True, so there is "
                         f"nothing to check")
    for i in checked:
        dtype = inputs[i].dtype
        if dtype != backend.float64 and not (allow_float32 and dtype == backend.float32):
            raise ValueError(
                f"{labels.prefix()}: {labels.input(i, inputs[i])} is {dtype}; central "
                f"differences need float64 (eps=1e-6 is below float32 resolution). Pass float64 "
                f"inputs, or float32 ones with allow_float32=True (a larger step and looser "
                f"tolerances: {TOLERANCES['float32']})")
    return checked


def _tolerances(inputs, checked, eps, atol, rtol) -> dict:
    low = any(inputs[i].dtype == backend.float32 for i in checked)
    chosen = TOLERANCES["float32" if low else "float64"]
    given = {"eps": eps, "atol": atol, "rtol": rtol}
    return {k: chosen[k] if v is None else v for k, v in given.items()}


def gradcheck(fn, inputs, *, eps: float | None = None, atol: float | None = None,
              rtol: float | None = None, fast_mode: bool = False, raise_exception: bool = True,
              allow_float32: bool = False, check_inplace: bool = True, seed: int = 0) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central differences.

    Args:
        fn: takes the inputs, returns a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple; those with ``requires_grad=True`` (float64) are checked.
        eps, atol, rtol: step and tolerances; an element passes when
            ``|analytic - numeric| <= atol + rtol * |numeric|``. None: :data:`TOLERANCES` for the
            inputs' dtype.
        fast_mode: compare random directional derivatives instead of full Jacobians.
        raise_exception: raise :class:`GradcheckError` on failure (else return False).
        allow_float32: accept float32 inputs (with float32 tolerances unless given).
        check_inplace: first check that forward and backward leave the inputs and upstream
            gradients unchanged and that no ``.grad`` aliases them.
        seed: seeds the random upstream gradients and directions.

    Example:
        >>> x = tn.randn(3, 4, dtype=tn.float64, requires_grad=True)
        >>> tn.gradcheck(lambda x: (x * x).tanh().sum(axis=0), (x,))
        True
    """
    inputs = _as_tuple(inputs)
    return _gradcheck(fn, inputs, Labels(fn, len(inputs)), eps=eps, atol=atol, rtol=rtol,
                      fast_mode=fast_mode, raise_exception=raise_exception,
                      allow_float32=allow_float32, check_inplace=check_inplace, seed=seed)


def _gradcheck(fn, inputs, labels: Labels, *, eps, atol, rtol, fast_mode, raise_exception,
               allow_float32, check_inplace, seed) -> bool:
    checked = _check_inputs(inputs, allow_float32, labels)
    tol = _tolerances(inputs, checked, eps, atol, rtol)
    try:
        if check_inplace:
            outputs = _float_outputs(watched_forward(fn, inputs, labels))
        else:
            with enable_grad():
                outputs = _float_outputs(fn(*inputs))
        if labels.output_names is None:
            labels.set_outputs(len(outputs))
        if check_inplace:
            watched_backward(outputs, inputs, checked, labels)
        if fast_mode:
            _check_directional(fn, inputs, checked, outputs, labels, tol, seed)
        else:
            _check_full(fn, inputs, checked, outputs, labels, tol)
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
        up = data[index].item()  # the value stored (float32 rounds orig + eps)
        plus = _evaluate(fn, inputs)
        data[index] = orig - eps
        down = data[index].item()
        minus = _evaluate(fn, inputs)
    finally:
        data[index] = orig
    return (plus - minus) / (up - down)


def _analytic_rows(outputs, inputs, checked, labels: Labels) -> dict:
    """The analytic Jacobian of every checked input, built one output element at a time."""
    host = backend.host_namespace()
    total = sum(o.numel() for o in outputs)
    jac = {i: host.zeros((total, inputs[i].numel())) for i in checked}
    row = 0
    for o in outputs:
        for k in range(o.numel()):
            if o.requires_grad:
                # Seed this one output alone: fn may return the same Tensor twice (``a + b``'s
                # first derivative is ``(v, v)``), and seeding by identity would count it twice.
                onehot = host.zeros(o.shape, dtype=o.dtype)
                onehot[unravel(k, o.shape)] = 1
                grads = grad([o], [inputs[i] for i in checked], [Tensor(onehot, device=o.device)],
                             retain_graph=True, allow_unused=True)
                for i, g in zip(checked, grads):
                    if g is not None:
                        _check_grad_meta(labels, i, inputs[i], g)
                        jac[i][row] = _host(g)
            row += 1
    return jac


def _check_grad_meta(labels: Labels, i: int, x: Tensor, g: Tensor):
    if g.shape != x.shape or g.dtype != x.dtype or g.device != x.device:
        raise GradcheckError(
            f"{labels.prefix()}: the gradient for {labels.input(i)} has shape "
            f"{tuple(g.shape)}, dtype {g.dtype}, device {g.device}; the input has shape "
            f"{tuple(x.shape)}, dtype {x.dtype}, device {x.device}")


def _check_full(fn, inputs, checked, outputs, labels: Labels, tol: dict):
    host = backend.host_namespace()
    analytic = _analytic_rows(outputs, inputs, checked, labels)
    out_shapes = [tuple(o.shape) for o in outputs]
    for i in checked:
        x = inputs[i]
        numeric = host.zeros_like(analytic[i])
        for col in range(x.numel()):
            numeric[:, col] = _numeric_column(fn, inputs, x, unravel(col, x.shape), tol["eps"])
        if analytic[i].size == 0:
            continue
        excess = host.abs(analytic[i] - numeric) - (tol["atol"] + tol["rtol"] * host.abs(numeric))
        bad = ~(excess <= 0)  # NaN counts as a failure
        if bad.any():
            x_values = x.detach().cpu().numpy().astype("float64")
            raise GradcheckError(jacobian_mismatch(labels, i, x, x_values, analytic[i], numeric,
                                                   bad, excess, out_shapes, tol), "mismatch")


def _check_directional(fn, inputs, checked, outputs, labels: Labels, tol: dict, seed: int):
    gen = backend.Generator(seed)
    live = [o for o in outputs if o.requires_grad]
    vs = [gen.normal(o.shape, backend.float64) for o in outputs]
    v_flat = backend.host_namespace().concatenate([v.ravel() for v in vs]) if vs else None
    seeds = [Tensor(v, dtype=o.dtype, device=o.device) for v, o in zip(vs, outputs)
             if o.requires_grad]
    grads = (grad(live, [inputs[i] for i in checked], seeds, retain_graph=True,
                  allow_unused=True) if live else [None] * len(checked))
    for i, g in zip(checked, grads):
        x = inputs[i]
        u = gen.normal(x.shape, backend.float64)
        numeric, u_step = _directional_numeric(fn, inputs, x, u, tol["eps"], v_flat)
        analytic = 0.0
        if g is not None:
            _check_grad_meta(labels, i, x, g)
            analytic = float((_host(g) * u_step).sum())
        if not abs(analytic - numeric) <= tol["atol"] + tol["rtol"] * abs(numeric):
            rel = abs(analytic - numeric) / max(abs(numeric), 1e-300)
            raise GradcheckError(
                f"{labels.prefix()} (fast mode): the directional derivative v . J u for "
                f"{labels.input(i, x)} is analytic {analytic!r}, numeric {numeric!r}, relative "
                f"error {rel:.3g} (v, u random); rerun with fast_mode=False to find the failing "
                f"elements", "mismatch")


def _directional_numeric(fn, inputs, x: Tensor, u, eps, v_flat):
    """v . (f(x + eps u) - f(x - eps u)) / 2 eps, and the direction the stored steps really took."""
    if v_flat is None:
        return 0.0, u.ravel()
    orig = x.data.copy()
    step = Tensor(u * eps, dtype=x.dtype, device=x.device).data
    try:
        x.data[...] = orig + step
        up = _host(x)
        plus = _evaluate(fn, inputs)
        x.data[...] = orig - step
        down = _host(x)
        minus = _evaluate(fn, inputs)
    finally:
        x.data[...] = orig
    return float(((plus - minus) / (2 * eps) * v_flat).sum()), (up - down) / (2 * eps)


def gradgradcheck(fn, inputs, grad_outputs=None, *, eps: float | None = None,
                  atol: float | None = None, rtol: float | None = None, fast_mode: bool = False,
                  raise_exception: bool = True, allow_float32: bool = False,
                  check_inplace: bool = True, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of ``(inputs, v) -> v . J`` built with
    ``create_graph=True``. ``grad_outputs`` (``v``) are random tensors of the outputs' dtypes
    unless given; they are checked as inputs too. On a mismatch the message adds a hint about
    values saved for backward that become constants under ``create_graph``.

    Example:
        >>> x = tn.randn(3, dtype=tn.float64, requires_grad=True)
        >>> tn.gradgradcheck(lambda x: (x ** 3).sum(), (x,))
        True
    """
    inputs = _as_tuple(inputs)
    first = Labels(fn, len(inputs))
    checked = _check_inputs(inputs, allow_float32, first)
    with enable_grad():
        outputs = _float_outputs(fn(*inputs))
    if grad_outputs is None:
        gen = backend.Generator(seed)
        grad_outputs = tuple(Tensor(gen.normal(o.shape, backend.float64), dtype=o.dtype,
                                    device=o.device, requires_grad=True) for o in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    n = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        with enable_grad():  # gradcheck evaluates under no_grad; this graph is needed here
            outs = _float_outputs(fn(*xs))
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        if not pairs:
            return tuple(Tensor(backend.host_namespace().zeros(xs[i].shape), dtype=xs[i].dtype,
                                device=xs[i].device) for i in checked)
        return grad([o for o, _ in pairs], [xs[i] for i in checked], [v for _, v in pairs],
                    create_graph=True, materialize_grads=True)

    labels = Labels(fn, n + len(grad_outputs), check="gradgradcheck")
    labels.inputs = first.inputs + (["grad_out"] if len(grad_outputs) == 1 else
                                    [f"grad_out{k}" for k in range(len(grad_outputs))])
    labels.set_outputs(len(checked), [f"grad_{first.inputs[i]}".replace(" ", "")
                                      for i in checked])
    try:
        return _gradcheck(first_derivative, inputs + grad_outputs, labels, eps=eps, atol=atol,
                          rtol=rtol, fast_mode=fast_mode, raise_exception=True,
                          allow_float32=allow_float32, check_inplace=check_inplace, seed=seed)
    except GradcheckError as exc:
        if not raise_exception:
            return False
        if exc.kind != "mismatch":
            raise
        raise GradcheckError(f"{exc.args[0]}\n{_second_order_hint(outputs)}", "mismatch") \
            from None


def _second_order_hint(outputs) -> str:
    """The hint, naming the Functions in ``fn``'s graph that tinynet does not define."""
    nodes, _ = graph(outputs)
    own = sorted({v.fn.__qualname__ for v in nodes if not v.fn.__module__.startswith("tinynet.")})
    mine = f" Functions in this graph that tinynet does not define: {', '.join(own)}." if own else ""
    return SECOND_ORDER_HINT + mine


__all__ = ["GradcheckError", "TOLERANCES", "gradcheck", "gradgradcheck"]
