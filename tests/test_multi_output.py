"""Ops with several outputs: one graph node, a tuple of Tensors (``unbind``, ``split``, ``chunk``,
and user Functions whose forward returns a tuple).

What is checked: values and gradients against PyTorch; one node whose backward runs once, after
every output's gradient has arrived, with None for an output that got none; the pieces are views
that share the input's version counter (an in-place write through either side is caught in
backward); retain_grad and hooks per output; tn.grad with pieces as outputs and as inputs;
create_graph (gradgradcheck); detect_anomaly; tn.trace and the graph view; and that backward
through ``unbind`` writes a number of bytes linear in the number of pieces (the stand-in device
counts them), where slicing ``x[t]`` piece by piece is quadratic.
"""

from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.testing import arrays


def host(t):
    return t.detach().cpu().numpy()


def shapes(min_dims=1, max_dims=3, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


@st.composite
def tensor_and_dim(draw, min_dims=1):
    shape = draw(shapes(min_dims))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    data = draw(arrays(shape, np.float64))
    return data, dim


# --- values and gradients against PyTorch -------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(case=tensor_and_dim(), seed=st.integers(0, 2**16), used=st.data())
def test_unbind_split_chunk_match_torch_values_and_gradients(case, seed, used):
    torch = pytest.importorskip("torch")
    data, dim = case
    n = data.shape[dim]
    size = used.draw(st.integers(1, n + 1))
    chunks = used.draw(st.integers(1, n + 1))
    calls = {
        "unbind": (lambda m, t: m.unbind(t, dim)),
        "split": (lambda m, t: m.split(t, size, dim)),
        "chunk": (lambda m, t: m.chunk(t, chunks, dim)),
    }
    rng = np.random.default_rng(seed)
    for name, call in calls.items():
        x = tn.tensor(data, requires_grad=True)
        xt = torch.tensor(data, requires_grad=True)
        pieces, pieces_t = call(tn, x), call(torch, xt)
        assert isinstance(pieces, tuple) and len(pieces) == len(pieces_t), name
        for p, q in zip(pieces, pieces_t):
            np.testing.assert_array_equal(host(p), q.detach().numpy())
        # a random subset of the pieces carries a weighted loss; the others get no gradient
        keep = [k for k in range(len(pieces)) if rng.random() < 0.6]
        weights = [rng.standard_normal(p.shape) for p in pieces]
        if not keep:
            continue
        sum((pieces[k] * tn.tensor(weights[k])).sum() for k in keep).backward()
        sum((pieces_t[k] * torch.tensor(weights[k])).sum() for k in keep).backward()
        np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_methods_and_functions_agree():
    x = tn.arange(12.0).reshape(3, 4)
    for a, b in [(x.unbind(1), tn.unbind(x, dim=1)), (x.split([1, 3], 1), tn.split(x, [1, 3], 1)),
                 (x.chunk(2, 1), tn.chunk(x, 2, dim=1)), (x.unbind(axis=0), tn.unbind(x, 0))]:
        assert [p.tolist() for p in a] == [p.tolist() for p in b]


@pytest.mark.parametrize("call, message", [
    (lambda: tn.unbind(tn.tensor(1.0)), "unbind: expects a tensor with at least one dim"),
    (lambda: tn.unbind(tn.zeros(2, 3), 2), "unbind"),
    (lambda: tn.split(tn.zeros(5), [2, 2]), r"split: sections \[2, 2\] .* add up to 5"),
    (lambda: tn.split(tn.zeros(5), 0), "split: split_size must be positive, got 0"),
    (lambda: tn.split(tn.zeros(5), "a"), "split"),
    (lambda: tn.chunk(tn.zeros(5), 0), "chunk: chunks must be a positive int, got 0"),
])
def test_errors_name_the_function_and_the_values(call, message):
    with pytest.raises((ValueError, TypeError, IndexError), match=message):
        call()


# --- one node, one backward ---------------------------------------------------------------------


class Spy(tn.Function):
    """Two outputs (2x, 3x); records the gradients its backward receives."""

    received: ClassVar[list] = []

    @staticmethod
    def forward(ctx, x):
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, g2, g3):
        Spy.received.append((g2, g3))
        xp = ctx.xp
        total = xp.zeros(ctx.metas[0][0], dtype=ctx.metas[0][1])
        if g2 is not None:
            total = total + 2 * g2
        if g3 is not None:
            total = total + 3 * g3
        return total


