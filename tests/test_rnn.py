"""Recurrent layers (``tn.nn.RNN``, ``LSTM``, ``GRU``) on every device.

* forward against a NumPy reimplementation written here from the equations (a loop over time),
  for every cell, both layouts, several layers, both directions, with and without initial states;
* against ``torch.nn.RNN/LSTM/GRU`` when PyTorch is installed: weights copied by state dict (the
  keys must be PyTorch's, in PyTorch's order), outputs, final states and all gradients compared;
* float64 gradcheck with respect to the input, the initial states and every parameter;
* inter-layer dropout (placement, scaling, seeding, train vs eval), initialisation, state dicts,
  the errors for wrong shapes, and the snippets of docs/nn.md's "Recurrent layers" section;
* each cell step's primitive (``tinynet/ops/rnn.py``) against the step composed of smaller ops
  (``*_cell_reference``), and each sequence op against the chain of its step primitives: same
  values, same first and second derivatives, float64, on drawn shapes; one graph node per layer
  and direction.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.nn import rnn as rnn_module
from tinynet.testing import check_gradients

try:
    import torch
except ImportError:  # CI has no PyTorch: the comparisons are an extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}

# The gradient checks draw fewer examples than the profile's default (ci: 25, dev: 100).
FEWER = settings(max_examples=max(4, settings().max_examples // 3))


def make(mode, *args, **kwargs):
    """The tinynet layer for a mode name (``RNN_RELU`` is ``RNN(nonlinearity='relu')``)."""
    if mode.startswith("RNN"):
        return tn.nn.RNN(*args, nonlinearity=mode[4:].lower(), **kwargs)
    return getattr(tn.nn, mode)(*args, **kwargs)


def host(t):
    return t.detach().cpu().numpy()


def host_params(model):
    return {k: host(v).astype(np.float64) for k, v in model.state_dict().items()}


# --- the NumPy reference ----------------------------------------------------------------------

def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_step(mode, x_t, h, c, p, sfx):
    """One time step of one direction of one layer, straight from PyTorch's documented equations."""
    W_ih, W_hh = p["weight_ih" + sfx], p["weight_hh" + sfx]
    G = W_ih.shape[0]
    b_ih = p.get("bias_ih" + sfx, np.zeros(G))
    b_hh = p.get("bias_hh" + sfx, np.zeros(G))
    gi = x_t @ W_ih.T + b_ih
    gh = h @ W_hh.T + b_hh
    if mode == "RNN_TANH":
        return np.tanh(gi + gh), c
    if mode == "RNN_RELU":
        return np.maximum(gi + gh, 0.0), c
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = np_sigmoid(f) * c + np_sigmoid(i) * np.tanh(g)
        return np_sigmoid(o) * np.tanh(c), c
    i_r, i_z, i_n = np.split(gi, 3, axis=-1)
    h_r, h_z, h_n = np.split(gh, 3, axis=-1)
    r, z = np_sigmoid(i_r + h_r), np_sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, c


def np_rnn(mode, p, x, h0, c0, num_layers, hidden, bidirectional=False, batch_first=False,
           dropout_masks=None):
    """Reference forward for a batched input; returns (output, h_n, c_n) like PyTorch's layout.

    ``dropout_masks[k]`` (optional) multiplies the outputs of layer k before layer k + 1 reads them.
    """
    if batch_first:
        x = x.transpose(1, 0, 2)
    L, B, _ = x.shape
    D = 2 if bidirectional else 1
    if h0 is None:
        h0 = np.zeros((num_layers * D, B, hidden))
    if c0 is None:
        c0 = np.zeros((num_layers * D, B, hidden))
    h_n, c_n = [], []
    layer_in = x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            h, c = h0[layer * D + d], c0[layer * D + d]
            out = np.zeros((L, B, hidden))
            for t in (reversed(range(L)) if d else range(L)):
                h, c = np_step(mode, layer_in[t], h, c, p, sfx)
                out[t] = h
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_in = np.concatenate(outs, axis=2)
        if dropout_masks is not None and layer < num_layers - 1:
            layer_in = layer_in * dropout_masks[layer]
    output = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    return output, np.stack(h_n), np.stack(c_n)


def call(model, mode, x, h0, c0):
    """Run a tinynet layer; returns (output, h_n, c_n or None) whatever the mode."""
    if mode == "LSTM":
        out, (h_n, c_n) = model(x, None if h0 is None else (h0, c0))
        return out, h_n, c_n
    out, h_n = model(x, h0)
    return out, h_n, None


