"""One time step of each recurrent cell as a primitive: Elman (tanh, ReLU), LSTM and GRU, with
PyTorch's equations and gate order; and every time step of one direction of a layer as one
primitive (``RNNSequenceOp``, ``LSTMSequenceOp``, ``GRUSequenceOp``, at the end of this file:
what ``tinynet.nn.RNN/LSTM/GRU`` run on; their backward is backpropagation through time,
written out).

Every step takes the input half of the pre-activation, ``xw = x_t W_ih^T + b_ih`` (B, G),
which the layer computes for all time steps in one product, the previous state, the transposed
hidden weight ``w_hh_t`` (H, G) and, optionally, the hidden bias ``b_hh`` (G,), with
``G = gates * H``. The step does one ``(B, H) @ (H, G)`` product and its gate arithmetic fused,
and its backward writes out the gate derivatives (in each class's docstring, and in
``docs/ops.md``), so a time step is one node of the graph instead of ~15.

Notation in the docstrings: ``g`` is the gradient arriving at the step's output, ``dpre`` the
gradient of the pre-activation ``pre = xw + h @ w_hh_t + b_hh``; then every step ends the same
way: ``grad_xw = dpre``, ``grad_h = dpre @ w_hh_t^T`` (+ a direct term for GRU and the cell state
for LSTM), ``grad_w_hh_t = h^T @ dpre``, ``grad_b_hh = sum(dpre, axis=0)``.

The LSTM step has two results, ``h'`` and ``c'``. Rather than two outputs (which the engine
allows, docs/autograd.md section 17), the step carries the two states packed side by side,
``hc = [h | c]`` (B, 2H), from one step to the next: input ``hc``, output ``hc'``. A layer then
never splits and re-joins the state between steps (two fewer nodes per step); it slices ``h``
out of all steps' outputs once (``tinynet/nn/rnn.py``).

First-order backward reads the activations forward saved (constants); under ``create_graph`` it
recomputes them from the saved inputs with ``ctx.xp`` (recorded ops), so the same gradient
formula is differentiable again. The composed steps these are tested against are in
``tinynet/nn/rnn.py`` (``*_cell_reference``). Read ``linalg.py`` first.
"""

from __future__ import annotations

from ..autograd import Op
from ..tensor import Tensor
from .operands import unary_operand

__all__: list = []  # building blocks of tn.nn.RNN/LSTM/GRU, not tn.<name> functions

_CONSTANTS: dict = {}  # (device, dtype, H) -> the LSTM's per-gate scale and offset rows


def _check(fn: str, gates: int, xw, h, w_hh_t, b_hh, state: str = "h", state_width: int = 1):
    """Coerce and check one step's arguments; the tensors to apply the op to."""
    xw, h, w_hh_t = unary_operand(xw), unary_operand(h), unary_operand(w_hh_t)
    tensors = [xw, h, w_hh_t] + ([] if b_hh is None else [unary_operand(b_hh)])
    shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(("xw", state, "w_hh_t", "b_hh"),
                                                                tensors))
    if h.ndim != 2 or h.shape[1] % state_width:
        raise ValueError(f"{fn}: {state} must be 2-D (B, {'2H' if state_width == 2 else 'H'}), "
                         f"got {shapes}")
    B, H = h.shape[0], h.shape[1] // state_width
    G = gates * H
    expected = [(B, G), (B, H * state_width), (H, G), (G,)]
    if any(tuple(t.shape) != e for t, e in zip(tensors, expected)):
        names = ("xw", state, "w_hh_t", "b_hh")
        want = ", ".join(f"{n} {e}" for n, e, _ in zip(names, expected, tensors))
        raise ValueError(f"{fn}: expected {want} (B={B}, H={H}, {gates} gate(s)), got {shapes}")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1 or tensors[0].dtype.kind != "f":
        raise TypeError(f"{fn}: all tensors must share one floating dtype, got "
                        f"{', '.join(str(t.dtype) for t in tensors)}")
    return tensors


# --- Elman: tanh and ReLU ------------------------------------------------------------------------

class RNNTanhCellOp(Op):
    """h' = tanh(xw + h @ w_hh_t + b_hh)  ->  dpre = g * (1 - h'^2),  grad_xw = dpre,
    grad_h = dpre @ w_hh_t^T,  grad_w_hh_t = h^T @ dpre,  grad_b_hh = sum(dpre, axis=0)"""

    @staticmethod
    def forward(ctx, xw, h, w_hh_t, b_hh=None):
        pre = _elman_pre(ctx, xw, h, w_hh_t, b_hh)
        return ctx.xp.tanh(pre, out=pre)

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved_output
        return _elman_grads(ctx, g * (1 - out * out))


