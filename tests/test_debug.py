"""tn.trace() and tn.detect_anomaly(): the trace reports the real gradients (and, with values, the
real numbers of forward and backward) in the order backward ran them, with ids that read in that
order, named leaves, the Jacobian shape of each local derivative, sums where several gradients
meet, and a per-node finite-difference check; anomaly mode names the op, the user's line and the
first bad element, in forward and backward or in backward only; neither changes any result."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import autograd

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on log(-1) etc.
THIS_FILE = __file__


def host(t) -> np.ndarray:
    return np.array(t.detach().cpu().numpy(), dtype=np.float64)


def _params(device: str, seed: int) -> dict:
    g = np.random.default_rng(seed)
    shapes = {"W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,)}
    return {k: tn.tensor(g.standard_normal(s), dtype=tn.float64, device=device, requires_grad=True)
            for k, s in shapes.items()}


def _net(p: dict, x: tn.Tensor) -> dict:
    """A 2-layer network; returns every intermediate tensor by name."""
    t = {"x": x}
    t["h1"] = x @ p["W1"]
    t["z1"] = t["h1"] + p["b1"]
    t["a1"] = tn.tanh(t["z1"])
    t["h2"] = t["a1"] @ p["W2"]
    t["z2"] = t["h2"] + p["b2"]
    t["loss"] = (t["z2"] * t["z2"]).mean()
    return t


def _input(device: str, batch: int, seed: int) -> tn.Tensor:
    g = np.random.default_rng(seed + 1)
    return tn.tensor(g.standard_normal((batch, 3)), dtype=tn.float64, device=device)


@settings(max_examples=10)
@given(batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_trace_reports_the_real_gradients_of_a_two_layer_network(device, batch, seed):
    p = _params(device, seed)
    t = _net(p, _input(device, batch, seed))
    inner = ["z1", "a1", "h2", "z2"]
    real = dict(zip(inner, tn.grad(t["loss"], [t[k] for k in inner], retain_graph=True)))
    with tn.trace(values=True, params=p) as tr:
        t["loss"].backward()

    # Upstream gradient of the op that made each intermediate == tn.grad of that tensor.
    for k in inner:
        entry = tr.entry_for(t[k])
        np.testing.assert_allclose(host(entry["grad_out"]["value"]), host(real[k]), rtol=1e-12)
        assert entry["grad_out"]["norm"] == pytest.approx(np.linalg.norm(host(real[k])))
        assert entry["grad_out"]["shape"] == tuple(t[k].shape)
    # What the ops send to the leaves == the leaves' .grad (each parameter is used once).
    sent = {"W1": (tr.entry_for(t["h1"]), 1), "b1": (tr.entry_for(t["z1"]), 1),
            "W2": (tr.entry_for(t["h2"]), 1), "b2": (tr.entry_for(t["z2"]), 1)}
    for name, (entry, i) in sent.items():
        (item,) = [it for it in entry["inputs"] if it["input"] == i]
        assert item["source"] == name and item["kind"] == "leaf"  # named by params=
        assert item["shape"] == tuple(p[name].shape)  # broadcasting undone (b1, b2)
        np.testing.assert_allclose(host(item["value"]), host(p[name].grad), rtol=1e-12)
        assert item["norm"] == pytest.approx(np.linalg.norm(host(p[name].grad)))
    # Edges agree: the gradients sent to a node (z2 * z2 sends two) add up to its upstream one,
    # and the trace shows that sum.
    entries = tr.to_dict()
    received: dict = {}
    for e in entries:
        for item in e["inputs"]:
            if item["kind"] == "node":
                received[item["source"]] = received.get(item["source"], 0) + host(item["value"])
    assert set(received) == {e["id"] for e in entries[1:]}
    for e in entries[1:]:
        np.testing.assert_allclose(received[e["id"]], host(e["grad_out"]["value"]), rtol=1e-12)
    (z2_sum,) = tr.sums()
    z2_id = tr.entry_for(t["z2"])["id"]
    assert z2_sum["target"] == z2_id and z2_sum["kind"] == "node" and len(z2_sum["parts"]) == 2
    np.testing.assert_allclose(host(z2_sum["value"]), host(real["z2"]), rtol=1e-12)


def test_ids_read_in_execution_order_and_are_stable(device):
    def run():
        p = _params(device, 0)
        t = _net(p, _input(device, 3, 0))
        with tn.trace() as tr:
            t["loss"].backward()
        return tr.to_dict()

    entries = run()
    ops = [e["op"] for e in entries]
    assert ops == ["Mean", "Mul", "Add", "MatMul", "Tanh", "Add", "MatMul"]
    assert [e["id"] for e in entries] == [f"{e['op']}#{e['index']}" for e in entries]
    assert [e["index"] for e in entries] == list(range(len(entries)))
    position = {e["id"]: e["index"] for e in entries}
    for e in entries:  # every producer of an input runs after its consumer: a larger number
        for item in e["inputs"]:
            if item["kind"] == "node":
                assert position[item["source"]] > e["index"]
    assert [e["id"] for e in run()] == [e["id"] for e in entries]  # the same graph: same ids
    from tinynet.ops import OPS
    docs = {op.name: op.__doc__ for op in OPS}
    for e in entries:
        assert e["formula"] and e["formula"] != "?"
        assert e["formula"].split()[0] in docs[e["op"]]


def test_execution_order_predicts_the_trace(device):
    p = _params(device, 3)
    t = _net(p, _input(device, 2, 3))
    predicted = tn.debug.execution_order([t["loss"]])
    with tn.trace() as tr:
        t["loss"].backward()
    assert predicted == [e["_node"] for e in tr.entries]
    assert tn.debug.execution_order([t["loss"]]) == predicted  # works on the freed graph too


def test_table_rows_jacobian_shapes_and_unnamed_leaves(device):
    x = tn.tensor(np.arange(6.0).reshape(2, 3), dtype=tn.float64, device=device,
                  requires_grad=True)
    w = tn.tensor(np.ones((3, 4)), dtype=tn.float64, device=device, requires_grad=True)
    b = tn.tensor(np.ones(4), dtype=tn.float64, device=device, requires_grad=True)
    with tn.trace() as tr:
        ((x @ w + b) ** 2).sum().backward()
    entries = tr.to_dict()
    assert [e["id"] for e in entries] == ["Sum#0", "Pow#1", "Add#2", "MatMul#3"]
    jac = {(e["id"], i["source"]): i["jacobian_shape"] for e in entries for i in e["inputs"]}
    assert jac == {("Sum#0", "Pow#1"): ((), (2, 4)), ("Pow#1", "Add#2"): ((2, 4), (2, 4)),
                   ("Add#2", "MatMul#3"): ((2, 4), (2, 4)), ("Add#2", "leaf#0"): ((2, 4), (4,)),
                   ("MatMul#3", "leaf#1"): ((2, 4), (2, 3)),
                   ("MatMul#3", "leaf#2"): ((2, 4), (3, 4))}
    # leaves without a name are numbered in the order backward reaches them: b, then x, then w
    table = tr.table().splitlines()
    assert table[0].split() == ["#", "node", "grad_out", "|grad_out|", "local", "derivative",
                                "/", "->", "input"]
    assert [line.split()[1] for line in table[1:] if not line.startswith(" ")] == \
        [e["id"] for e in entries]
    assert sum(1 for line in table if "->" in line) - 1 == sum(len(e["inputs"]) for e in entries)
    assert "-> input 1 from leaf#0: J (2, 4)x(4,), sends (4,) |g|=" in tr.table()
    with pytest.raises(ValueError, match=r"tn.trace\(values=True\)"):
        tr.table(values=True)


def test_a_sum_row_shows_the_parts_and_their_sum(device):
    a = tn.tensor([1.0, 2.0, 3.0], dtype=tn.float64, device=device, requires_grad=True)
    b = tn.tensor([4.0, 5.0, 6.0], dtype=tn.float64, device=device, requires_grad=True)
    with tn.trace(values=True, params={"a": a, "b": b}) as tr:
        (a * b + a).sum().backward()
    (summed,) = tr.sums()
    assert summed["target"] == "a" and summed["kind"] == "leaf"
    assert [(p["source"], p["input"]) for p in summed["parts"]] == [("Add#1", 1), ("Mul#2", 0)]
    assert [host(p["value"]).tolist() for p in summed["parts"]] == [[1, 1, 1], [4, 5, 6]]
    assert host(summed["value"]).tolist() == [5.0, 6.0, 7.0] == host(a.grad).tolist()
    assert summed["after"] == 2 and summed["norm"] == pytest.approx(math.sqrt(25 + 36 + 49))
    text = tr.table()
    assert re.search(r"^\+\s+a\s+\(3,\)\s+10\.49\s+= Add#1 -> input 1 \(\|g\|=1\.732\) \+ "
                     r"Mul#2 -> input 0 \(\|g\|=8\.775\)$", text, re.M), text
    lines = tr.table(values=True).splitlines()
    k = lines.index("+ a receives 2 gradients: Add#1 -> input 1 (|g|=1.732) + "
                    "Mul#2 -> input 0 (|g|=8.775)")
    assert lines[k + 1].startswith("    sum = [5., 6., 7.]")


def test_values_table_prints_the_forward_and_backward_numbers(device):
    x = tn.tensor([0.5, -1.0], dtype=tn.float64, device=device, requires_grad=True)
    with tn.trace(values=True, params={"x": x}) as tr:
        (x ** 3).sum().backward()
    lines = tr.table(values=True).splitlines()
    pow_block = lines[lines.index(next(line for line in lines if line.startswith("#1 Pow#1"))):]
    assert pow_block[1] == "    input 0 (x) = [ 0.5, -1. ]"
    assert pow_block[2] == "    input 1 (constant) = 3"  # the exponent: a positional constant
    assert pow_block[3] == "    output = [ 0.125, -1.   ]"
    assert pow_block[4].startswith("    grad_out = [1., 1.]")
    assert pow_block[6] == "        = [0.75, 3.  ]"  # 3 x^2, the gradient x receives
    assert host(x.grad).tolist() == [0.75, 3.0]
    e = tr.to_dict()[1]
    assert e["forward"]["inputs"][1] == {"input": 1, "source": "constant", "value": 3}
    assert host(e["forward"]["output"]).tolist() == [0.125, -1.0]
    assert tr.to_dict()[0]["params"] == {"dims": None, "keepdim": False}


def test_module_paths_and_parameter_names_from_a_module():
    tn.manual_seed(0)
    model = tn.nn.Sequential(tn.nn.Linear(3, 2), tn.nn.Tanh(), tn.nn.Linear(2, 1))
    with tn.trace(params=model) as tr:
        model(tn.randn(4, 3)).sum().backward()
    entries = tr.to_dict()
    assert [(e["op"], e["module"]) for e in entries] == [
        ("Sum", None), ("Linear", "2 (Linear)"), ("Tanh", "1 (Tanh)"), ("Linear", "0 (Linear)")]
    sources = [i["source"] for e in entries for i in e["inputs"]]
    assert sources == ["Linear#1", "Tanh#2", "2.weight", "2.bias", "Linear#3", "0.weight",
                       "0.bias"]
    assert all(e["where"].startswith(THIS_FILE) for e in entries)
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks  # removed on exit


class _WrongSquare(tn.Function):
    """x^2 with a planted bug  ->  grad_x = 3 g x (should be 2 g x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_inputs(0)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_inputs
        return 3 * g * x


@pytest.mark.parametrize("max_fd_elements", [64, 2])  # elementwise, then along a direction
def test_finite_differences_find_the_one_wrong_node(device, max_fd_elements):
    x = tn.tensor([[0.5, -1.0, 2.0]], dtype=tn.float64, device=device, requires_grad=True)
    w = tn.tensor([[1.0], [0.5], [-2.0]], dtype=tn.float64, device=device, requires_grad=True)
    with tn.trace(values=True, finite_differences=True, max_fd_elements=max_fd_elements) as tr:
        _WrongSquare.apply(tn.tanh(x @ w)).sum().backward()
    checks = {(e["op"], i["input"]): i["numeric"] for e in tr.to_dict() for i in e["inputs"]}
    assert not checks[("_WrongSquare", 0)]["ok"]
    assert all(c["ok"] for key, c in checks.items() if key[0] != "_WrongSquare"), checks
    mode = "elementwise" if max_fd_elements == 64 else "directional"
    assert checks[("MatMul", 1)]["mode"] == mode
    assert checks[("_WrongSquare", 0)]["max_error"] > 0.1
    if mode == "elementwise":  # the numeric gradient itself: 2 g x, where backward sent 3 g x
        entry = tr.to_dict()[1]
        (item,) = entry["inputs"]
        numeric, sent = host(item["numeric"]["value"]), host(item["value"])
        np.testing.assert_allclose(sent, 1.5 * numeric, rtol=1e-6)
    text = tr.table()
    wrong = [line for line in text.splitlines() if "MISMATCH" in line]
    assert len(wrong) == 1 and "from Tanh#2" in wrong[0], text


def test_finite_differences_need_the_forward_inside_the_trace(device):
    x = tn.tensor([0.5, 1.5], dtype=tn.float64, device=device, requires_grad=True)
    y = (x * x).sum()
    with tn.trace(finite_differences=True) as tr:
        y.backward()
    (item,) = tr.to_dict()[1]["inputs"][:1]
    assert item["numeric"]["mode"] == "n/a" and "outside tn.trace()" in item["numeric"]["reason"]
    assert "finite differences n/a (the forward ran outside tn.trace())" in tr.table()


def test_a_backward_only_trace_shows_what_the_graph_still_holds(device):
    x = tn.tensor([0.5, 1.5], dtype=tn.float64, device=device, requires_grad=True)
    h = x.exp()  # ExpOp saves its output; SumOp saves nothing; MulOp saves both inputs
    y = (h * 2.0).sum()
    with tn.trace(values=True) as tr:
        y.backward()
    by_op = {e["op"]: e["forward"] for e in tr.to_dict()}
    assert not by_op["Exp"]["traced"]
    np.testing.assert_allclose(host(by_op["Exp"]["output"]), np.exp([0.5, 1.5]))
    assert host(by_op["Exp"]["inputs"][0]["value"]).tolist() == [0.5, 1.5]  # a leaf: known
    np.testing.assert_allclose(host(by_op["Mul"]["inputs"][0]["value"]), np.exp([0.5, 1.5]))
    assert by_op["Sum"]["inputs"][0]["value"] is None and by_op["Sum"]["output"] is None
    assert "(not kept)" in tr.table(values=True)


def _run(device: str, tools: bool, create_graph: bool = False) -> list:
    p = _params(device, 7)
    if tools:
        with tn.detect_anomaly(), tn.trace(values=True, params=p, finite_differences=True) as tr:
            t = _net(p, _input(device, 4, 7))
            t["loss"].backward(create_graph=create_graph)
        assert tr.entries and tr.table(values=True)
    else:
        t = _net(p, _input(device, 4, 7))
        t["loss"].backward(create_graph=create_graph)
    return [host(p[k].grad) for k in sorted(p)] + [host(t["loss"])]


@pytest.mark.parametrize("create_graph", [False, True])
def test_tools_leave_results_bit_identical_and_turn_off(device, create_graph):
    plain = _run(device, tools=False, create_graph=create_graph)
    with_tools = _run(device, tools=True, create_graph=create_graph)
    for a, b in zip(plain, with_tools):
        assert np.array_equal(a, b)
    assert autograd._observers is None and autograd._anomaly is None


# --------------------------------------------------------------------------------------------
# detect_anomaly
# --------------------------------------------------------------------------------------------


def _line_of(marker: str) -> int:
    with open(THIS_FILE) as f:
        return next(i for i, line in enumerate(f, 1) if marker in line)


def test_anomaly_names_log_of_a_negative_in_forward_with_the_user_line(device):
    x = tn.tensor([1.0, -2.0, 3.0], device=device)
    with tn.detect_anomaly(), pytest.raises(RuntimeError) as info:
        tn.log(x)  # MARK-log
    msg = str(info.value)
    assert "Log produced NaN" in msg and "forward" in msg
    assert "the first at output[1]" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-log')}" in msg
    assert "shape (3,)" in msg and "min -2" in msg and "max 3" in msg and "mean 0.666667" in msg
    assert "input 0: shape (3,) float32, min -2, max 3, mean 0.666667, no NaN/Inf; at [1]: -2" \
        in msg


def test_anomaly_names_mul_for_zero_times_inf(device):
    a = tn.tensor([[1.0, 0.0], [2.0, 0.0]], device=device, requires_grad=True)
    b = tn.tensor([[3.0, 4.0], [5.0, math.inf]], device=device)
    with tn.detect_anomaly(), pytest.raises(RuntimeError) as info:
        a * b  # MARK-mul
    msg = str(info.value)
    assert "Mul produced NaN" in msg and "the first at output[1, 1]" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-mul')}" in msg
    assert "1 Inf" in msg  # input 1's statistics show the Inf that caused it
    assert "; at [1, 1]: 0" in msg and "; at [1, 1]: inf" in msg


def test_anomaly_names_sqrt_at_zero_in_backward(device):
    x = tn.tensor([4.0, 0.0, 1.0], device=device, requires_grad=True)
    with tn.detect_anomaly():
        y = tn.sqrt(x)  # MARK-sqrt
        loss = (y * 2.0).sum()
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    msg = str(info.value)
    assert "Sqrt.backward returned Inf" in msg and "input 0" in msg
    assert "the first at grad[1]" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-sqrt')}" in msg
    assert "min 0" in msg and "max 4" in msg
    assert "upstream gradient: shape (3,) float32, min 2, max 2" in msg and "at [1]: 2" in msg
    assert x.grad is None  # stopped before anything reached the leaf


def test_backward_only_mode_lets_a_masked_forward_through(device):
    x = tn.tensor([-1.0, 2.0, 0.5], device=device, requires_grad=True)
    with tn.detect_anomaly(), pytest.raises(RuntimeError, match="Log produced NaN"):
        tn.where(x > 0, tn.log(x), 0.0)  # the masked log(-1) is NaN in forward
    with tn.detect_anomaly(forward=False):
        y = tn.where(x > 0, tn.log(x), 0.0)  # MARK-where
        y.sum().backward()
    assert host(x.grad).tolist() == [0.0, 0.5, 2.0]
    # ... yet a NaN in the gradient is still caught, with the line that made the op
    z = tn.tensor([0.0, 4.0], device=device, requires_grad=True)
    with tn.detect_anomaly(forward=False), pytest.raises(RuntimeError) as info:
        tn.sqrt(z).sum().backward()  # MARK-masked-sqrt
    assert "Sqrt.backward returned Inf" in str(info.value)
    assert f"{THIS_FILE}:{_line_of('# MARK-masked-sqrt')}" in str(info.value)


def test_anomaly_shows_the_inputs_of_nodes_recorded_before_the_block(device):
    x = tn.tensor([0.0, 4.0], device=device, requires_grad=True)
    y = tn.sqrt(x) * 3.0  # recorded outside: Sqrt saved its output, the leaf x is known
    with tn.detect_anomaly(), pytest.raises(RuntimeError) as info:
        y.sum().backward()
    msg = str(info.value)
    assert "recorded before detect_anomaly was turned on" in msg
    assert "input 0: shape (2,) float32, min 0, max 4, mean 2, no NaN/Inf; at [0]: 0" in msg
    assert "    ?" not in msg


def test_anomaly_silences_numpys_own_warnings_and_restores_them():
    before = np.geterr()
    x = tn.tensor([1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would raise here
        with tn.detect_anomaly(), pytest.raises(RuntimeError, match="Log produced Inf"):
            tn.log(x)
        with tn.detect_anomaly(forward=False):
            y = tn.log(x)
        assert math.isinf(host(y)[1])
    assert np.geterr() == before


class _BadBackward(tn.Function):
    """x * 2  ->  grad_x = NaN (planted)"""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * ctx.xp.nan


def test_anomaly_names_a_custom_function_returning_nan_in_backward(device):
    x = tn.tensor([1.0, 2.0], device=device, requires_grad=True)
    with tn.detect_anomaly():
        y = _BadBackward.apply(tn.exp(x))  # MARK-bad
        with pytest.raises(RuntimeError) as info:
            tn.tanh(y).sum().backward()
    msg = str(info.value)
    assert "_BadBackward.backward returned NaN" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-bad')}" in msg
    assert "grad_x = NaN (planted)" in msg


def test_without_anomaly_mode_nan_passes_silently(device):
    x = tn.tensor([0.0], device=device, requires_grad=True)
    tn.sqrt(x).sum().backward()
    assert np.isinf(host(x.grad)).all()
    assert np.isnan(host(tn.log(tn.tensor([-1.0], device=device)))).all()


def test_context_managers_restore_state_on_exceptions_and_nest(device):
    x = tn.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(ValueError), tn.trace(), tn.detect_anomaly():
        raise ValueError
    assert autograd._observers is None and autograd._anomaly is None

    with tn.trace() as outer:
        with tn.detect_anomaly():
            with tn.detect_anomaly(forward=False):
                (x * 3).sum().backward()
            assert autograd._anomaly is not None  # the outer one is still on
            with pytest.raises(RuntimeError, match="Log produced NaN"):
                tn.log(-x)
        assert autograd._anomaly is not None  # the trace records forward too
        with tn.trace() as inner:
            tn.exp(x).sum().backward()
        (x * 4).sum().backward()
    assert autograd._observers is None and autograd._anomaly is None
    assert [e["op"] for e in inner.to_dict()] == ["Sum", "Exp"]
    assert [e["op"] for e in outer.to_dict()] == ["Sum", "Mul", "Sum", "Exp", "Sum", "Mul"]
    assert [e["id"] for e in outer.to_dict()][:2] == ["Sum#0", "Mul#1"]
