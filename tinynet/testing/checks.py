"""The assertions users put in their own property tests: ``check_gradients`` and ``check_op``.

``check_gradients`` runs :func:`tinynet.gradcheck` (and :func:`tinynet.gradgradcheck` with
``second_order=True``); ``check_op`` first compares the forward with a NumPy reference (MyGrad's
``true_func``), then checks the gradients. Both fail with an ``AssertionError`` whose message names
the function, the argument and the elements (see ``tinynet/gradcheck_report.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import tinynet as tn
from tinynet.gradcheck_report import (
    Labels, element, function_name, neighbourhood, show, unravel,
)

# Forward against the reference, by the dtype of the op's output: (rtol, atol).
FORWARD_TOLERANCES = {"float64": (1e-7, 1e-9), "float32": (1e-4, 1e-5)}
MAX_LISTED = 10


def check_gradients(fn: Callable[..., tn.Tensor | tuple], *tensors: tn.Tensor,
                    eps: float | None = None, atol: float | None = None,
                    rtol: float | None = None, second_order: bool = False,
                    fast_mode: bool = False, allow_float32: bool = False,
                    check_inplace: bool = True) -> None:
    """Assert that ``fn``'s backward agrees with central differences at ``tensors``.

    Args:
        fn: takes the tensors, returns a Tensor or a tuple of Tensors.
        *tensors: the inputs; those with ``requires_grad=True`` are checked (float64, or float32
            with ``allow_float32``).
        eps: the central-difference step; atol, rtol: an element passes when
            ``|analytic - numeric| <= atol + rtol * |numeric|``. None picks
            ``tn.gradcheck``'s defaults for the dtype: float64 ``eps=1e-6, atol=1e-5,
            rtol=1e-3``; float32 ``eps=1e-3, atol=1e-2, rtol=1e-2``.
        second_order: also check second derivatives (``gradgradcheck``: the backward itself must be
            differentiable, as it is for every built-in op and for a ``Function`` whose backward is
            written with ``ctx.xp`` and array operators).
        fast_mode: compare derivatives along random directions instead of full Jacobians: one
            backward per input instead of one per output element. For inputs too big for the full
            check; rerun without it to find the failing elements.
        allow_float32: accept float32 inputs. Rounding in float32 forces a step about 1000 times
            larger and tolerances 100 times looser, so only gross errors are caught: check in
            float64 where you can, and in float32 to see that your op works in float32 at all.
        check_inplace: first check that forward and backward leave the inputs and upstream
            gradients unchanged and that no ``.grad`` aliases them.

    Raises:
        AssertionError (``tn.GradcheckError``): the message names the function and the argument,
            lists every failing element ``d out[i] / d x[j]`` (worst first), the input values near
            the worst one and, when small, both Jacobians.

    Example:
        >>> x = tn.randn(3, dtype=tn.float64, requires_grad=True)
        >>> check_gradients(lambda x: (x * x).sum(), x, second_order=True)
    """
    options = {"eps": eps, "atol": atol, "rtol": rtol, "fast_mode": fast_mode,
               "allow_float32": allow_float32, "check_inplace": check_inplace}
    checks = (tn.gradcheck, tn.gradgradcheck) if second_order else (tn.gradcheck,)
    for check in checks:
        try:
            check(fn, tensors, **options)
        except tn.GradcheckError as exc:
            raise exc.with_traceback(None) from None  # the message says it all


def check_op(fn: Callable[..., tn.Tensor | tuple], *inputs, reference: Callable,
             forward_rtol: float | None = None, forward_atol: float | None = None,
             gradients: bool = True, second_order: bool = False, **gradient_options) -> None:
    """Assert that ``fn`` computes what ``reference`` computes, and that its gradients are right.

    The forward check calls ``fn(*inputs)`` and ``reference(*host_inputs)``, where each tensor
    input becomes a float64 NumPy copy (other arguments are passed as they are), and compares
    every output: the number of outputs, each shape, the device (that of the inputs), the dtype
    (float32 inputs must give float32 outputs) and the values, within ``forward_rtol`` and
    ``forward_atol`` (:data:`FORWARD_TOLERANCES` for the output's dtype). Then, unless
    ``gradients=False``, :func:`check_gradients` with ``second_order`` and ``gradient_options``
    (``eps``, ``atol``, ``rtol``, ``fast_mode``, ``allow_float32``, ``check_inplace``).

    Example:
        >>> x = tn.tensor([0.5, 1.5], dtype=tn.float64, requires_grad=True)
        >>> check_op(lambda x: x.tanh() * 2, x, reference=lambda a: np.tanh(a) * 2,
        ...          second_order=True)
    """
    labels = Labels(fn, len(inputs), check="check_op")
    hosts = [t.detach().cpu().numpy().astype(np.float64) if isinstance(t, tn.Tensor) else t
             for t in inputs]
    with tn.no_grad():
        got = fn(*inputs)
    expected = reference(*hosts)
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    labels.set_outputs(len(got))
    ref_name = function_name(reference)
    if len(got) != len(expected):
        raise AssertionError(f"{labels.prefix()}: returned {len(got)} output(s), the reference "
                             f"{ref_name} {len(expected)}")
    tensors = [t for t in inputs if isinstance(t, tn.Tensor)]
    float_dtypes = {t.dtype for t in tensors if t.dtype.kind == "f"}
    for k, (out, ref) in enumerate(zip(got, expected)):
        name = labels.output(k)
        if not isinstance(out, tn.Tensor):
            raise AssertionError(f"{labels.prefix()}: {name} is a {type(out).__name__}, not a "
                                 f"Tensor")
        ref = np.asarray(ref)
        if tensors and out.device != tensors[0].device:
            raise AssertionError(f"{labels.prefix()}: {name} is on {out.device}, the inputs on "
                                 f"{tensors[0].device}")
        if len(float_dtypes) == 1 and out.dtype.kind == "f" and out.dtype not in float_dtypes:
            raise AssertionError(f"{labels.prefix()}: {name} is {out.dtype} for "
                                 f"{next(iter(float_dtypes))} inputs")
        if tuple(out.shape) != ref.shape:
            raise AssertionError(f"{labels.prefix()}: {name} has shape {tuple(out.shape)}, the "
                                 f"reference {ref_name} gives {ref.shape}")
        rtol, atol = FORWARD_TOLERANCES["float32" if out.dtype == tn.float32 else "float64"]
        rtol = rtol if forward_rtol is None else forward_rtol
        atol = atol if forward_atol is None else forward_atol
        _compare_forward(labels, k, out.cpu().numpy().astype(np.float64), ref, inputs, ref_name,
                         rtol, atol)
    if gradients and any(t.requires_grad for t in tensors):
        check_gradients(fn, *inputs, second_order=second_order, **gradient_options)


def _compare_forward(labels: Labels, k: int, got, ref, inputs, ref_name: str, rtol, atol):
    ref = ref.astype(np.float64) if ref.dtype.kind in "fc" else ref
    both_nan = np.isnan(got) & np.isnan(ref) if ref.dtype.kind == "f" else False
    bad = ~(np.abs(got - ref) <= atol + rtol * np.abs(ref)) & ~both_nan
    if not bad.any():
        return
    name = labels.output(k)
    flat = np.flatnonzero(bad)
    order = flat[np.argsort(-np.nan_to_num(np.abs(got - ref).ravel()[flat], nan=np.inf),
                            kind="stable")]
    lines = [f"  {element(name, unravel(int(f), got.shape))}: got {float(got.flat[f])!r}, "
             f"expected {float(ref.flat[f])!r}" for f in order[:MAX_LISTED]]
    if len(order) > MAX_LISTED:
        lines.append(f"  ... and {len(order) - MAX_LISTED} more")
    worst = unravel(int(order[0]), got.shape)
    near = []
    for i, t in enumerate(inputs):
        if not isinstance(t, tn.Tensor):
            continue
        values = t.detach().cpu().numpy().astype(np.float64)
        arg = labels.inputs[i]
        if values.shape == got.shape:  # elementwise: the same element is the one that matters
            near.append(neighbourhood(arg, values, worst))
        elif values.size <= 24:
            near.append(f"  {arg} =\n{show(values)}")
        else:
            near.append(f"  {arg}: shape {values.shape}")
    raise AssertionError(
        f"{labels.prefix()}: {name} differs from the reference {ref_name} at {len(order)} of "
        f"{bad.size} elements (rtol={rtol:g}, atol={atol:g}), worst first:\n"
        + "\n".join(lines) + "\nInputs:\n" + "\n".join(near))


__all__ = ["FORWARD_TOLERANCES", "check_gradients", "check_op"]