def rnn_tanh_cell(xw, h, w_hh_t, b_hh=None) -> Tensor:
    """One Elman step, ``h' = tanh(xw + h @ w_hh_t + b_hh)``: ``xw`` (B, H) the input half of the
    pre-activation, ``h`` (B, H), ``w_hh_t`` (H, H) = ``W_hh^T``, ``b_hh`` (H,) or None."""
    return RNNTanhCellOp.apply(*_check("rnn_tanh_cell", 1, xw, h, w_hh_t, b_hh))


class RNNReluCellOp(Op):
    """h' = relu(xw + h @ w_hh_t + b_hh)  ->  dpre = g * [h' > 0],  grad_xw = dpre,
    grad_h = dpre @ w_hh_t^T,  grad_w_hh_t = h^T @ dpre,  grad_b_hh = sum(dpre, axis=0)"""

    @staticmethod
    def forward(ctx, xw, h, w_hh_t, b_hh=None):
        pre = _elman_pre(ctx, xw, h, w_hh_t, b_hh)
        return ctx.xp.maximum(pre, 0, out=pre)

    @staticmethod
    def backward(ctx, g):
        return _elman_grads(ctx, g * (ctx.saved_output > 0))


def rnn_relu_cell(xw, h, w_hh_t, b_hh=None) -> Tensor:
    """One Elman step with ReLU, ``h' = relu(xw + h @ w_hh_t + b_hh)`` (shapes as
    :func:`rnn_tanh_cell`)."""
    return RNNReluCellOp.apply(*_check("rnn_relu_cell", 1, xw, h, w_hh_t, b_hh))


def _elman_pre(ctx, xw, h, w_hh_t, b_hh):
    """An Elman step's pre-activation ``xw + h @ w_hh_t + b_hh`` as a fresh array (the
    activation may write into it); saves what :func:`_elman_grads` reads, and the output."""
    ctx.save_inputs(1, 2)
    ctx.save_output()
    pre = _hidden_product(ctx.xp, h, w_hh_t)
    pre += xw
    if b_hh is not None:
        pre += b_hh
    return pre


def _elman_grads(ctx, dpre) -> tuple:
    """The gradients of an Elman step (also the tail of every step) from ``dpre``."""
    xp = ctx.xp
    h, w = ctx.saved_inputs
    needs = ctx.needs_input_grad
    grad_h = xp.matmul(dpre, xp.swapaxes(w, 0, 1)) if needs[1] else None
    grad_w = _weight_grad(xp, h, dpre) if needs[2] else None
    grads = (dpre if needs[0] else None, grad_h, grad_w)
    if len(needs) == 4:
        grads += (dpre.sum(axis=0) if needs[3] else None,)
    return grads


# --- LSTM -----------------------------------------------------------------------------------------

class LSTMCellOp(Op):
    """hc' = [h' | c'],  c' = f * c + i * n,  h' = o * tanh(c'),  with [i, f, n, o] =
    [sigmoid, sigmoid, tanh, sigmoid](xw + h @ w_hh_t + b_hh) and hc = [h | c]  ->
    with [gh | gc] = g:  dc = gc + gh * o * (1 - tanh(c')^2),  dpre_i = dc * n * i * (1 - i),
    dpre_f = dc * c * f * (1 - f),  dpre_n = dc * i * (1 - n^2),  dpre_o = gh * tanh(c') * o *
    (1 - o),  grad_xw = dpre = [dpre_i, dpre_f, dpre_n, dpre_o],  grad_hc = [dpre @ w_hh_t^T |
    dc * f],  grad_w_hh_t = h^T @ dpre,  grad_b_hh = sum(dpre, axis=0)

    One step of PyTorch's LSTM (gate order i, f, g, o; the cell gate is called ``n`` here so that
    ``g`` stays the upstream gradient). ``xw`` (B, 4H), ``hc`` (B, 2H), ``w_hh_t`` (H, 4H),
    ``b_hh`` (4H,) or absent. The state travels packed, ``hc = [h | c]``, because a node has one
    output: see the module docstring.

    All four activations come from one ``tanh``: ``sigmoid(x) = (1 + tanh(x / 2)) / 2``, so with
    ``s = [1/2, 1/2, 1, 1/2]`` per gate block, ``t = tanh(pre * s)`` and the activations are
    ``t * s + (1 - s)`` (the cell gate's block is ``tanh(pre)`` itself); their derivatives are
    ``s^2 * (1 - t^2)``, which is what backward uses.
    """

    @staticmethod
    def forward(ctx, xw, hc, w_hh_t, b_hh=None):
        xp = ctx.xp
        H = w_hh_t.shape[0]
        hw = _hidden_product(xp, hc[:, :H], w_hh_t)
        t, act, c_new, tc = _lstm_gates(xp, ctx.device, xw, hc[:, H:], hw, b_hh)
        out = xp.empty(hc.shape, dtype=hc.dtype)
        xp.multiply(act[:, 3 * H:], tc, out=out[:, :H])
        out[:, H:] = c_new
        if any(ctx.needs_input_grad):
            ctx.save_inputs(*range(3 if b_hh is None else 4))
            ctx.save_constant(t, act, tc)
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        xw, hc, w, *b = ctx.saved_inputs
        H = w.shape[0]
        if ctx.create_graph:  # recompute the activations as recorded ops (second order)
            hw = xp.matmul(hc[:, :H], w)
            t, act, _, tc = _lstm_gates(xp, ctx.device, xw, hc[:, H:], hw, b[0] if b else None)
        else:
            t, act, tc = ctx.saved_constants
        h, c = hc[:, :H], hc[:, H:]
        i, f, n, o = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
        gh, gc = g[:, :H], g[:, H:]
        dc = gc + gh * o * (1 - tc * tc)
        # upstream of each activation, then times each activation's derivative s^2 (1 - t^2)
        u = xp.concatenate([dc * n, dc * c, dc * i, gh * tc], axis=1)
        _, _, s2 = _lstm_constants(ctx.device, t.dtype, H)
        dpre = u * (1 - t * t) * s2
        needs = ctx.needs_input_grad
        grad_hc = None
        if needs[1]:
            grad_hc = xp.concatenate([xp.matmul(dpre, xp.swapaxes(w, 0, 1)), dc * f], axis=1)
        grad_w = _weight_grad(xp, h, dpre) if needs[2] else None
        grads = (dpre if needs[0] else None, grad_hc, grad_w)
        if len(needs) == 4:
            grads += (dpre.sum(axis=0) if needs[3] else None,)
        return grads


