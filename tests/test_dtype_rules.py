"""Result dtypes: one rule per op (``result_dtype``), applied in one place (``Function.apply``).

PyTorch is the reference: a floating op (exp, sigmoid, log, softmax, mean, ...) of integer or bool
input computes in the default float dtype, float32, whatever the integer width (NumPy would give
float16 for uint8 and float64 for int64). Every entry of the op table is run on int64, uint8 and
bool inputs: its result is float32 where a floating op is involved (with the float64 reference's
values), an integer/bool dtype otherwise (never float16 or float64), or the call raises an error
that names the function.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.function import RESULT_DTYPES
from tinynet.testing import OP_TABLE, arrays
from tinynet.testing.op_table import recorded_ops

try:
    import torch
except ImportError:  # PyTorch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def test_every_op_declares_a_known_rule():
    rules = {op.__name__: op.result_dtype for op in tn.ops.OPS}
    assert set(rules.values()) <= set(RESULT_DTYPES)
    assert rules["ExpOp"] == rules["SigmoidOp"] == rules["MeanOp"] == rules["SoftmaxOp"] == "float"
    assert rules["CompareOp"] == "bool" and rules["ArgmaxOp"] == "int64"
    with pytest.raises(TypeError, match="result_dtype must be one of"):
        type("Bad", (tn.Function,), {"result_dtype": "float16"})


def _as_integers(values: np.ndarray, dtype: str) -> np.ndarray:
    """Small non-negative integers (>= 1 where the domain is positive) or their truth values."""
    ints = np.ceil(np.abs(values))
    return np.asarray(ints > 1 if dtype == "bool" else ints.astype(dtype))  # 0-d: an array


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in OP_TABLE])
@settings(max_examples=1)
@given(data=st.data())
def test_integer_and_bool_inputs_follow_the_rule_across_the_op_table(case, dtype, data):
    shapes = data.draw(case.shapes(3))
    values = [data.draw(arrays(s, np.float64, d)) for s, d in zip(shapes, case.inputs)]
    floats = [tn.tensor(v, requires_grad=case.differentiable) for v in values]
    floating_op = any(op.result_dtype == "float" for op in
                      recorded_ops([o for o in _outputs(case.call(*floats)) if o.grad_fn]))
    ints = [_as_integers(v, dtype) for v in values]
    try:
        result = case.call(*[tn.tensor(a) for a in ints])
    except (TypeError, ValueError) as exc:  # refused: the error must name the op or function
        assert not floating_op, f"{case.id}: a floating op refused {dtype} input: {exc}"
        assert re.match(r"^[\w.-]+( [\w.]+)?: ", str(exc)), f"{case.id}: an unnamed error: {exc}"
        return
    reference = _outputs(case.reference(*[a.astype(np.float64) for a in ints]))
    for out, ref in zip(_outputs(result), reference):
        if floating_op:
            assert out.dtype == tn.float32, f"{case.id} on {dtype}: {out.dtype}"
            rtol, atol = case.f32_tol
            with np.errstate(all="ignore"):
                np.testing.assert_allclose(out.numpy(), ref, rtol=rtol, atol=atol,
                                           err_msg=f"{case.id} on {dtype}")
        else:
            assert out.dtype.kind in "biuf" and out.dtype not in (tn.float16, tn.float64), \
                f"{case.id} on {dtype}: {out.dtype}"


# --- the issue's examples, against PyTorch -------------------------------------------------------


def test_the_issue_examples_give_float32():
    u8 = tn.tensor(np.array([1, 200, 255], dtype=np.uint8))
    s = tn.sigmoid(u8)
    assert s.dtype == tn.float32
    np.testing.assert_allclose(s.numpy(), 1 / (1 + np.exp(-np.array([1.0, 200.0, 255.0]))),
                               rtol=1e-6)
    p = tn.softmax(u8, 0)
    assert p.dtype == tn.float32 and not np.isnan(p.numpy()).any()
    np.testing.assert_allclose(p.numpy().sum(), 1.0, rtol=1e-6)
    e = tn.exp(tn.tensor(True))
    assert e.dtype == tn.float32 and math.isclose(e.item(), math.e, rel_tol=1e-6)
    assert tn.tensor([True, False]).sigmoid().tolist() == pytest.approx([0.7310586, 0.5])
    assert tn.exp(tn.tensor([1, 2])).dtype == tn.float32
    assert tn.tensor([1, 2, 4]).mean().dtype == tn.float32  # PyTorch refuses integer means
    assert tn.tensor([1, 2, 4]).var().item() == pytest.approx(7 / 3)


@needs_torch
@pytest.mark.parametrize("name", ["sigmoid", "exp", "log", "tanh", "sqrt", "sin", "cos", "erf",
                                  "logsumexp"])
@pytest.mark.parametrize("dtype", ["uint8", "int64", "bool"])
def test_floating_ops_of_integers_match_pytorch(name, dtype):
    values = np.array([0, 1, 3, 200]) if dtype != "bool" else np.array([True, False])
    values = values.astype(dtype)
    args = (0,) if name == "logsumexp" else ()
    ours = getattr(tn, name)(tn.tensor(values), *args)
    theirs = getattr(torch, name)(torch.tensor(values), *args)
    assert str(theirs.dtype) == "torch.float32" and ours.dtype == tn.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@needs_torch
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "bool"])
def test_sums_of_integers_and_bools_are_int64_as_pytorch(dtype):
    values = np.array([1, 0, 1, 1]).astype(dtype)
    ours, theirs = tn.tensor(values).sum(), torch.tensor(values).sum()
    assert ours.dtype == tn.int64 and str(theirs.dtype) == "torch.int64"
    assert ours.item() == theirs.item() == 3


def test_complex_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match=r"only real floating-point tensors can require gradients, "
                                        r"this one is complex128 \(complex\)"):
        tn.tensor([1 + 2j], requires_grad=True)
    with pytest.raises(TypeError, match="complex"):
        tn.tensor([1 + 2j]).requires_grad_()


# --- Python integers next to integer tensors -------------------------------------------------------


def test_a_python_integer_that_does_not_fit_the_dtype_is_named():
    t = tn.tensor([1, -3], dtype=tn.int8)
    for run in (lambda: t + 200, lambda: 200 + t, lambda: t * -129, lambda: tn.sub(t, 1000)):
        with pytest.raises(OverflowError, match=r"^(add|mul|sub): the Python integer -?\d+ does "
                                                r"not fit the tensor's dtype int8 \(range "
                                                r"-128\.\.127\)"):
            run()
    with pytest.raises(OverflowError, match="in-place add: the Python integer 200"):
        t += 200
    u = tn.tensor([1], dtype=tn.uint8)
    with pytest.raises(OverflowError, match=r"range 0\.\.255"):
        u + (-1)
    assert (t + 100).tolist() == [101, 97] and (t / 200).dtype == tn.float32
    assert (t < 200).tolist() == [True, True]  # comparisons are exact, as NumPy's