# --- forward against the reference -----------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@given(data=st.data())
def test_forward_matches_numpy_reference(device, mode, data):
    L, B = data.draw(st.integers(1, 6), label="L"), data.draw(st.integers(1, 3), label="B")
    H_in, H = data.draw(st.integers(1, 4), label="H_in"), data.draw(st.integers(1, 4), label="H")
    num_layers = data.draw(st.integers(1, 3), label="num_layers")
    bidirectional = data.draw(st.booleans(), label="bidirectional")
    batch_first = data.draw(st.booleans(), label="batch_first")
    bias = data.draw(st.booleans(), label="bias")
    given_state = data.draw(st.booleans(), label="initial state given")
    D = 2 if bidirectional else 1
    values = st.floats(-3, 3, allow_nan=False)
    x_shape = (B, L, H_in) if batch_first else (L, B, H_in)
    x = data.draw(hnp.arrays(np.float64, x_shape, elements=values), label="x")
    h0 = c0 = None
    if given_state:
        h0 = data.draw(hnp.arrays(np.float64, (num_layers * D, B, H), elements=values), label="h0")
        c0 = data.draw(hnp.arrays(np.float64, (num_layers * D, B, H), elements=values), label="c0")
    tn.manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    model = make(mode, H_in, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                 bidirectional=bidirectional, dtype=tn.float64, device=device)
    x_t, h0_t, c0_t = (None if a is None else tn.tensor(a, device=device) for a in (x, h0, c0))
    out, h_n, c_n = call(model, mode, x_t, h0_t, c0_t)
    ref_out, ref_h, ref_c = np_rnn(mode, host_params(model), x, h0, c0, num_layers, H,
                                   bidirectional, batch_first)
    assert out.device == tn.device(device) and out.dtype == tn.float64
    np.testing.assert_allclose(host(out), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(h_n), ref_h, rtol=1e-10, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(host(c_n), ref_c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input_is_a_batch_of_one(device, mode):
    tn.manual_seed(1)
    model = make(mode, 3, 4, num_layers=2, bidirectional=True, device=device)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    h0 = rng.standard_normal((4, 4)).astype(np.float32)
    c0 = rng.standard_normal((4, 4)).astype(np.float32)
    out, h_n, c_n = call(model, mode, tn.tensor(x, device=device), tn.tensor(h0, device=device),
                         tn.tensor(c0, device=device))
    ref_out, ref_h, ref_c = np_rnn(mode, host_params(model), x[:, None].astype(np.float64),
                                   h0[:, None], c0[:, None], 2, 4, bidirectional=True)
    assert out.shape == (5, 8) and h_n.shape == (4, 4)
    np.testing.assert_allclose(host(out), ref_out[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(h_n), ref_h[:, 0], rtol=1e-5, atol=1e-6)
    if mode == "LSTM":
        assert c_n.shape == (4, 4)
        np.testing.assert_allclose(host(c_n), ref_c[:, 0], rtol=1e-5, atol=1e-6)


@given(L=st.integers(1, 17), seed=st.integers(0, 100))
def test_unbind_over_time_gives_every_step_and_its_gradient(device, L, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((L, 2, 3))
    w = rng.standard_normal((L, 2, 3))
    x = tn.tensor(a, device=device, requires_grad=True)
    steps = x.unbind(0)
    assert len(steps) == L
    for t, s in enumerate(steps):
        np.testing.assert_array_equal(host(s), a[t])
    sum(((s * tn.tensor(w[t], device=device)).sum() for t, s in enumerate(steps))).backward()
    np.testing.assert_allclose(host(x.grad), w, rtol=1e-12)


# --- the step primitives against the composed steps ------------------------------------------

CELLS = {  # mode -> (primitive step, composed reference, gates); LSTM's take and return (h, c)
    "RNN_TANH": (rnn_module.rnn_tanh_cell, rnn_module.rnn_tanh_cell_reference, 1),
    "RNN_RELU": (rnn_module.rnn_relu_cell, rnn_module.rnn_relu_cell_reference, 1),
    "LSTM": (rnn_module.lstm_cell, rnn_module.lstm_cell_reference, 4),
    "GRU": (rnn_module.gru_cell, rnn_module.gru_cell_reference, 3),
}


def draw_cell_inputs(data, device, mode):
    """Float64 leaves (xw, h, [c,] w_hh, [b_hh]) of one step, and a function of them calling a
    step with ``w_hh_t`` given as ``w_hh.T`` (the layers' layout) or as a contiguous copy."""
    B, H = data.draw(st.integers(1, 4), label="B"), data.draw(st.integers(1, 4), label="H")
    G = CELLS[mode][2] * H
    bias = data.draw(st.booleans(), label="bias")
    transposed = data.draw(st.booleans(), label="w_hh_t as w_hh.T")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    shapes = [(B, G), (B, H)] + ([(B, H)] if mode == "LSTM" else []) + [(G, H)] + \
        ([(G,)] if bias else [])
    # continuous values from a seeded generator: the ReLU step is never exactly at its kink
    leaves = [tn.tensor(rng.standard_normal(s), device=device, requires_grad=True)
              for s in shapes]
    n_state = 2 if mode == "LSTM" else 1

    return leaves, leaf_caller(n_state, (lambda w: w.T) if transposed
                               else (lambda w: tn.clone(w.T))), rng


def leaf_caller(n_state: int, w_hh_t_of, **kwargs):
    """``call(fn)``: a function of the leaves ``(xw, *states, w_hh, [b_hh])`` that calls ``fn``
    with ``w_hh_t_of(w_hh)`` in place of ``w_hh`` (and ``kwargs``); its outputs as a tuple."""
    def call(fn):
        def run(*args):
            w_hh, *b = args[1 + n_state:]
            out = fn(*args[:1 + n_state], w_hh_t_of(w_hh), *b, **kwargs)
            return tuple(out) if isinstance(out, tuple) else (out,)
        return run
    return call


@pytest.mark.parametrize("mode", MODES)
@FEWER
@given(data=st.data())
def test_step_primitive_matches_composed_step_values_and_derivatives(device, mode, data):
    primitive, reference, _ = CELLS[mode]
    leaves, call, rng = draw_cell_inputs(data, device, mode)
    assert_same_values_and_derivatives(call(primitive), call(reference), leaves, rng, device,
                                       kinked=mode == "RNN_RELU")


def assert_same_values_and_derivatives(ours, theirs, leaves, rng, device, which=None,
                                       kinked=False):
    """``ours(*leaves)`` and ``theirs(*leaves)`` (tuples of outputs) give the same values, the
    same first derivatives for drawn upstream gradients of the outputs ``which`` (default: all),
    and the same second derivatives; ``kinked`` (ReLU): a zero second derivative may come back
    as None from one side only."""
    outs, refs = ours(*leaves), theirs(*leaves)
    for a, b in zip(outs, refs):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-12, atol=1e-12)
    which = range(len(outs)) if which is None else which
    # first derivatives with a drawn upstream gradient, kept differentiable ...
    ups = [tn.tensor(rng.standard_normal(outs[k].shape), device=device) for k in which]
    g_ours = tn.grad([outs[k] for k in which], leaves, ups, create_graph=True)
    g_refs = tn.grad([refs[k] for k in which], leaves, ups, create_graph=True)
    for a, b in zip(g_ours, g_refs):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-12)
    # ... and second derivatives: the gradient of <first derivatives, v> with respect to all
    vs = [tn.tensor(rng.standard_normal(g.shape), device=device) for g in g_ours]
    gg_ours = tn.grad(sum((g * v).sum() for g, v in zip(g_ours, vs)), leaves, allow_unused=True)
    gg_refs = tn.grad(sum((g * v).sum() for g, v in zip(g_refs, vs)), leaves, allow_unused=True)
    for a, b in zip(gg_ours, gg_refs):
        assert (a is None) == (b is None) or kinked
        np.testing.assert_allclose(0.0 if a is None else host(a), 0.0 if b is None else host(b),
                                   rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("mode", MODES)
@FEWER
@given(data=st.data())
def test_step_primitive_gradcheck_and_gradgradcheck(device, mode, data):
    leaves, call, _ = draw_cell_inputs(data, device, mode)
    check_gradients(call(CELLS[mode][0]), *leaves, second_order=True)


def graph_nodes(out):
    """Every node of ``out``'s graph, once."""
    nodes, stack = [], [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and all(node is not n for n in nodes):
            nodes.append(node)
            stack.extend(p for p in node.parents if isinstance(p, tn.autograd.Node))
    return nodes


SEQUENCE_OPS = {"RNN_TANH": rnn_module.RNNSequenceOp, "RNN_RELU": rnn_module.RNNSequenceOp,
                "LSTM": rnn_module.LSTMSequenceOp, "GRU": rnn_module.GRUSequenceOp}


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_a_layer_is_one_graph_node_per_direction(mode, bidirectional):
    model = make(mode, 3, 4, num_layers=2, bidirectional=bidirectional)
    out, h_n, c_n = call(model, mode, tn.randn(6, 5, 3), None, None)
    nodes = graph_nodes(out.sum() + h_n.sum() + (0 if c_n is None else c_n.sum()))
    assert sum(n.fn is SEQUENCE_OPS[mode] for n in nodes) == 2 * (2 if bidirectional else 1)
    # neither the step primitives nor the composed step's ops: a direction is one node
    assert not {n.fn for n in nodes} & {
        rnn_module.RNNTanhCellOp, rnn_module.RNNReluCellOp, rnn_module.LSTMCellOp,
        rnn_module.GRUCellOp, tn.ops.shape.UnbindOp, tn.ops.activation.SigmoidOp,
        tn.ops.elementwise.TanhOp, tn.ops.activation.ReluOp, tn.ops.linalg.MatMulOp}


# --- the sequence ops against the chain of their steps ----------------------------------------

def step_chain(mode):
    """A sequence op's result from one step primitive per step (the sequence op's reference):
    ``hs``, and for LSTM ``(hs, c_last)``."""
    def chain(xw, h, *rest, reverse=False):
        state, (w_hh_t, *b) = ((h, rest[0]), rest[1:]) if mode == "LSTM" else ((h,), rest)
        hs = [None] * xw.shape[0]
        for t in (range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0])):
            out = CELLS[mode][0](xw[t], *state, w_hh_t, *b)
            state = out if mode == "LSTM" else (out,)
            hs[t] = state[0]
        return (tn.stack(hs), state[1]) if mode == "LSTM" else tn.stack(hs)
    return chain


def sequence_function(mode):
    if mode.startswith("RNN"):
        return lambda *a, reverse: rnn_module.rnn_sequence(
            *a, nonlinearity=mode[4:].lower(), reverse=reverse)
    return {"LSTM": rnn_module.lstm_sequence, "GRU": rnn_module.gru_sequence}[mode]


def draw_sequence_inputs(data, device, mode):
    """Float64 leaves (xw, h0, [c0,] w_hh, [b_hh (GRU)]) and a function of them calling a
    sequence function with ``w_hh_t`` given as ``w_hh.T`` (the layers' layout)."""
    L, B, H = (data.draw(st.integers(1, n), label=k) for k, n in (("L", 5), ("B", 3), ("H", 3)))
    G = GATES[mode] * H
    bias = mode == "GRU" and data.draw(st.booleans(), label="b_hh")
    shapes = [(L, B, G), (B, H)] + ([(B, H)] if mode == "LSTM" else []) + [(G, H)] + \
        ([(G,)] if bias else [])
    # continuous values from a seeded generator: no ReLU step is exactly at its kink
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    leaves = [tn.tensor(rng.standard_normal(s), device=device, requires_grad=True)
              for s in shapes]
    reverse = data.draw(st.booleans(), label="reverse")
    return leaves, leaf_caller(2 if mode == "LSTM" else 1, lambda w: w.T, reverse=reverse), rng


@pytest.mark.parametrize("mode", MODES)
@FEWER
@given(data=st.data())
def test_sequence_op_matches_the_chain_of_steps_values_and_derivatives(device, mode, data):
    leaves, call, rng = draw_sequence_inputs(data, device, mode)
    # LSTM: upstream gradients for hs and c_last, or for one of them only (the other gets None)
    which = data.draw(st.sampled_from([(0, 1), (0,), (1,)]), label="outputs with a gradient") \
        if mode == "LSTM" else (0,)
    assert_same_values_and_derivatives(call(sequence_function(mode)), call(step_chain(mode)),
                                       leaves, rng, device, which, kinked=mode == "RNN_RELU")


@pytest.mark.parametrize("mode", MODES)
@FEWER
@given(data=st.data())
def test_sequence_op_gradcheck_and_gradgradcheck(device, mode, data):
    leaves, call, _ = draw_sequence_inputs(data, device, mode)
    check_gradients(call(sequence_function(mode)), *leaves, second_order=True)


def test_lstm_sequence_refuses_backward_after_hs_was_written_in_place():
    """Backward reads every step's h from the output ``hs`` (the weight's gradient needs them):
    writing to it in place must be refused, not give a silently wrong gradient. ``c_last`` is a
    copy that backward never reads: writing to it is fine."""
    xw, h0, c0 = (tn.randn(*s, requires_grad=True) for s in ((3, 2, 8), (2, 2), (2, 2)))
    w = tn.randn(8, 2, requires_grad=True)
    hs, c_last = rnn_module.lstm_sequence(xw, h0, c0, w.T)
    with tn.no_grad():
        c_last.add_(1.0)  # writes c_last's memory
    (hs.sum() + c_last.sum()).backward()  # c_last: not saved, accepted
    hs, c_last = rnn_module.lstm_sequence(xw, h0, c0, w.T)
    with tn.no_grad():
        hs[0] *= 2.0  # writes hs's memory
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[output 0 of "
                                           r"LSTMSequence, shape \(3, 2, 2\)"):
        (hs.sum() + c_last.sum()).backward()


@pytest.mark.parametrize("fn, shapes, match", [
    (rnn_module.lstm_sequence, ((3, 2, 8), (2, 2), (2, 2), (2, 6)),
     r"lstm_sequence: expected xw \(3, 2, 8\), h0 \(2, 2\), c0 \(2, 2\), w_hh_t \(2, 8\) "
     r"\(L >= 1, B=2, H=2, 4 gate\(s\)\), got xw \(3, 2, 8\), h0 \(2, 2\), c0 \(2, 2\), "
     r"w_hh_t \(2, 6\)"),
    (rnn_module.lstm_sequence, ((3, 2, 8), (2, 3), (2, 2), (2, 8)),
     r"lstm_sequence: expected .* got .*h0 \(2, 3\)"),
    (rnn_module.gru_sequence, ((3, 2, 6), (2, 2), (2, 6), (5,)),
     r"gru_sequence: expected .* b_hh \(6,\) .* got .* b_hh \(5,\)"),
    (rnn_module.rnn_sequence, ((2, 8), (2, 2), (2, 2)), r"rnn_sequence: xw must be 3-D"),
    (rnn_module.rnn_sequence, ((0, 2, 2), (2, 2), (2, 2)), r"rnn_sequence: expected .*L >= 1"),
])
def test_sequence_errors_name_the_function_and_the_shapes(fn, shapes, match):
    with pytest.raises(ValueError, match=match):
        fn(*[tn.zeros(*s) for s in shapes])


@pytest.mark.parametrize("fn, args, match", [
    (rnn_module.lstm_cell, ((2, 8), (2, 2), (2, 2), (2, 6)),
     (r"lstm_cell_hc: expected xw \(2, 8\), hc \(2, 4\), w_hh_t \(2, 8\) \(B=2, H=2, "
      r"4 gate\(s\)\), got .*w_hh_t \(2, 6\)")),
    (rnn_module.gru_cell, ((2, 6), (2, 2), (2, 5)),
     (r"gru_cell: expected xw \(2, 6\), h \(2, 2\), w_hh_t \(2, 6\) \(B=2, H=2, 3 "
      r"gate\(s\)\), got xw \(2, 6\), h \(2, 2\), w_hh_t \(2, 5\)")),
    (rnn_module.rnn_tanh_cell, ((2, 3), (3,), (3, 3)), r"rnn_tanh_cell: h must be 2-D"),
])
def test_step_errors_name_the_function_and_the_shapes(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*[tn.zeros(*s) for s in args])


def _layer_backward_bytes(mode: str, L: int) -> int:
    tn.manual_seed(0)
    layer = getattr(tn.nn, mode)(8, 8).to("standin")
    out, _ = layer(tn.randn(L, 4, 8, device="standin"))
    loss = out.sum()
    with tn.backend.count_calls() as counts:
        loss.backward()
    return counts.bytes_written


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_layer_backward_work_is_linear_in_the_sequence_length(mode):
    """Twice the steps, twice the bytes backward writes (the stand-in device counts them): the
    steps are one ``unbind`` node, whose backward writes the input's gradient once. Slicing
    ``x[t]`` step by step sent a full-size gradient per step (ratio ~4); slicing by halving, a
    log factor (ratio ~2.2 from 32 to 64 steps)."""
    ratio = _layer_backward_bytes(mode, 64) / _layer_backward_bytes(mode, 32)
    assert 1.9 < ratio < 2.08, ratio


# --- against PyTorch ---------------------------------------------------------------------------

TORCH_CONFIGS = {
    "plain": {"num_layers": 2},
    "batch_first-bidirectional": {"num_layers": 2, "batch_first": True, "bidirectional": True},
    "no_bias-unbatched": {"num_layers": 1, "bias": False, "unbatched": True},
}


def torch_layer(mode, *args, **kwargs):
    if mode.startswith("RNN"):
        return torch.nn.RNN(*args, nonlinearity=mode[4:].lower(), **kwargs)
    return getattr(torch.nn, mode)(*args, **kwargs)


@needs_torch
@pytest.mark.parametrize("config", list(TORCH_CONFIGS), ids=list(TORCH_CONFIGS))
@pytest.mark.parametrize("mode", MODES)
def test_matches_pytorch_outputs_and_gradients(device, mode, config):
    kwargs = dict(TORCH_CONFIGS[config])
    unbatched = kwargs.pop("unbatched", False)
    L, B, H_in, H = 4, 3, 5, 6
    D = 2 if kwargs.get("bidirectional") else 1
    tn.manual_seed(3)
    ours = make(mode, H_in, H, device=device, **kwargs)
    theirs = torch_layer(mode, H_in, H, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # same keys, same order
    theirs.load_state_dict({k: torch.from_numpy(host(v)) for k, v in ours.state_dict().items()})

    rng = np.random.default_rng(7)
    x_shape = (L, H_in) if unbatched else ((B, L, H_in) if kwargs.get("batch_first")
                                           else (L, B, H_in))
    s_shape = (kwargs["num_layers"] * D, H) if unbatched else (kwargs["num_layers"] * D, B, H)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in (x_shape, s_shape, s_shape)]
    ours_in = [tn.tensor(a, device=device, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    lstm = mode == "LSTM"
    out, h_n, c_n = call(ours, mode, *ours_in)
    t_out, t_state = theirs(theirs_in[0], tuple(theirs_in[1:]) if lstm else theirs_in[1])
    t_h, t_c = t_state if lstm else (t_state, None)
    pairs = [(out, t_out), (h_n, t_h)] + ([(c_n, t_c)] if lstm else [])
    for ours_t, theirs_t in pairs:
        np.testing.assert_allclose(host(ours_t), theirs_t.detach().numpy(), rtol=1e-5, atol=1e-5)

    # A loss that weighs every output element differently, so each gradient is distinct.
    weights = [rng.standard_normal(t.shape).astype(np.float32) for _, t in pairs]
    sum((o * tn.tensor(w, device=device)).sum() for (o, _), w in zip(pairs, weights)).backward()
    sum((t * torch.from_numpy(w)).sum() for (_, t), w in zip(pairs, weights)).backward()
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), theirs.get_parameter(name).grad.numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    used = 3 if lstm else 2
    for ours_t, theirs_t in list(zip(ours_in, theirs_in))[:used]:
        np.testing.assert_allclose(host(ours_t.grad), theirs_t.grad.numpy(), rtol=1e-4, atol=1e-5)


@needs_torch
@pytest.mark.parametrize("mode", MODES)
def test_parameter_count_and_shapes_match_pytorch(mode):
    ours = make(mode, 3, 5, num_layers=3, bidirectional=True)
    theirs = torch_layer(mode, 3, 5, num_layers=3, bidirectional=True)
    assert [(k, tuple(v.shape)) for k, v in ours.named_parameters()] == \
        [(k, tuple(v.shape)) for k, v in theirs.named_parameters()]
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    assert [[tuple(p.shape) for p in group] for group in ours.all_weights] == \
        [[tuple(p.shape) for p in group] for group in theirs.all_weights]


# --- gradients ---------------------------------------------------------------------------------

def draw_gradcheck_case(data, device, mode, max_layers=1, bidirectional=(False,)):
    L, B = data.draw(st.integers(2, 3), label="L"), data.draw(st.integers(1, 2), label="B")
    H_in, H = data.draw(st.integers(1, 2), label="H_in"), data.draw(st.integers(2, 3), label="H")
    num_layers = data.draw(st.integers(1, max_layers), label="num_layers")
    bidir = data.draw(st.sampled_from(bidirectional), label="bidirectional")
    batch_first = data.draw(st.booleans(), label="batch_first")
    bias = data.draw(st.booleans(), label="bias")
    # Values from a seeded generator: continuous, so the ReLU cell is never exactly at its kink.
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    tn.manual_seed(int(rng.integers(2**16)))
    model = make(mode, H_in, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                 bidirectional=bidir, dtype=tn.float64, device=device)
    D = 2 if bidir else 1
    x_shape = (B, L, H_in) if batch_first else (L, B, H_in)
    x = tn.tensor(rng.standard_normal(x_shape), device=device, requires_grad=True)
    h0, c0 = (tn.tensor(rng.standard_normal((num_layers * D, B, H)), device=device,
                        requires_grad=True) for _ in range(2))
    return model, x, h0, c0


def outputs_of(model, mode):
    """fn(x, h0, c0, *params) for gradcheck: the parameters are perturbed in place by gradcheck."""
    def fn(x, h0, c0, *params):
        out, h_n, c_n = call(model, mode, x, h0, c0)
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    return fn


@pytest.mark.parametrize("mode", MODES)
@FEWER
@given(data=st.data())
def test_gradcheck_input_state_and_parameters(device, mode, data):
    model, x, h0, c0 = draw_gradcheck_case(data, device, mode)
    inputs = (x, h0, c0) if mode == "LSTM" else (x, h0, c0.detach())
    check_gradients(outputs_of(model, mode), *inputs, *model.parameters())


@pytest.mark.parametrize("mode", MODES)
@FEWER
@given(data=st.data())
def test_gradcheck_stacked_bidirectional(device, mode, data):
    model, x, h0, c0 = draw_gradcheck_case(data, device, mode, max_layers=2,
                                           bidirectional=(False, True))
    inputs = (x, h0, c0) if mode == "LSTM" else (x, h0, c0.detach())
    # Random directional derivatives: the full Jacobian of every parameter of a stacked
    # bidirectional layer would take thousands of forward passes.
    check_gradients(outputs_of(model, mode), *inputs, *model.parameters(), fast_mode=True)


def test_parameters_get_gradients_through_time(device):
    # Only the last output is used: the first layer's weights are still reached through h.
    tn.manual_seed(0)
    model = tn.nn.LSTM(2, 3, num_layers=2, device=device)
    out, _ = model(tn.randn(4, 2, 2, device=device))
    out[-1].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.abs(host(p.grad)).sum() > 0, name


# --- dropout between layers ---------------------------------------------------------------------

def test_dropout_scales_kept_outputs_and_zeroes_the_rest(device):
    # Layer 2 is made the identity on positive inputs (ReLU, W_ih = I, W_hh = 0, no bias), so its
    # output is exactly layer 1's output times the dropout mask.
    p, H = 0.3, 40
    tn.manual_seed(0)
    model = tn.nn.RNN(3, H, num_layers=2, nonlinearity="relu", bias=False, dropout=p,
                      device=device)
    with tn.no_grad():
        model.weight_ih_l1[...] = tn.eye(H, device=device)
        model.weight_hh_l1[...] = tn.zeros(H, H, device=device)
    x = tn.randn(10, 5, 3, device=device)
    model.eval()
    layer1 = host(model(x)[0])
    model.train()
    ratio = host(model(x)[0])[layer1 > 0] / layer1[layer1 > 0]
    kept = np.isclose(ratio, 1 / (1 - p), rtol=1e-5)
    dropped = ratio == 0
    assert np.all(kept | dropped)
    n = ratio.size
    assert n > 500
    assert abs(dropped.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("mode", MODES)
def test_dropout_applies_between_layers_only_in_training(device, mode):
    tn.manual_seed(4)
    model = make(mode, 3, 4, num_layers=2, dropout=1.0, bidirectional=True, device=device)
    x = tn.randn(5, 2, 3, device=device)
    params = host_params(model)
    train_out, train_h, _ = call(model, mode, x, None, None)
    # dropout=1: layer 2 reads zeros; the final states of layer 1 are not dropped.
    zero_masks = [np.zeros((5, 2, 8))]
    ref_out, ref_h, _ = np_rnn(mode, params, host(x).astype(np.float64), None, None, 2, 4,
                               bidirectional=True, dropout_masks=zero_masks)
    np.testing.assert_allclose(host(train_out), ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(train_h), ref_h, rtol=1e-5, atol=1e-6)
    model.eval()
    eval_out, _, _ = call(model, mode, x, None, None)
    ref_eval, _, _ = np_rnn(mode, params, host(x).astype(np.float64), None, None, 2, 4,
                            bidirectional=True)
    np.testing.assert_allclose(host(eval_out), ref_eval, rtol=1e-5, atol=1e-6)


def test_dropout_is_seeded_and_differentiable(device):
    model = tn.nn.GRU(2, 3, num_layers=2, dropout=0.5, dtype=tn.float64, device=device)
    x = tn.randn(3, 2, 2, dtype=tn.float64, device=device, requires_grad=True)

    def seeded(x, *params):
        tn.manual_seed(11)  # the same mask at every evaluation, so the function is smooth
        return model(x)[0]

    np.testing.assert_array_equal(host(seeded(x)), host(seeded(x)))
    tn.manual_seed(12)
    assert not np.allclose(host(model(x)[0]), host(seeded(x)))
    check_gradients(seeded, x, *model.parameters(), fast_mode=True)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="num_layers=1"):
        tn.nn.LSTM(2, 3, dropout=0.5)


# --- initialisation, state dicts, module behaviour ---------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_parameters_named_shaped_and_initialised_as_pytorch(device, mode):
    H_in, H = 3, 50
    tn.manual_seed(5)
    model = make(mode, H_in, H, num_layers=2, bidirectional=True, device=device)
    G = GATES[mode] * H
    expected = []
    for layer in range(2):
        for sfx in ("", "_reverse"):
            cols = H_in if layer == 0 else 2 * H
            expected += [(f"weight_ih_l{layer}{sfx}", (G, cols)),
                         (f"weight_hh_l{layer}{sfx}", (G, H)),
                         (f"bias_ih_l{layer}{sfx}", (G,)), (f"bias_hh_l{layer}{sfx}", (G,))]
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    bound = 1 / math.sqrt(H)
    for name, p in model.named_parameters():
        values = host(p)
        assert p.device == tn.device(device) and p.dtype == tn.float32 and p.requires_grad
        assert values.min() >= -bound and values.max() <= bound, name
        if values.size >= 1000:  # U(-b, b) reaches close to both ends
            assert values.min() < -0.95 * bound and values.max() > 0.95 * bound, name
    tn.manual_seed(5)
    again = make(mode, H_in, H, num_layers=2, bidirectional=True)  # cpu, same seed
    for (name, a), b in zip(model.named_parameters(), again.parameters()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=name)
    assert not np.array_equal(host(again.weight_ih_l0), host(again.weight_ih_l0_reverse))


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trip(device, mode):
    tn.manual_seed(6)
    source = make(mode, 2, 3, num_layers=2, bias=False, batch_first=True, device=device)
    target = make(mode, 2, 3, num_layers=2, bias=False, batch_first=True, device=device)
    assert list(source.state_dict()) == ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1",
                                         "weight_hh_l1"]
    x = tn.randn(2, 4, 2, device=device)
    assert not np.allclose(host(call(source, mode, x, None, None)[0]),
                           host(call(target, mode, x, None, None)[0]))
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(host(call(source, mode, x, None, None)[0]),
                                  host(call(target, mode, x, None, None)[0]))
    wrong = make(mode, 2, 4, num_layers=2, bias=False)
    with pytest.raises(RuntimeError, match="weight_hh_l0"):
        wrong.load_state_dict(source.state_dict())


def test_module_conversions_and_repr(device):
    model = tn.nn.LSTM(4, 8, num_layers=2, batch_first=True, dropout=0.25, bidirectional=True)
    assert repr(model) == "LSTM(4, 8, num_layers=2, batch_first=True, dropout=0.25, " \
                          "bidirectional=True)"
    assert repr(tn.nn.RNN(1, 2, nonlinearity="relu", bias=False)) == \
        "RNN(1, 2, bias=False, nonlinearity='relu')"
    model.to(device).double().eval()
    out, (h_n, c_n) = model(tn.randn(3, 5, 4, dtype=tn.float64, device=device))
    assert out.shape == (3, 5, 16) and h_n.shape == c_n.shape == (4, 3, 8)
    assert out.dtype == tn.float64 and out.device == tn.device(device)
    model.flatten_parameters()  # PyTorch code calls it; a no-op here


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call_with, error, match", [
    (lambda m: m(tn.randn(5, 2, 4)), ValueError,
     r"LSTM\(3, 6, num_layers=2\).*\(5, 2, 4\).*input_size=3"),
    (lambda m: m(tn.randn(5)), ValueError, r"LSTM.*3-D input \(L, B, H_in\).*\(5,\)"),
    (lambda m: m(tn.randn(5, 2, 3, 1)), ValueError, r"LSTM.*\(5, 2, 3, 1\)"),
    (lambda m: m(tn.randn(5, 2, 3), (tn.zeros(1, 2, 6), tn.zeros(2, 2, 6))), ValueError,
     r"LSTM.*h_0 of shape \(2, 2, 6\).*got \(1, 2, 6\)"),
    (lambda m: m(tn.randn(5, 2, 3), (tn.zeros(2, 2, 6), tn.zeros(2, 3, 6))), ValueError,
     r"LSTM.*c_0 of shape \(2, 2, 6\).*got \(2, 3, 6\)"),
    (lambda m: m(tn.randn(5, 3), (tn.zeros(2, 1, 6), tn.zeros(2, 1, 6))), ValueError,
     r"LSTM.*h_0 of shape \(2, 6\).*got \(2, 1, 6\)"),
    (lambda m: m(tn.randn(5, 2, 3), tn.zeros(2, 2, 6)), TypeError, r"LSTM.*\(h_0, c_0\)"),
    (lambda m: m(tn.zeros(5, 2, 3, dtype=tn.int64)), TypeError, r"LSTM.*floating"),
    (lambda m: m(tn.zeros(0, 2, 3)), ValueError, r"LSTM.*sequence is empty.*\(0, 2, 3\)"),
    (lambda m: m(tn.randn(5, 2, 3, device="standin")), RuntimeError, r"LSTM.*standin.*cpu"),
    (lambda m: m(tn.randn(5, 2, 3, dtype=tn.float64)), ValueError,
     r"LSTM\(3, 6, num_layers=2\): input must have the parameters' dtype float32, got float64"),
    (lambda m: m(tn.randn(5, 2, 3), (tn.zeros(2, 2, 6), tn.zeros(2, 2, 6, dtype=tn.float64))),
     ValueError, r"LSTM.*c_0 must have the parameters' dtype float32, got float64"),
])
def test_errors_name_the_layer_and_the_shapes(call_with, error, match):
    model = tn.nn.LSTM(3, 6, num_layers=2)
    with pytest.raises(error, match=match):
        call_with(model)


