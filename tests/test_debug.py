"""tn.trace() and tn.detect_anomaly(): the trace reports the real gradients in reverse topological
order, anomaly mode names the op and the user's line for NaN/Inf in forward and backward, and
neither changes any result."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import autograd

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on log(-1) etc.
THIS_FILE = __file__


def host(t: tn.Tensor) -> np.ndarray:
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
    with tn.trace(values=True) as tr:
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
        assert item["source"] == "leaf"
        assert item["shape"] == tuple(p[name].shape)  # broadcasting undone (b1, b2)
        np.testing.assert_allclose(host(item["value"]), host(p[name].grad), rtol=1e-12)
        assert item["norm"] == pytest.approx(np.linalg.norm(host(p[name].grad)))
    # Edges agree: the gradients sent to a node (z2 * z2 sends two) add up to its upstream one.
    entries = tr.to_dict()
    received: dict = {}
    for e in entries:
        for item in e["inputs"]:
            if item["source"] != "leaf":
                received[item["source"]] = received.get(item["source"], 0) + host(item["value"])
    assert set(received) == {e["id"] for e in entries[1:]}
    for e in entries[1:]:
        np.testing.assert_allclose(received[e["id"]], host(e["grad_out"]["value"]), rtol=1e-12)


def test_trace_order_is_reverse_topological_and_formulas_are_present(device):
    p = _params(device, 0)
    t = _net(p, _input(device, 3, 0))
    with tn.trace() as tr:
        t["loss"].backward()
    entries = tr.to_dict()
    ops = [e["op"] for e in entries]
    assert ops == ["Mean", "Mul", "Add", "MatMul", "Tanh", "Add", "MatMul"]
    position = {e["id"]: e["index"] for e in entries}
    assert [e["index"] for e in entries] == list(range(len(entries)))
    for e in entries:  # every producer of an input runs after its consumer
        for item in e["inputs"]:
            if item["source"] != "leaf":
                assert position[item["source"]] > e["index"]
    from tinynet.ops import OPS
    docs = {op.name: op.__doc__ for op in OPS}
    for e in entries:
        assert e["formula"] and e["formula"] != "?"
        assert e["formula"].split()[0] in docs[e["op"]]
    table = tr.table().splitlines()
    assert len(table) == 1 + len(entries) + sum(len(e["inputs"]) for e in entries)
    assert [line.split()[1] for line in table[1:] if not line.startswith(" ")] == \
        [e["id"] for e in entries]


def _run(device: str, tools: bool, create_graph: bool = False) -> list:
    p = _params(device, 7)
    if tools:
        with tn.detect_anomaly(), tn.trace() as tr:
            t = _net(p, _input(device, 4, 7))
            t["loss"].backward(create_graph=create_graph)
        assert tr.entries
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


def _line_of(marker: str) -> int:
    with open(THIS_FILE) as f:
        return next(i for i, line in enumerate(f, 1) if marker in line)


def test_anomaly_names_log_of_a_negative_in_forward_with_the_user_line(device):
    x = tn.tensor([1.0, -2.0, 3.0], device=device)
    with tn.detect_anomaly(), pytest.raises(RuntimeError) as info:
        tn.log(x)  # MARK-log
    msg = str(info.value)
    assert "Log produced NaN" in msg and "forward" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-log')}" in msg
    assert "shape (3,)" in msg and "min -2" in msg and "max 3" in msg and "mean 0.666667" in msg


def test_anomaly_names_mul_for_zero_times_inf(device):
    a = tn.tensor([0.0, 1.0], device=device, requires_grad=True)
    b = tn.tensor([math.inf, 2.0], device=device)
    with tn.detect_anomaly(), pytest.raises(RuntimeError) as info:
        a * b  # MARK-mul
    msg = str(info.value)
    assert "Mul produced NaN" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-mul')}" in msg
    assert "1 Inf" in msg  # input 1's statistics show the Inf that caused it


def test_anomaly_names_sqrt_at_zero_in_backward(device):
    x = tn.tensor([0.0, 4.0], device=device, requires_grad=True)
    with tn.detect_anomaly():
        y = tn.sqrt(x)  # MARK-sqrt
        loss = (y * 2.0).sum()
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    msg = str(info.value)
    assert "Sqrt.backward returned Inf" in msg and "input 0" in msg
    assert f"{THIS_FILE}:{_line_of('# MARK-sqrt')}" in msg
    assert "min 0" in msg and "max 4" in msg
    assert x.grad is None  # stopped before anything reached the leaf


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
            with tn.detect_anomaly():
                (x * 3).sum().backward()
            assert autograd._anomaly is not None  # the outer one is still on
            with pytest.raises(RuntimeError, match="Log produced NaN"):
                tn.log(-x)
        assert autograd._anomaly is None
        with tn.trace() as inner:
            tn.exp(x).sum().backward()
        (x * 4).sum().backward()
    assert autograd._observers is None
    assert [e["op"] for e in inner.to_dict()] == ["Sum", "Exp"]
    assert [e["op"] for e in outer.to_dict()] == ["Sum", "Mul", "Sum", "Exp", "Sum", "Mul"]