def test_one_node_backward_runs_once_with_none_for_outputs_without_gradient():
    x = tn.tensor([1.0, -2.0], dtype=tn.float64, requires_grad=True)
    Spy.received.clear()
    a, b = Spy.apply(x)
    assert a.grad_fn is b.grad_fn and a._output_nr == 0 and b._output_nr == 1
    (a.sum() + (a * a).sum()).backward()  # two consumers of output 0, none of output 1
    assert len(Spy.received) == 1
    g2, g3 = Spy.received[0]
    assert g3 is None
    np.testing.assert_allclose(g2, 1 + 2 * np.array([2.0, -4.0]))
    np.testing.assert_allclose(host(x.grad), 2 * (1 + 2 * np.array([2.0, -4.0])))


def test_unbind_is_one_node_and_its_backward_runs_once():
    x = tn.randn(5, 3, requires_grad=True)
    pieces = x.unbind(0)
    assert len({id(p.grad_fn) for p in pieces}) == 1
    with tn.trace() as tr:
        sum(p.sum() * k for k, p in enumerate(pieces)).backward()
    unbinds = [e for e in tr.to_dict() if e["op"] == "Unbind"]
    assert len(unbinds) == 1
    outputs = unbinds[0]["grad_out"]["outputs"]
    assert [o["output"] for o in outputs] == [0, 1, 2, 3, 4]
    assert outputs[0]["norm"] == 0 and outputs[4]["norm"] == pytest.approx(4 * np.sqrt(3))
    np.testing.assert_allclose(host(x.grad), np.repeat(np.arange(5.0)[:, None], 3, 1))