def lstm_cell_hc(xw, hc, w_hh_t, b_hh=None) -> Tensor:
    """One LSTM step on the packed state ``hc = [h | c]`` (B, 2H): returns ``[h' | c']`` (B, 2H).

    ``xw`` (B, 4H) is ``x_t W_ih^T + b_ih`` (gate order i, f, g, o), ``w_hh_t`` (H, 4H) is
    ``W_hh^T``, ``b_hh`` (4H,) or None. ``tinynet.nn.rnn.lstm_cell`` takes and returns ``h`` and
    ``c`` separately.
    """
    return LSTMCellOp.apply(*_check("lstm_cell_hc", 4, xw, hc, w_hh_t, b_hh, "hc", 2))


def _lstm_constants(device, dtype, H: int) -> tuple:
    """Rows (4H,) per gate block i, f, n, o: the scale ``s`` = [1/2, 1/2, 1, 1/2], the offset
    ``1 - s`` and ``s^2`` (made once per device, dtype and H; raw arrays: constants)."""
    key = (device, dtype, H)
    rows = _CONSTANTS.get(key)
    if rows is None:
        xp = device.xp
        s = xp.full((4 * H,), 0.5, dtype=dtype)
        s[2 * H:3 * H] = 1.0
        rows = _CONSTANTS[key] = (s, 1 - s, s * s)
    return rows


def _lstm_gates(xp, device, xw, c, hw, b) -> tuple:
    """``(t, act, c', tanh(c'))`` of one LSTM step from ``hw = h @ w_hh_t`` and the cell state
    ``c`` (on arrays, or on Tensors under create_graph): ``t = tanh(pre * s)``,
    ``act = [i, f, n, o] = t * s + (1 - s)``."""
    H = hw.shape[1] // 4
    s, offset, _ = _lstm_constants(device, c.dtype, H)
    pre = hw + xw
    if b is not None:
        pre = pre + b
    t = xp.tanh(pre * s)
    act = t * s + offset
    c_new = act[:, H:2 * H] * c + act[:, :H] * act[:, 2 * H:3 * H]
    return t, act, c_new, xp.tanh(c_new)


def _hidden_product(xp, h, w):
    """``h @ w`` on raw arrays. The layers pass ``w_hh_t`` as the transposed view ``w_hh.T``
    (so that backward's ``g @ w_hh_t^T`` reads ``w_hh`` in its own layout); forward then computes
    ``(w_hh @ h^T)^T``, the same product with both operands in the layout BLAS reads fastest
    (about 1.5x faster at LSTM sizes than a product with a transposed right operand)."""
    flags = getattr(w, "flags", None)
    if flags is not None and flags.f_contiguous and not flags.c_contiguous:
        return xp.swapaxes(xp.matmul(xp.swapaxes(w, 0, 1), xp.swapaxes(h, 0, 1)), 0, 1)
    return xp.matmul(h, w)


def _weight_grad(xp, h, dpre):
    """``h^T @ dpre`` (H, G), computed as ``(dpre^T @ h)^T``: the same numbers, a little faster
    with BLAS, and already in ``w_hh``'s (G, H) layout once the layer's transpose hands it
    back."""
    return xp.swapaxes(xp.matmul(xp.swapaxes(dpre, 0, 1), h), 0, 1)


