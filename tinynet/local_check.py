"""One node's gradient against finite differences of that node alone (``tn.trace``'s
``finite_differences=True``).

For a node with upstream gradient ``g``, the gradient it sends to input ``i`` should be the
gradient of ``s(x_i) = <g, op(..., x_i, ...)>`` with respect to ``x_i`` (for an op with several
outputs, the sum of ``<g_k, output_k>`` over the outputs that got a gradient). :func:`numeric_check`
re-runs the op's own ``forward`` (on float64 copies of the inputs the trace kept, with the same
keyword parameters) at ``x_i +- eps`` per element, and compares the central differences with
what backward sent. It isolates one op: a wrong formula shows up on its own row, not only as a
wrong leaf gradient. Inputs larger than ``max_elements`` are checked along one random direction
``u`` instead (``<grad, u>`` against the difference quotient along ``u``), as
``gradcheck(fast_mode=True)`` does.

Read ``debug.py`` first (the trace that calls this).
"""

from __future__ import annotations

from . import backend
from .function import Node
from .tensor import Tensor

ATOL, RTOL = 1e-5, 1e-3  # gradcheck's float64 tolerances: |numeric - analytic| <= ATOL + RTOL|n|


def _promoted(xp, a):
    """Float arrays promoted to float64 (differences of a 1e-6 step need the precision)."""
    if hasattr(a, "dtype") and hasattr(a, "shape") and a.dtype.kind == "f":
        return a.astype(xp.float64)
    return a


def numeric_check(node: Node, record, i: int, g, analytic, eps: float, max_elements: int,
                  keep_values: bool) -> dict:
    """Central differences of ``<g, op(inputs)>`` with respect to input ``i`` of ``node``.

    Returns ``{"mode": "elementwise" | "directional", "max_error", "ok"}``, plus ``"value"`` (the
    numeric gradient, elementwise mode with ``keep_values``) or ``"numeric"``/``"analytic"`` (the
    two directional derivatives); ``{"mode": "n/a", "reason"}`` when the check cannot run.
    """
    if record is None or record.arrays is None or any(
            a is None for a, m in zip(record.arrays, node.metas) if m is not None):
        return {"mode": "n/a", "reason": "the forward ran outside tn.trace()"}
    xp = node.device.xp
    args = [_promoted(xp, a) for a in record.arrays]
    several = type(g) is tuple  # a multi-output node: one upstream gradient per output (or None)
    weights = tuple(None if w is None else _promoted(xp, w) for w in g) if several \
        else _promoted(xp, g)
    analytic = analytic.astype(xp.float64)

    def objective(x) -> float:
        trial = list(args)
        trial[i] = x
        ctx = Node(node.fn, node.device)
        ctx.needs_input_grad = node.needs_input_grad
        out = node.fn.forward(ctx, *trial, **record.params)
        if several:  # <g, op(x)> summed over the outputs that got a gradient
            return sum(float(xp.sum(w * xp.asarray(o))) for w, o in zip(weights, out)
                       if w is not None)
        return float(xp.sum(weights * xp.asarray(out)))

    x = args[i]
    try:
        if x.size <= max_elements:
            numeric = xp.zeros(x.shape, dtype=xp.float64)
            flat = numeric.reshape(-1)
            for k in range(x.size):
                step = xp.zeros(x.size, dtype=xp.float64)
                step[k] = eps
                step = step.reshape(x.shape)
                flat[k] = (objective(x + step) - objective(x - step)) / (2 * eps)
            error = float(xp.max(xp.abs(numeric - analytic))) if x.size else 0.0
            bound = ATOL + RTOL * (float(xp.max(xp.abs(numeric))) if x.size else 0.0)
            result = {"mode": "elementwise", "max_error": error, "ok": error <= bound}
            if keep_values:
                result["value"] = Tensor.wrap(numeric, node.device)
            return result
        u = node.device.from_host(backend.Generator(0).normal(x.shape, backend.float64))
        along = (objective(x + eps * u) - objective(x - eps * u)) / (2 * eps)
        exact = float(xp.sum(analytic * u))
        error = abs(along - exact)
        return {"mode": "directional", "numeric": along, "analytic": exact, "max_error": error,
                "ok": error <= ATOL + RTOL * abs(along)}
    except Exception as exc:  # noqa: BLE001 - a replay that cannot run is reported, not raised
        return {"mode": "n/a", "reason": f"re-running {node.name}.forward failed: {exc}"}