@settings(max_examples=15, deadline=None)
@given(case=tensor_and_dim())
def test_gradcheck_and_gradgradcheck_of_functions_returning_pieces(case):
    data, dim = case
    x = tn.tensor(data, requires_grad=True)
    n = data.shape[dim]
    assert tn.gradcheck(lambda t: t.unbind(dim), (x,))
    assert tn.gradgradcheck(lambda t: tuple(p * p for p in t.unbind(dim)[::2]), (x,))
    assert tn.gradgradcheck(lambda t: tuple(p.sin() for p in t.chunk(2, dim)), (x,))
    assert tn.gradgradcheck(lambda t: t.split(max(1, n // 2), dim)[-1] ** 3, (x,))
    assert tn.gradcheck(Spy.apply, (x,)) and tn.gradgradcheck(lambda t: Spy.apply(t)[1] ** 2, (x,))


def test_double_backward_through_unbind_matches_torch():
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(0).standard_normal((4, 3))
    x = tn.tensor(data, requires_grad=True)
    xt = torch.tensor(data, requires_grad=True)
    results = []
    for m, t in ((tn, x), (torch, xt)):
        a, b, _, d = m.unbind(t, 0)
        loss = (a * b * d).sum() + (a ** 3).sum()
        (g,) = (tn.grad if m is tn else torch.autograd.grad)(loss, [t], create_graph=True)
        ((g * g).sum()).backward()
        results.append(t.grad.detach().cpu().numpy() if m is tn else t.grad.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


# --- version counters ---------------------------------------------------------------------------


def test_pieces_share_the_input_version_counter():
    x = tn.randn(3, 2, requires_grad=True)
    y = x * 1
    pieces = y.unbind(0) + y.split(1, 1)
    with tn.no_grad():
        pieces[1].mul_(2)
    assert y._version == 1 and all(p._version == 1 for p in pieces)


def test_write_to_a_piece_after_the_input_was_saved_raises_in_backward():
    x = tn.randn(3, 2, requires_grad=True)
    y = x * 1
    z = (y * y).sum()  # saves y
    a, _, _ = y.unbind(0)
    with tn.no_grad():
        a += 1  # writes y's memory through the piece
    with pytest.raises(RuntimeError, match=r"Mul.backward: .*modified by an inplace operation"):
        z.backward()


def test_write_to_the_input_after_a_piece_was_saved_raises_in_backward():
    x = tn.randn(3, 2, requires_grad=True)
    y = x * 1
    a, _ = y.chunk(2, 1)
    z = (a * a).sum()  # saves the piece a
    with tn.no_grad():
        y[0, 0] = 5.0  # writes the piece's memory through the input
    with pytest.raises(RuntimeError, match=r"Mul.backward: .*modified by an inplace operation"):
        z.backward()


def test_recorded_in_place_write_to_a_piece_keeps_both_gradient_paths():
    x = tn.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=tn.float64, requires_grad=True)
    v = tn.tensor([10.0, 20.0], dtype=tn.float64, requires_grad=True)
    a, b = (x * 1).unbind(0)
    a *= v  # recorded: a becomes a * v, a new node
    (a.sum() + 2 * b.sum()).backward()
    np.testing.assert_allclose(host(x.grad), [[10.0, 20.0], [2.0, 2.0]])
    np.testing.assert_allclose(host(v.grad), [1.0, 2.0])


# --- per-output hooks, retain_grad, tn.grad ---------------------------------------------------


def test_retain_grad_and_hooks_on_pieces():
    x = tn.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    a, b, c = (x * 1).unbind(0)
    b.retain_grad()
    seen = []
    c.register_hook(lambda g: seen.append(host(g)) or g * 10)
    assert b.retains_grad and not a.retains_grad
    ((a * b).sum() + c.sum()).backward()
    np.testing.assert_allclose(host(b.grad), [0.0, 1.0])  # d/db of a.b is a
    assert a.grad is None
    np.testing.assert_allclose(seen[0], [1.0, 1.0])
    np.testing.assert_allclose(host(x.grad), [[2.0, 3.0], [0.0, 1.0], [10.0, 10.0]])


def test_grad_with_pieces_as_outputs_and_as_inputs():
    x = tn.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    a, b, c = (x * 1).unbind(0)
    (gx,) = tn.grad([a.sum(), (c * c).sum()], [x], retain_graph=True)
    np.testing.assert_allclose(host(gx), [[1.0, 1.0], [0.0, 0.0], [8.0, 10.0]])
    (gx2,) = tn.grad([a, c], [x], [tn.ones(2, dtype=tn.float64), tn.ones(2, dtype=tn.float64)],
                     retain_graph=True)
    np.testing.assert_allclose(host(gx2), [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    ga, gb, gc = tn.grad((a * c).sum(), [a, b, c], allow_unused=True)
    np.testing.assert_allclose(host(ga), [4.0, 5.0])
    assert gb is None
    np.testing.assert_allclose(host(gc), [0.0, 1.0])
    assert x.grad is None


# --- debug tools --------------------------------------------------------------------------------


def test_detect_anomaly_checks_every_output_and_names_the_op():
    x = tn.tensor([[1.0, 2.0], [float("nan"), 0.0]], requires_grad=True)
    with tn.detect_anomaly(), pytest.raises(RuntimeError, match="Unbind produced NaN"):
        x.unbind(0)
    y = tn.tensor([[1.0, 2.0], [0.0, 3.0]], requires_grad=True)
    with tn.detect_anomaly():
        a, b = y.unbind(0)
        loss = b.sqrt().sum() + a.sum()
        with pytest.raises(RuntimeError, match="Sqrt.backward returned Inf"):
            loss.backward()


def test_graph_view_shows_one_node_with_several_outputs():
    x = tn.randn(3, 2, requires_grad=True)
    a, b, c = (x * 1).unbind(0)
    text = tn.viz.graph((a * c).sum()).text()
    assert text.count("Unbind") >= 1
    assert "3 outputs" in text
    assert "Unbind#2[0]" in text and "Unbind#2[2]" in text
    with tn.trace(values=True) as tr:
        a, b = (tn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True) * 1).unbind(0)
        loss = (a * b).sum()
        loss.backward(retain_graph=True)
    text = tn.viz.graph(loss, trace=tr, values=True).text()
    assert "out: 2 outputs (2,) float32, (2,) float32  value = ([1., 2.], [3., 4.])" in text


# --- backward work linear in the number of pieces ---------------------------------------------


def _backward_bytes(L: int, pieces_of) -> float:
    x = tn.randn(L, 4, 8, device="standin", requires_grad=True)
    loss = sum((s * s).sum() for s in pieces_of(x))
    with tn.backend.count_calls() as counts:
        loss.backward()
    return counts.bytes_written / x.data.nbytes


def test_unbind_backward_writes_bytes_linear_in_the_number_of_pieces():
    per_element = [_backward_bytes(L, lambda x: x.unbind(0)) for L in (16, 32, 64)]
    assert max(per_element) < 6  # a few full-size passes whatever L
    assert per_element[2] / per_element[0] < 1.05
    # what unbind replaces: L slices x[t], each sending a full-size gradient
    sliced = [_backward_bytes(L, lambda x: [x[t] for t in range(x.shape[0])]) for L in (16, 32)]
    assert sliced[1] / sliced[0] > 1.8


def test_trace_table_prints_each_output_of_a_multi_output_op():
    x = tn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with tn.trace(values=True) as tr:
        a, b = (x * 1).unbind(0)
        (a * b).sum().backward()
    table = tr.table(values=True)
    assert "output = [0] [1., 2.]" in table and "[1] [3., 4.]" in table


def test_stack_and_cat_backward_send_views_of_the_gradient():
    """Single output, several inputs: each input's gradient is a slice of the output's, so
    backward writes bytes linear in the number of pieces."""
    def written(L, join):
        pieces = [tn.randn(4, 8, device="standin", requires_grad=True) for _ in range(L)]
        loss = (join(pieces) * 2.0).sum()
        with tn.backend.count_calls() as counts:
            loss.backward()
        for p in pieces:
            assert p.grad.tolist() == tn.full((4, 8), 2.0).tolist()
        return counts.bytes_written
    for join in (tn.stack, tn.cat):
        assert written(32, join) / written(16, join) < 2.1


class WrongSecondOutput(tn.Function):
    """(2x, 3x), with the second output's derivative written wrong (2 instead of 3)."""

    @staticmethod
    def forward(ctx, x):
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, g2, g3):
        return 2 * g2 + 2 * g3


def test_trace_finite_differences_check_a_multi_output_node():
    x = tn.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=tn.float64, requires_grad=True)
    with tn.trace(finite_differences=True) as tr:
        a, _, c = (x * 1).unbind(0)
        (a * c).sum().backward()
    (unbind,) = [e for e in tr.to_dict() if e["op"] == "Unbind"]
    assert unbind["inputs"][0]["numeric"]["ok"]
    with tn.trace(finite_differences=True) as tr:
        p, q = WrongSecondOutput.apply(x)
        (p.sum() + (q * q).sum()).backward()
    (wrong,) = [e for e in tr.to_dict() if e["op"] == "WrongSecondOutput"]
    assert wrong["inputs"][0]["numeric"]["ok"] is False


@pytest.mark.parametrize("pieces_of", [lambda x: x.unbind(1), lambda x: x.split([1, 3, 2], 1),
                                       lambda x: x.chunk(4, 1)])
@pytest.mark.parametrize("used", ["all", "some"])
def test_backward_of_the_pieces_writes_one_input_sized_array(pieces_of, used):
    x = tn.randn(3, 6, 5, device="standin", requires_grad=True)
    pieces = pieces_of(x)
    if used == "some":
        pieces = pieces[::2]
    seeds = [tn.ones(p.shape, device="standin") for p in pieces]
    with tn.backend.count_calls() as counts:
        (gx,) = tn.grad(list(pieces), [x], seeds)
    assert counts.bytes_written <= x.data.nbytes + x.data.itemsize  # (+ one 0-d zero)
    expected = np.zeros(x.shape, dtype=np.float32)
    for p in pieces:
        expected[:, _where(p)] = 1.0
    np.testing.assert_array_equal(host(gx), expected)


def _where(piece):
    """The columns along dim 1 that ``piece`` (of a (3, 6, 5) tensor) came from."""
    node, k = piece.grad_fn, piece._output_nr
    widths = [1 if len(shape) == 2 else shape[1] for shape, _ in node.out_metas]
    start = sum(widths[:k])
    return start if len(piece.shape) == 2 else slice(start, start + widths[k])


def test_every_device_runs_the_same_multi_output_code(device):
    """cpu, the stand-in (CuPy's rules) and cuda: values, gradients, second derivatives."""
    data = np.random.default_rng(1).standard_normal((3, 4))
    x = tn.tensor(data, dtype=tn.float64, device=device, requires_grad=True)
    a, b, c, d = x.unbind(1)
    assert a.device == x.device and b._version == x._version
    (a * d + c).sum().backward()
    expected = np.stack([data[:, 3], np.zeros(3), np.ones(3), data[:, 0]], axis=1)
    np.testing.assert_allclose(host(x.grad), expected)
    assert tn.gradgradcheck(lambda t: tuple(p * p for p in t.unbind(1)[::2]), (x,))
    assert tn.gradgradcheck(lambda t: tuple(p.sin() for p in t.split([1, 2], 0)[1:]), (x,))