# --- LSTM, all time steps of one direction in one node --------------------------------------------

class LSTMSequenceOp(Op):
    """hs = [h_0 .. h_{L-1}], c_last: LSTMCellOp's step h_t, c_t = step(xw[t], h_{t-1}, c_{t-1})
    for t = 0..L-1 (L-1..0 when reverse)  ->  backpropagation through time, from the last step
    taken back to the first, with dh = 0 and dc = g_c at the start:  gh = g_hs[t] + dh,
    dc = dc + gh * o * (1 - tanh(c_t)^2),  dpre_t = [dc * n, dc * c_{t-1}, dc * i, gh *
    tanh(c_t)] * [i (1 - i), f (1 - f), 1 - n^2, o (1 - o)],  dh = dpre_t @ w_hh_t^T,
    dc = dc * f;  then grad_xw = dpre (every step),  grad_h0 = dh,  grad_c0 = dc,
    grad_w_hh_t = sum_t h_{t-1}^T @ dpre_t (one product over all steps)

    One direction of one LSTM layer: ``xw`` (L, B, 4H) is every step's ``x_t W_ih^T + b_ih +
    b_hh`` (the layer computes it in one product), ``h0`` and ``c0`` (B, H) the initial state,
    ``w_hh_t`` (H, 4H) = ``W_hh^T``. Two outputs: ``hs`` (L, B, H), every step's ``h`` in time
    order (both directions), and ``c_last`` (B, H), the cell state after the last step taken.

    The same step as :class:`LSTMCellOp`, with the same one-``tanh`` activations (the gate
    derivatives above are computed as ``s^2 * (1 - t^2)``, see there), and the loop over time
    inside the op: the graph has one node per layer and direction instead of one per step,
    forward writes every step's activations into arrays made once, and backward gets the hidden
    weight's gradient from one (H, L*B) @ (L*B, 4H) product instead of L small ones added up.
    A training step of benchmarks/rnn_speed.py's LSTM took 1.49x PyTorch's time with one
    LSTMCellOp per step, 1.21x with this op. tests/test_rnn.py checks it against the chain of
    LSTMCellOp steps (values, first and second derivatives).
    """

    @staticmethod
    def forward(ctx, xw, h0, c0, w_hh_t, *, reverse=False):
        xp = ctx.xp
        L, B, G = xw.shape
        H = G // 4
        s, offset, _ = _lstm_constants(ctx.device, xw.dtype, H)
        t_all = xp.empty(xw.shape, dtype=xw.dtype)  # tanh(pre * s), each step
        act = xp.empty(xw.shape, dtype=xw.dtype)  # [i, f, n, o] = t * s + (1 - s)
        hs = xp.empty((L, B, H), dtype=xw.dtype)
        cs = xp.empty((L, B, H), dtype=xw.dtype)
        tcs = xp.empty((L, B, H), dtype=xw.dtype)  # tanh(c_t)
        w_c = xp.ascontiguousarray(w_hh_t)  # (H, 4H) in the layout h @ w reads fastest
        h, c = h0, c0
        for k in _time_order(L, reverse):
            t, a, c_new = t_all[k], act[k], cs[k]
            xp.matmul(h, w_c, out=t)
            t += xw[k]
            t *= s
            xp.tanh(t, out=t)
            xp.multiply(t, s, out=a)
            a += offset
            xp.multiply(a[:, H:2 * H], c, out=c_new)
            c_new += a[:, :H] * a[:, 2 * H:3 * H]
            xp.tanh(c_new, out=tcs[k])
            xp.multiply(a[:, 3 * H:], tcs[k], out=hs[k])
            h, c = hs[k], c_new
        ctx.reverse = reverse
        if any(ctx.needs_input_grad):
            ctx.save_inputs(0, 1, 2, 3)
            ctx.save_output(0)  # hs (backward reads every h_{t-1}); c_last is not read
            ctx.save_constant(t_all, act, cs, tcs)
        return hs, c.copy()  # c_last a copy: cs is saved for backward

    @staticmethod
    def backward(ctx, g_hs, g_c):
        xp = ctx.xp
        xw, h0, c0, w = ctx.saved_inputs
        L, B, G = xw.shape
        H = G // 4
        order = _time_order(L, ctx.reverse)
        if ctx.create_graph:  # recompute every step as recorded ops (second order)
            hs, t_all, act, cs, tcs = _lstm_sequence_recorded(xp, ctx.device, xw, h0, c0, w, order)
        else:
            hs = ctx.saved_output[0]
            t_all, act, cs, tcs = ctx.saved_constants
        _, _, s2 = _lstm_constants(ctx.device, xw.dtype, H)
        d = (1 - t_all * t_all) * s2  # every step's activation derivatives at once
        w_t = xp.swapaxes(w, 0, 1)  # (4H, H): w_hh in its own layout
        dh, dc = None, g_c
        # every step's dpre: written into one array (first order), or stacked (recorded ops)
        dpre = [None] * L if ctx.create_graph else xp.empty(xw.shape, dtype=xw.dtype)
        for j in range(L - 1, -1, -1):  # the steps in the reverse of the order they were taken
            k = order[j]
            c_prev = c0 if j == 0 else cs[order[j - 1]]
            a, tc = act[k], tcs[k]
            gh = dh if g_hs is None else g_hs[k] if dh is None else g_hs[k] + dh
            if gh is None:  # nothing reached this step's h (no gradient for hs)
                gh = xp.zeros((B, H), dtype=xw.dtype)
            dc_k = gh * a[:, 3 * H:] * (1 - tc * tc)
            dc = dc_k if dc is None else dc + dc_k
            u = xp.concatenate([dc * a[:, 2 * H:3 * H], dc * c_prev, dc * a[:, :H], gh * tc],
                               axis=1)
            if ctx.create_graph:
                dpre[k] = u * d[k]
            else:
                xp.multiply(u, d[k], out=dpre[k])
            dh = xp.matmul(dpre[k], w_t)
            dc = dc * a[:, H:2 * H]
        if ctx.create_graph:
            dpre = xp.stack(dpre)  # (L, B, 4H)
        needs = ctx.needs_input_grad
        grad_w = _sequence_weight_grad(xp, h0, hs, dpre, ctx.reverse) if needs[3] else None
        return (dpre if needs[0] else None, dh if needs[1] else None,
                dc if needs[2] else None, grad_w)