def test_gru_and_rnn_state_errors():
    with pytest.raises(ValueError, match=r"GRU\(2, 3, batch_first=True\).*h_0 of shape "
                                         r"\(1, 4, 3\).*got \(1, 5, 3\)"):
        tn.nn.GRU(2, 3, batch_first=True)(tn.randn(4, 7, 2), tn.zeros(1, 5, 3))
    with pytest.raises(ValueError, match=r"RNN.*h_0 of shape \(2, 1, 3\)"):
        tn.nn.RNN(2, 3, bidirectional=True)(tn.randn(4, 1, 2), tn.zeros(1, 1, 3))


@pytest.mark.parametrize("build, error, match", [
    (lambda: tn.nn.RNN(2, 3, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (lambda: tn.nn.LSTM(2, 3, proj_size=2), NotImplementedError, "proj_size"),
    (lambda: tn.nn.GRU(2, 0), ValueError, "hidden_size"),
    (lambda: tn.nn.GRU(2, 3, num_layers=0), ValueError, "num_layers"),
    (lambda: tn.nn.LSTM(2, 3, num_layers=2, dropout=1.5), ValueError, "dropout"),
])
def test_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_docs_recurrent_snippets_run():
    text = (Path(__file__).parent.parent / "docs" / "nn.md").read_text()
    section = re.search(r"^## Recurrent layers\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/nn.md has no '## Recurrent layers' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/nn.md (Recurrent layers)", "exec"), {})