def lstm_sequence(xw, h0, c0, w_hh_t, *, reverse: bool = False) -> tuple:
    """Every step of one LSTM direction: ``xw`` (L, B, 4H) = ``x_t W_ih^T + b_ih + b_hh`` for
    every step, ``h0`` and ``c0`` (B, H), ``w_hh_t`` (H, 4H) = ``W_hh^T``. Returns ``(hs,
    c_last)``: ``hs`` (L, B, H) every step's ``h`` in time order, ``c_last`` (B, H) the cell
    state after the last step taken (step 0 when ``reverse``)."""
    xw, h0, c0, w_hh_t = _check_sequence("lstm_sequence", 4, xw, (h0, c0), w_hh_t)
    return LSTMSequenceOp.apply(xw, h0, c0, w_hh_t, reverse=bool(reverse))


def _time_order(L: int, reverse: bool) -> range:
    """The time steps in the order a direction takes them."""
    return range(L - 1, -1, -1) if reverse else range(L)


def _lstm_sequence_recorded(xp, device, xw, h0, c0, w, order) -> tuple:
    """Every step's ``(h, t, act, c, tanh(c))`` recomputed with ``xp`` (recorded ops, for
    create_graph), stacked in time order like the arrays forward saves."""
    L = len(order)
    steps = [None] * L
    h, c = h0, c0
    for k in order:
        t, act, c, tc = _lstm_gates(xp, device, xw[k], c, xp.matmul(h, w), None)
        h = act[:, 3 * w.shape[0]:] * tc
        steps[k] = (h, t, act, c, tc)
    return tuple(xp.stack(list(parts)) for parts in zip(*steps))


# --- GRU ------------------------------------------------------------------------------------------

class GRUCellOp(Op):
    """h' = n + z * (h - n),  n = tanh(xw_n + r * hw_n),  [r, z] = sigmoid(xw_rz + hw_rz),
    hw = h @ w_hh_t + b_hh  ->  dn = g * (1 - z),  dpre_n = dn * (1 - n^2),  dpre_r = dpre_n *
    hw_n * r * (1 - r),  dpre_z = g * (h - n) * z * (1 - z),  grad_xw = [dpre_r, dpre_z,
    dpre_n],  dhw = [dpre_r, dpre_z, dpre_n * r],  grad_h = dhw @ w_hh_t^T + g * z,
    grad_w_hh_t = h^T @ dhw,  grad_b_hh = sum(dhw, axis=0)

    One step of PyTorch's GRU (gate order r, z, n; the hidden bias of ``n`` inside the product
    with ``r``, so ``b_hh`` is not folded into ``xw``). ``xw`` (B, 3H), ``h`` (B, H), ``w_hh_t``
    (H, 3H), ``b_hh`` (3H,) or absent.
    """

    @staticmethod
    def forward(ctx, xw, h, w_hh_t, b_hh=None):
        hw, rz, n, h_n, out = _gru_gates(ctx.xp, xw, h, _hidden_product(ctx.xp, h, w_hh_t),
                                         b_hh)
        if any(ctx.needs_input_grad):
            ctx.save_inputs(*range(3 if b_hh is None else 4))
            ctx.save_constant(hw, rz, n, h_n)
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        xw, h, w, *b = ctx.saved_inputs
        H = h.shape[1]
        if ctx.create_graph:  # recompute the activations as recorded ops (second order)
            hw, rz, n, h_n, _ = _gru_gates(xp, xw, h, xp.matmul(h, w), b[0] if b else None)
        else:
            hw, rz, n, h_n = ctx.saved_constants
        r, z = rz[:, :H], rz[:, H:]
        gz = g * z
        dpre_n = (g - gz) * (1 - n * n)
        drz = xp.concatenate([dpre_n * hw[:, 2 * H:], g * h_n], axis=1) * (rz - rz * rz)
        dhw = xp.concatenate([drz, dpre_n * r], axis=1)
        needs = ctx.needs_input_grad
        grad_xw = xp.concatenate([drz, dpre_n], axis=1) if needs[0] else None
        grad_h = xp.matmul(dhw, xp.swapaxes(w, 0, 1)) + gz if needs[1] else None
        grad_w = _weight_grad(xp, h, dhw) if needs[2] else None
        grads = (grad_xw, grad_h, grad_w)
        if len(needs) == 4:
            grads += (dhw.sum(axis=0) if needs[3] else None,)
        return grads


def gru_cell(xw, h, w_hh_t, b_hh=None) -> Tensor:
    """One GRU step: ``xw`` (B, 3H) is ``x_t W_ih^T + b_ih`` (gate order r, z, n), ``h`` (B, H),
    ``w_hh_t`` (H, 3H) is ``W_hh^T``, ``b_hh`` (3H,) or None. Returns ``h'`` (B, H)."""
    return GRUCellOp.apply(*_check("gru_cell", 3, xw, h, w_hh_t, b_hh))


def _gru_gates(xp, xw, h, hw, b) -> tuple:
    """``(hw + b, [r, z], n, h - n, h')`` of one GRU step from ``hw = h @ w_hh_t``, on arrays or
    (create_graph) on Tensors; the sigmoid as ``(1 + tanh(x / 2)) / 2``, one tanh without
    overflow."""
    H = h.shape[1]
    if b is not None:
        hw = hw + b
    rz = xp.tanh((xw[:, :2 * H] + hw[:, :2 * H]) * 0.5) * 0.5 + 0.5
    n = xp.tanh(xw[:, 2 * H:] + rz[:, :H] * hw[:, 2 * H:])
    h_n = h - n
    return hw, rz, n, h_n, n + rz[:, H:] * h_n


# --- Elman and GRU, all time steps of one direction in one node -----------------------------------

class RNNSequenceOp(Op):
    """hs = [h_0 .. h_{L-1}]: h_t = act(xw[t] + h_{t-1} @ w_hh_t), act = tanh or relu, for
    t = 0..L-1 (L-1..0 when reverse)  ->  backpropagation through time, from the last step taken
    back to the first, with dh = 0 at the start:  g = g_hs[t] + dh,  dpre_t = g * (1 - h_t^2)
    (tanh) or g * [h_t > 0] (relu),  dh = dpre_t @ w_hh_t^T;  then grad_xw = dpre (every step),
    grad_h0 = dh,  grad_w_hh_t = sum_t h_{t-1}^T @ dpre_t (one product over all steps)

    One direction of one Elman layer: ``xw`` (L, B, H) is every step's ``x_t W_ih^T + b_ih +
    b_hh`` (the layer computes it in one product), ``h0`` (B, H), ``w_hh_t`` (H, H) =
    ``W_hh^T``; ``nonlinearity`` is ``"tanh"`` or ``"relu"``. Returns ``hs`` (L, B, H), every
    step's ``h`` in time order. The step is :class:`RNNTanhCellOp`'s (or
    :class:`RNNReluCellOp`'s); tests/test_rnn.py checks this op against the chain of those steps.
    """

    @staticmethod
    def forward(ctx, xw, h0, w_hh_t, *, nonlinearity="tanh", reverse=False):
        hs = _elman_sequence(ctx.xp, xw, h0, w_hh_t, nonlinearity, _time_order(len(xw), reverse))
        ctx.nonlinearity, ctx.reverse = nonlinearity, reverse
        if any(ctx.needs_input_grad):
            ctx.save_inputs(0, 1, 2)
            ctx.save_output()
        return hs

    @staticmethod
    def backward(ctx, g_hs):
        xp = ctx.xp
        xw, h0, w = ctx.saved_inputs
        hs = ctx.saved_output
        L = xw.shape[0]
        order = _time_order(L, ctx.reverse)
        w_t = xp.swapaxes(w, 0, 1)
        dh = None
        dpre = [None] * L
        for j in range(L - 1, -1, -1):  # the steps in the reverse of the order they were taken
            k = order[j]
            g = g_hs[k] if dh is None else g_hs[k] + dh
            h = hs[k]
            dpre[k] = g * (1 - h * h) if ctx.nonlinearity == "tanh" else g * (h > 0)
            dh = xp.matmul(dpre[k], w_t)
        dpre = xp.stack(dpre)  # (L, B, H)
        needs = ctx.needs_input_grad
        grad_w = _sequence_weight_grad(xp, h0, hs, dpre, ctx.reverse) if needs[2] else None
        return dpre if needs[0] else None, dh if needs[1] else None, grad_w


def rnn_sequence(xw, h0, w_hh_t, *, nonlinearity: str = "tanh", reverse: bool = False) -> Tensor:
    """Every step of one Elman direction: ``xw`` (L, B, H) = ``x_t W_ih^T + b_ih + b_hh`` for
    every step, ``h0`` (B, H), ``w_hh_t`` (H, H) = ``W_hh^T``. Returns ``hs`` (L, B, H), every
    step's ``h`` in time order."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_sequence: nonlinearity must be 'tanh' or 'relu', got "
                         f"{nonlinearity!r}")
    xw, h0, w_hh_t = _check_sequence("rnn_sequence", 1, xw, (h0,), w_hh_t)
    return RNNSequenceOp.apply(xw, h0, w_hh_t, nonlinearity=nonlinearity, reverse=bool(reverse))


class GRUSequenceOp(Op):
    """hs = [h_0 .. h_{L-1}]: GRUCellOp's step h_t = step(xw[t], h_{t-1}) for t = 0..L-1
    (L-1..0 when reverse)  ->  backpropagation through time, from the last step taken back to
    the first, with dh = 0 at the start:  g = g_hs[t] + dh, and GRUCellOp's step derivatives
    dpre_n = g * (1 - z) * (1 - n^2),  drz = [dpre_n * hw_n, g * (h_{t-1} - n)] * rz * (1 - rz),
    dhw_t = [drz, dpre_n * r],  dh = dhw_t @ w_hh_t^T + g * z;  then grad_xw = [drz, dpre_n]
    (every step),  grad_h0 = dh,  grad_w_hh_t = sum_t h_{t-1}^T @ dhw_t (one product over all
    steps),  grad_b_hh = sum of dhw over steps and batch

    One direction of one GRU layer: ``xw`` (L, B, 3H) is every step's ``x_t W_ih^T + b_ih``,
    ``h0`` (B, H), ``w_hh_t`` (H, 3H) = ``W_hh^T``, ``b_hh`` (3H,) or absent (it stays out of
    ``xw``: ``b_hn`` is inside the product with ``r``). Returns ``hs`` (L, B, H), every step's
    ``h`` in time order. tests/test_rnn.py checks it against the chain of GRUCellOp steps
    (values, first and second derivatives).
    """

    @staticmethod
    def forward(ctx, xw, h0, w_hh_t, b_hh=None, *, reverse=False):
        hs, saved = _gru_sequence(ctx.xp, xw, h0, w_hh_t, b_hh, _time_order(len(xw), reverse))
        ctx.reverse = reverse
        if any(ctx.needs_input_grad):
            ctx.save_inputs(*range(3 if b_hh is None else 4))
            ctx.save_output()
            ctx.save_constant(*saved)
        return hs

    @staticmethod
    def backward(ctx, g_hs):
        xp = ctx.xp
        xw, h0, w, *b = ctx.saved_inputs
        L, H = xw.shape[0], h0.shape[1]
        order = _time_order(L, ctx.reverse)
        if ctx.create_graph:  # recompute every step as recorded ops (second order)
            hs, (hw, rz, n) = _gru_sequence(xp, xw, h0, w, b[0] if b else None, order)
        else:
            hs, (hw, rz, n) = ctx.saved_output, ctx.saved_constants
        w_t = xp.swapaxes(w, 0, 1)
        dh = None
        dxw, dhw = [None] * L, [None] * L
        for j in range(L - 1, -1, -1):  # the steps in the reverse of the order they were taken
            k = order[j]
            h_prev = h0 if j == 0 else hs[order[j - 1]]
            g = g_hs[k] if dh is None else g_hs[k] + dh
            rz_k, n_k = rz[k], n[k]
            gz = g * rz_k[:, H:]
            dpre_n = (g - gz) * (1 - n_k * n_k)
            drz = xp.concatenate([dpre_n * hw[k][:, 2 * H:], g * (h_prev - n_k)],
                                 axis=1) * (rz_k - rz_k * rz_k)
            dxw[k] = xp.concatenate([drz, dpre_n], axis=1)
            dhw[k] = xp.concatenate([drz, dpre_n * rz_k[:, :H]], axis=1)
            dh = xp.matmul(dhw[k], w_t) + gz
        dxw, dhw = xp.stack(dxw), xp.stack(dhw)  # (L, B, 3H)
        needs = ctx.needs_input_grad
        grads = (dxw if needs[0] else None, dh if needs[1] else None,
                 _sequence_weight_grad(xp, h0, hs, dhw, ctx.reverse) if needs[2] else None)
        if len(needs) == 4:
            grads += (dhw.sum(axis=(0, 1)) if needs[3] else None,)
        return grads


def gru_sequence(xw, h0, w_hh_t, b_hh=None, *, reverse: bool = False) -> Tensor:
    """Every step of one GRU direction: ``xw`` (L, B, 3H) = ``x_t W_ih^T + b_ih`` for every
    step, ``h0`` (B, H), ``w_hh_t`` (H, 3H) = ``W_hh^T``, ``b_hh`` (3H,) or None. Returns ``hs``
    (L, B, H), every step's ``h`` in time order."""
    xw, h0, w_hh_t, *b = _check_sequence("gru_sequence", 3, xw, (h0,), w_hh_t, b_hh)
    return GRUSequenceOp.apply(xw, h0, w_hh_t, *b, reverse=bool(reverse))


def _elman_sequence(xp, xw, h0, w, nonlinearity: str, order):
    """Every Elman step in ``order`` from ``h0``: ``hs`` (L, B, H) in time order."""
    hs = [None] * len(order)
    h = h0
    for k in order:
        pre = _hidden_product(xp, h, w)
        pre += xw[k]
        if nonlinearity == "tanh":
            h = hs[k] = xp.tanh(pre, out=pre)
        else:
            h = hs[k] = xp.maximum(pre, 0, out=pre)
    return xp.stack(hs)


def _gru_sequence(xp, xw, h0, w, b, order) -> tuple:
    """Every GRU step in ``order`` from ``h0`` (on arrays, or recorded ops under create_graph):
    ``hs`` and what backward reads, ``(hw + b_hh, [r, z], n)``, each stacked in time order."""
    L = len(order)
    hs, hw, rz, n = [None] * L, [None] * L, [None] * L, [None] * L
    h = h0
    for k in order:
        hw[k], rz[k], n[k], _, h = _gru_gates(xp, xw[k], h, _hidden_product(xp, h, w), b)
        hs[k] = h
    return xp.stack(hs), (xp.stack(hw), xp.stack(rz), xp.stack(n))


def _sequence_weight_grad(xp, h0, hs, dpre, reverse: bool):
    """``sum_t h_{t-1}^T @ dpre_t`` (H, G) as one product: every step's previous state
    (``h0`` for the first step taken) against every step's ``dpre``, all in time order."""
    L, B, H = hs.shape
    first = xp.reshape(h0, (1, B, H))
    prev = [hs[1:], first] if reverse else [first, hs[:-1]]
    h_prev = xp.reshape(xp.concatenate(prev, axis=0), (L * B, H))
    return _weight_grad(xp, h_prev, xp.reshape(dpre, (L * B, dpre.shape[2])))


def _check_sequence(fn: str, gates: int, xw, states: tuple, w_hh_t, b_hh=None) -> list:
    """Coerce and check a sequence op's arguments; the tensors to apply the op to."""
    names = ("xw",) + (("h0",) if len(states) == 1 else ("h0", "c0")) + ("w_hh_t", "b_hh")
    tensors = [unary_operand(a) for a in (xw, *states, w_hh_t)] + \
        ([] if b_hh is None else [unary_operand(b_hh)])
    shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors))
    xw, w_hh_t = tensors[0], tensors[len(states) + 1]
    if xw.ndim != 3 or w_hh_t.ndim != 2:
        raise ValueError(f"{fn}: xw must be 3-D (L, B, G) and w_hh_t 2-D (H, G), got {shapes}")
    L, B, H = xw.shape[0], xw.shape[1], w_hh_t.shape[0]
    expected = [(L, B, gates * H)] + [(B, H)] * len(states) + [(H, gates * H), (gates * H,)]
    if L == 0 or any(tuple(t.shape) != e for t, e in zip(tensors, expected)):
        want = ", ".join(f"{n} {e}" for n, e, _ in zip(names, expected, tensors))
        raise ValueError(f"{fn}: expected {want} (L >= 1, B={B}, H={H}, {gates} gate(s)), "
                         f"got {shapes}")
    if len({t.dtype for t in tensors}) > 1 or xw.dtype.kind != "f":
        raise TypeError(f"{fn}: all tensors must share one floating dtype, got "
                        f"{', '.join(str(t.dtype) for t in tensors)}")
    return tensors
