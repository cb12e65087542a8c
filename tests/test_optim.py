"""tn.optim: update formulas (by hand and against an independent NumPy reference), properties,
parameter groups, state dicts, convergence, and exact agreement with torch.optim when installed."""

import itertools
import math
import pathlib
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn

try:
    import torch
except ImportError:  # CI has no torch: the comparisons are skipped
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

OPTIMIZERS = {
    "SGD": tn.optim.SGD, "Adam": tn.optim.Adam, "AdamW": tn.optim.AdamW,
    "RMSprop": tn.optim.RMSprop, "Adagrad": tn.optim.Adagrad,
}


def leaf(array, device, dtype=None):
    return tn.tensor(np.asarray(array, dtype=dtype), device=device, requires_grad=True)


def host(t):
    """A host copy of a tensor's values (parameters change in place, so copy)."""
    return np.array(t.detach().cpu().numpy(), copy=True)


def set_grads(params, grads, device):
    for p, g in zip(params, grads):
        p.grad = None if g is None else tn.tensor(g, device=device)


# --- an independent reference: each algorithm as its paper / PyTorch's docs write it ------------


def reference(name, opts):
    """A function (w, g, state) -> new w in float64 NumPy, keeping its own state dict."""
    lr = opts.get("lr", {"SGD": 1e-3, "Adam": 1e-3, "AdamW": 1e-3}.get(name, 1e-2))
    wd = opts.get("weight_decay", 1e-2 if name == "AdamW" else 0.0)
    maximize = opts.get("maximize", False)

    def sgd(w, g, s):
        mu, damp = opts.get("momentum", 0.0), opts.get("dampening", 0.0)
        g = g + wd * w
        if mu:
            s["b"] = g.copy() if "b" not in s else mu * s["b"] + (1 - damp) * g
            g = g + mu * s["b"] if opts.get("nesterov") else s["b"]
        return w - lr * g

    def adam(w, g, s):
        b1, b2 = opts.get("betas", (0.9, 0.999))
        eps = opts.get("eps", 1e-8)
        s["t"] = s.get("t", 0) + 1
        if name == "AdamW":
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        v = s["v"]
        if opts.get("amsgrad"):
            s["vmax"] = v = np.maximum(s.get("vmax", 0.0), v)
        m_hat = s["m"] / (1 - b1 ** s["t"])
        return w - lr * m_hat / (np.sqrt(v / (1 - b2 ** s["t"])) + eps)

    def rmsprop(w, g, s):
        alpha, eps, mu = opts.get("alpha", 0.99), opts.get("eps", 1e-8), opts.get("momentum", 0.0)
        g = g + wd * w
        s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
        v = s["v"]
        if opts.get("centered"):
            s["a"] = alpha * s.get("a", 0.0) + (1 - alpha) * g
            v = v - s["a"] ** 2
        step = g / (np.sqrt(v) + eps)
        if mu:
            s["b"] = mu * s.get("b", 0.0) + step
            step = s["b"]
        return w - lr * step

    def adagrad(w, g, s):
        eps, decay = opts.get("eps", 1e-10), opts.get("lr_decay", 0.0)
        s["t"] = s.get("t", 0) + 1
        g = g + wd * w
        s["sum"] = s.get("sum", opts.get("initial_accumulator_value", 0.0)) + g * g
        return w - lr / (1 + (s["t"] - 1) * decay) * g / (np.sqrt(s["sum"]) + eps)

    update = {"SGD": sgd, "Adam": adam, "AdamW": adam, "RMSprop": rmsprop,
              "Adagrad": adagrad}[name]
    return lambda w, g, s: update(w, -g if maximize else g, s)


# --- closed forms of the first steps, worked out by hand ------------------------------------------
#
# Problem: f(x) = sum(a * x^2) / 2 with a = (1, 4), x0 = (1, -1), so grad = a * x.

A = np.array([1.0, 4.0])
X0 = np.array([1.0, -1.0])


def run_quadratic(opt_cls, steps, device, **opts):
    x = leaf(X0, device)
    opt = opt_cls([x], **opts)
    out = []
    for _ in range(steps):
        x.grad = tn.tensor(A * host(x), device=device)
        opt.step()
        out.append(host(x))
    return out


def test_sgd_first_steps_by_hand(device):
    # Without momentum each step multiplies x by (1 - lr * a).
    xs = run_quadratic(tn.optim.SGD, 3, device, lr=0.1)
    for k, x in enumerate(xs, 1):
        np.testing.assert_allclose(x, (1 - 0.1 * A) ** k * X0, rtol=1e-12)


def test_sgd_momentum_first_steps_by_hand(device):
    lr, mu = 0.1, 0.9
    x1, x2 = run_quadratic(tn.optim.SGD, 2, device, lr=lr, momentum=mu)
    g0 = A * X0
    np.testing.assert_allclose(x1, X0 - lr * g0, rtol=1e-12)  # buffer = gradient, undampened
    b1 = mu * g0 + A * x1
    np.testing.assert_allclose(x2, x1 - lr * b1, rtol=1e-12)
    # Dampening is not applied on the first step, and is on the second.
    y1, y2 = run_quadratic(tn.optim.SGD, 2, device, lr=lr, momentum=mu, dampening=0.5)
    np.testing.assert_allclose(y1, X0 - lr * g0, rtol=1e-12)
    np.testing.assert_allclose(y2, y1 - lr * (mu * g0 + 0.5 * A * y1), rtol=1e-12)
    # Nesterov: the step is g + mu * buffer.
    (z1,) = run_quadratic(tn.optim.SGD, 1, device, lr=lr, momentum=mu, nesterov=True)
    np.testing.assert_allclose(z1, X0 - lr * (1 + mu) * g0, rtol=1e-12)


def test_adam_first_steps_by_hand(device):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    x1, x2 = run_quadratic(tn.optim.Adam, 2, device, lr=lr)
    g0 = A * X0
    # Step 1: the bias-corrected moments are g and g^2, so the step is lr * g / (|g| + eps).
    np.testing.assert_allclose(x1, X0 - lr * g0 / (np.abs(g0) + eps), rtol=1e-12)
    g1 = A * x1
    m = (b1 * (1 - b1) * g0 + (1 - b1) * g1) / (1 - b1**2)
    v = (b2 * (1 - b2) * g0**2 + (1 - b2) * g1**2) / (1 - b2**2)
    np.testing.assert_allclose(x2, x1 - lr * m / (np.sqrt(v) + eps), rtol=1e-12)


def test_adamw_first_step_by_hand(device):
    lr, wd, eps = 0.01, 0.1, 1e-8
    (x1,) = run_quadratic(tn.optim.AdamW, 1, device, lr=lr, weight_decay=wd)
    g0 = A * X0  # decoupled: the decay shrinks x and does not enter the moments
    np.testing.assert_allclose(x1, X0 * (1 - lr * wd) - lr * g0 / (np.abs(g0) + eps), rtol=1e-12)
    (y1,) = run_quadratic(tn.optim.Adam, 1, device, lr=lr, weight_decay=wd)
    gy = g0 + wd * X0  # coupled: the decay is part of the gradient
    np.testing.assert_allclose(y1, X0 - lr * gy / (np.abs(gy) + eps), rtol=1e-12)


def test_amsgrad_uses_the_largest_second_moment(device):
    # Gradients 10 then 0.1: AMSGrad keeps the second moment of the large one.
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    x = leaf([0.0], device)
    opt = tn.optim.Adam([x], lr=lr, amsgrad=True)
    for g in (10.0, 0.1):
        before = host(x)
        x.grad = tn.tensor([g], device=device)
        opt.step()
    m = (b1 * (1 - b1) * 10.0 + (1 - b1) * 0.1) / (1 - b1**2)
    v_max = (1 - b2) * 100.0  # the step-1 second moment, larger than the step-2 one
    expected = before - lr * m / (np.sqrt(v_max / (1 - b2**2)) + eps)
    np.testing.assert_allclose(host(x), expected, rtol=1e-6)


def test_rmsprop_first_step_by_hand(device):
    lr, alpha, eps = 0.01, 0.9, 1e-8
    (x1,) = run_quadratic(tn.optim.RMSprop, 1, device, lr=lr, alpha=alpha)
    g0 = A * X0
    np.testing.assert_allclose(x1, X0 - lr * g0 / (np.sqrt(1 - alpha) * np.abs(g0) + eps),
                               rtol=1e-12)
    # Centered: v - mean^2 = (1 - alpha) g^2 - (1 - alpha)^2 g^2 = alpha (1 - alpha) g^2.
    (c1,) = run_quadratic(tn.optim.RMSprop, 1, device, lr=lr, alpha=alpha, centered=True)
    np.testing.assert_allclose(
        c1, X0 - lr * g0 / (np.sqrt(alpha * (1 - alpha)) * np.abs(g0) + eps), rtol=1e-12)


def test_adagrad_first_steps_by_hand(device):
    lr, decay, init, eps = 0.5, 0.1, 0.25, 1e-10
    x1, x2 = run_quadratic(tn.optim.Adagrad, 2, device, lr=lr, lr_decay=decay,
                           initial_accumulator_value=init)
    g0 = A * X0
    np.testing.assert_allclose(x1, X0 - lr * g0 / (np.sqrt(init + g0**2) + eps), rtol=1e-12)
    g1 = A * x1
    expected = x1 - lr / (1 + decay) * g1 / (np.sqrt(init + g0**2 + g1**2) + eps)
    np.testing.assert_allclose(x2, expected, rtol=1e-12)


OPTION_CASES = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, maximize=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3)),
]


@pytest.mark.parametrize("name, opts", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_three_steps_match_the_reference(name, opts, device):
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((2, 3))
    grads = [rng.standard_normal((2, 3)) for _ in range(3)]
    p = leaf(w0, device)
    opt = OPTIMIZERS[name]([p], **opts)
    ref, state, w = reference(name, opts), {}, w0
    for g in grads:
        p.grad = tn.tensor(g, device=device)
        opt.step()
        w = ref(w, g, state)
        np.testing.assert_allclose(host(p), w, rtol=1e-10, atol=1e-12)


# --- properties -----------------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple)


def random_options(name, draw):
    """A draw of valid hyper-parameters for optimizer ``name``."""
    lr = draw(st.floats(1e-3, 0.5))
    if name == "SGD":
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
        nesterov = momentum > 0 and draw(st.booleans())
        dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, 0.3]))
        return dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov)
    if name in ("Adam", "AdamW"):
        return dict(lr=lr, betas=(draw(st.floats(0.0, 0.99)), draw(st.floats(0.5, 0.9999))),
                    amsgrad=draw(st.booleans()))
    if name == "RMSprop":
        return dict(lr=lr, alpha=draw(st.floats(0.5, 0.999)),
                    momentum=draw(st.sampled_from([0.0, 0.7])), centered=draw(st.booleans()))
    return dict(lr=lr, lr_decay=draw(st.sampled_from([0.0, 0.1])),
                initial_accumulator_value=draw(st.sampled_from([0.0, 0.5])))


@given(data=st.data(), name=st.sampled_from(sorted(OPTIMIZERS)), shape=shapes)
def test_zero_gradient_without_weight_decay_leaves_parameters_unchanged(device, data, name, shape):
    opts = random_options(name, data.draw)
    opts["weight_decay"] = 0.0
    w0 = data.draw(st.lists(st.floats(-10, 10), min_size=math.prod(shape),
                            max_size=math.prod(shape)))
    p = leaf(np.reshape(w0, shape), device, np.float32)
    opt = OPTIMIZERS[name]([p], **opts)
    for _ in range(3):
        p.grad = tn.zeros(shape, device=device)
        opt.step()
    np.testing.assert_array_equal(host(p), np.reshape(w0, shape).astype(np.float32))


@given(lr=st.floats(1e-4, 10), shape=shapes, seed=st.integers(0, 2**16))
def test_sgd_without_momentum_is_p_minus_lr_g(device, lr, shape, seed):
    rng = np.random.default_rng(seed)
    w, g = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape)
    p = leaf(w, device)
    p.grad = tn.tensor(g.astype(np.float32), device=device)
    tn.optim.SGD([p], lr=lr).step()
    np.testing.assert_allclose(host(p), w - lr * g.astype(np.float32), rtol=1e-6, atol=1e-6)


def trajectory(name, opts, params, opt, grads, device):
    """Apply the gradient list step by step; the parameters after each step."""
    out = []
    for gs in grads:
        set_grads(params, gs, device)
        opt.step()
        out.append([host(p) for p in params])
    return out


@given(data=st.data(), name=st.sampled_from(sorted(OPTIMIZERS)), split=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_state_dict_round_trip_mid_run_continues_identically(device, data, name, split, seed):
    opts = random_options(name, data.draw)
    opts["weight_decay"] = data.draw(st.sampled_from([0.0, 0.01]))
    rng = np.random.default_rng(seed)
    shapes = [(2, 3), (3,), (4,)]
    w0 = [rng.standard_normal(s) for s in shapes]
    # The last parameter has no gradient on some steps: its step count lags the others'.
    grads = [[rng.standard_normal(s) if i < 2 or k % 2 == 0 else None
              for i, s in enumerate(shapes)] for k in range(split + 3)]
    params = [leaf(w, device) for w in w0]
    opt = OPTIMIZERS[name]([{"params": params[:2]}, {"params": params[2:], "lr": 0.01}], **opts)
    trajectory(name, opts, params, opt, grads[:split], device)
    saved = opt.state_dict()
    saved_params = [host(p) for p in params]
    expected = trajectory(name, opts, params, opt, grads[split:], device)  # uninterrupted run

    resumed = [leaf(w, device) for w in saved_params]
    opt2 = OPTIMIZERS[name]([{"params": resumed[:2]}, {"params": resumed[2:]}], lr=0.5)
    opt2.load_state_dict(saved)
    got = trajectory(name, opts, resumed, opt2, grads[split:], device)
    for step_expected, step_got in zip(expected, got):
        for e, g in zip(step_expected, step_got):
            np.testing.assert_array_equal(g, e)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


class flat_limit:
    """Set tinynet.optim.flat.FLAT_MAX_MEAN_SIZE for a block (0: the per-parameter loop only)."""

    def __init__(self, limit):
        self.limit = limit

    def __enter__(self):
        self.saved = tn.optim.flat.FLAT_MAX_MEAN_SIZE
        tn.optim.flat.FLAT_MAX_MEAN_SIZE = self.limit

    def __exit__(self, *exc):
        tn.optim.flat.FLAT_MAX_MEAN_SIZE = self.saved


@given(data=st.data(), name=st.sampled_from(sorted(OPTIMIZERS)), seed=st.integers(0, 2**16),
       shapes=st.lists(shapes, min_size=2, max_size=4))
def test_multi_tensor_step_is_bitwise_the_per_parameter_loop(device, data, name, seed, shapes):
    # Small tensors take the flat path (tinynet/optim/flat.py) once their state exists; a step
    # where one parameter has no gradient falls back to the loop, and the flat path resumes when
    # the steps agree again. Parameters and state must equal the loop's bit for bit.
    opts = random_options(name, data.draw)
    opts["weight_decay"] = data.draw(st.sampled_from([0.0, 0.05]))
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[None if (i == 0 and k == 3) else rng.standard_normal(s).astype(np.float32)
              for i, s in enumerate(shapes)] for k in range(6)]
    runs = []
    for limit in (tn.optim.flat.FLAT_MAX_MEAN_SIZE, 0):
        with flat_limit(limit):
            params = [leaf(w, device) for w in w0]
            opt = OPTIMIZERS[name](params, **opts)
            trajectory(name, opts, params, opt, grads, device)
            runs.append((params, opt))
    (flat_params, flat_opt), (loop_params, loop_opt) = runs
    assert not loop_opt._flat_layouts
    if name != "SGD" or opts["momentum"]:  # plain SGD keeps no state: one op, nothing to gain
        assert flat_opt._flat_layouts  # the flat path really ran
    for p, q in zip(flat_params, loop_params):
        np.testing.assert_array_equal(host(p), host(q))
        assert set(flat_opt.state.get(p, {})) == set(loop_opt.state.get(q, {}))
        for key, value in flat_opt.state.get(p, {}).items():
            if isinstance(value, tn.Tensor):
                assert value.shape == p.shape
                np.testing.assert_array_equal(host(value), host(loop_opt.state[q][key]))
            else:
                assert value == loop_opt.state[q][key]


@given(data=st.data(), name=st.sampled_from(sorted(OPTIMIZERS)), seed=st.integers(0, 2**16))
def test_parameters_without_gradient_are_untouched(device, data, name, seed):
    opts = random_options(name, data.draw)
    rng = np.random.default_rng(seed)
    w = [rng.standard_normal(3), rng.standard_normal(3)]
    params = [leaf(a, device) for a in w]
    opt = OPTIMIZERS[name](params, weight_decay=0.1, **opts)  # decay must not touch it either
    for _ in range(3):
        params[0].grad = tn.tensor(rng.standard_normal(3), device=device)
        opt.step()
    np.testing.assert_array_equal(host(params[1]), w[1])
    assert params[1].grad is None
    # No state is made for it (Adagrad creates its accumulators up front, and leaves them).
    state = opt.state.get(params[1], {})
    assert state.get("step", 0) == 0 and not {"exp_avg", "square_avg", "momentum_buffer"} & set(
        state)


@given(lrs=st.lists(st.floats(1e-3, 1.0), min_size=2, max_size=3), seed=st.integers(0, 2**16))
def test_param_groups_use_their_own_learning_rate(device, lrs, seed):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(4) for _ in lrs]
    gs = [rng.standard_normal(4) for _ in lrs]
    params = [leaf(w, device) for w in ws]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    opt = tn.optim.SGD(groups, lr=123.0)
    set_grads(params, gs, device)
    opt.step()
    for p, w, g, lr in zip(params, ws, gs, lrs):
        np.testing.assert_allclose(host(p), w - lr * g, rtol=1e-12)
    # Adam's first step moves each coordinate by its group's lr times g / (|g| + eps).
    params = [leaf(w, device) for w in ws]
    opt = tn.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)])
    set_grads(params, gs, device)
    opt.step()
    for p, w, g, lr in zip(params, ws, gs, lrs):
        np.testing.assert_allclose(host(p), w - lr * g / (np.abs(g) + 1e-8), rtol=1e-12,
                                   atol=1e-14)


@pytest.mark.parametrize("name, opts", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_maximize_is_minimizing_the_negated_gradient(name, opts, device):
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(4)]
    a, b = leaf(w0, device), leaf(w0, device)
    up = OPTIMIZERS[name]([a], **{**opts, "maximize": True})
    down = OPTIMIZERS[name]([b], **{**opts, "maximize": False})
    for g in grads:
        a.grad, b.grad = tn.tensor(g, device=device), tn.tensor(-g, device=device)
        up.step()
        down.step()
    np.testing.assert_array_equal(host(a), host(b))


# --- convergence ----------------------------------------------------------------------------------

CONVERGENCE = [
    ("SGD", dict(lr=0.05), 400),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True), 300),
    ("Adam", dict(lr=0.05), 600),
    ("AdamW", dict(lr=0.05, weight_decay=0.0), 600),
    ("RMSprop", dict(lr=0.01), 600),
    ("Adagrad", dict(lr=0.5), 600),
]


@pytest.mark.parametrize("name, opts, steps", CONVERGENCE, ids=[c[0] for c in CONVERGENCE])
def test_converges_on_a_convex_quadratic(name, opts, steps, device):
    # f(x) = x^T A x / 2 - b^T x with A symmetric positive definite: minimum at A x = b.
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 4))
    a_np, b_np = q.T @ q / 4 + np.eye(4), rng.standard_normal((4, 1))
    a, b = tn.tensor(a_np, device=device), tn.tensor(b_np, device=device)
    x = tn.zeros((4, 1), dtype=tn.float64, device=device, requires_grad=True)
    opt = OPTIMIZERS[name]([x], **opts)
    if name in ("Adam", "AdamW", "RMSprop"):  # constant-rate adaptive steps hover: anneal them
        sched = tn.optim.lr_scheduler.ExponentialLR(opt, gamma=0.99)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (x.T @ a @ x).sum() - (b.T @ x).sum()
        loss.backward()
        opt.step()
        if name in ("Adam", "AdamW", "RMSprop"):
            sched.step()
    np.testing.assert_allclose(host(x), np.linalg.solve(a_np, b_np), atol=1e-3)


# --- groups, zero_grad, step mechanics ------------------------------------------------------------


def test_add_param_group_refuses_a_parameter_already_present(device):
    p, q = leaf([1.0], device), leaf([2.0], device)
    opt = tn.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [q, p]})
    with pytest.raises(ValueError, match="twice"):
        opt.add_param_group({"params": [q, q]})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": q, "lr": 0.5, "momentum": 0.9})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    assert opt.param_groups[1]["dampening"] == 0.0  # the missing ones take the defaults
    q.grad = tn.tensor([1.0], device=device)
    opt.step()
    np.testing.assert_allclose(host(q), [1.5])


def test_adagrad_steps_a_group_added_later(device):
    p, q = leaf([1.0], device), leaf([1.0], device)
    opt = tn.optim.Adagrad([p], lr=0.1)
    opt.add_param_group({"params": [q]})
    q.grad = tn.tensor([2.0], device=device)
    opt.step()
    np.testing.assert_allclose(host(q), [1.0 - 0.1 * 2.0 / (2.0 + 1e-10)])


def test_bad_parameter_lists_are_refused(device):
    p = leaf([1.0], device)
    with pytest.raises(ValueError, match="empty"):
        tn.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        tn.optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="set"):
        tn.optim.SGD({p}, lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        tn.optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        tn.optim.SGD([p * 2], lr=0.1)


@pytest.mark.parametrize("make", [
    lambda p: tn.optim.SGD([p], lr=-1.0),
    lambda p: tn.optim.SGD([p], lr=0.1, momentum=-0.1),
    lambda p: tn.optim.SGD([p], lr=0.1, nesterov=True),
    lambda p: tn.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda p: tn.optim.SGD([{"params": [p], "weight_decay": -1.0}], lr=0.1),
    lambda p: tn.optim.Adam([p], betas=(1.0, 0.999)),
    lambda p: tn.optim.Adam([p], betas=(0.9, -0.1)),
    lambda p: tn.optim.Adam([p], eps=-1e-8),
    lambda p: tn.optim.AdamW([p], weight_decay=-0.1),
    lambda p: tn.optim.RMSprop([p], alpha=-0.5),
    lambda p: tn.optim.Adagrad([p], lr_decay=-0.1),
    lambda p: tn.optim.Adagrad([p], initial_accumulator_value=-1.0),
])
def test_invalid_hyper_parameters_raise(make):
    with pytest.raises(ValueError, match="Invalid|Nesterov"):
        make(leaf([1.0], "cpu"))


def test_defaults_are_pytorchs():
    p = leaf([1.0], "cpu")
    assert tn.optim.SGD([p]).defaults["lr"] == 1e-3
    adam = tn.optim.Adam([p]).defaults
    assert (adam["lr"], adam["betas"], adam["eps"], adam["weight_decay"]) == (
        1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert tn.optim.AdamW([p]).defaults["weight_decay"] == 1e-2
    rms = tn.optim.RMSprop([p]).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"]) == (1e-2, 0.99, 1e-8)
    ada = tn.optim.Adagrad([p]).defaults
    assert (ada["lr"], ada["eps"], ada["initial_accumulator_value"]) == (1e-2, 1e-10, 0.0)


class _RunningMax(tn.optim.Optimizer):
    """A minimal optimizer written as docs/optim.md says: ``_state_keys``, ``_update`` and, for
    a state that does not start at zero, ``_slot_initial_value``. Its update records the state it
    was handed, so the test sees what the base class created before the first update."""

    def __init__(self, params, start=0.0):
        super().__init__(params, {"lr": 0.5, "start": start})
        self.seen = []

    def _state_keys(self, group):
        return ("peak", "total")

    def _slot_initial_value(self, key, group):
        return group["start"] if key == "peak" else 0.0

    def _update(self, xp, w, g, arrays, step, group):
        self.seen.append({k: xp.asarray(v).copy() for k, v in arrays.items()})
        xp.maximum(arrays["peak"], g, out=arrays["peak"])
        arrays["total"] += g
        w -= group["lr"] * arrays["peak"]


@pytest.mark.parametrize("start", [0.0, 2.5])
def test_state_arrays_are_created_once_by_the_base_class_before_the_first_update(device, start):
    p = leaf([1.0, -1.0, 3.0], device)
    opt = _RunningMax([p], start=start)
    for grad in ([1.0, 4.0, -2.0], [3.0, 0.0, 1.0]):
        p.grad = tn.tensor(grad, dtype=p.dtype, device=device)
        opt.step()
    first = opt.seen[0]
    assert set(first) == {"peak", "total"}
    np.testing.assert_array_equal(host(tn.tensor(first["peak"])), [start] * 3)
    np.testing.assert_array_equal(host(tn.tensor(first["total"])), [0.0] * 3)
    state = opt.state[p]
    assert state["step"] == 2 and state["peak"].device == device
    np.testing.assert_array_equal(host(state["peak"]), np.maximum([start] * 3, [3.0, 4.0, 1.0]))
    np.testing.assert_array_equal(host(state["total"]), [4.0, 4.0, -1.0])


def test_zero_grad(device):
    p = leaf([1.0, 2.0], device)
    opt = tn.optim.SGD([p], lr=0.1)
    p.grad = tn.tensor([3.0, 4.0], device=device)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad
    np.testing.assert_array_equal(host(p.grad), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_step_records_no_graph_and_keeps_arrays(device):
    p = leaf([1.0, 2.0], device)
    arr = p.data
    opt = tn.optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()  # grad mode is on here: the step must still not record or refuse
    assert p.is_leaf and p.grad_fn is None and p.requires_grad
    assert p.data is arr  # in place: views and module state dicts keep seeing the values
    assert all(v.grad_fn is None for v in opt.state[p].values() if isinstance(v, tn.Tensor))


def test_closure_is_evaluated_with_gradients_enabled(device):
    p = leaf([3.0], device)
    opt = tn.optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tn.no_grad():
        loss = opt.step(closure)
    assert float(loss) == 9.0
    np.testing.assert_allclose(host(p), [3.0 - 0.1 * 6.0])


def test_works_with_module_parameters_and_keeps_dtype(device):
    class Affine(tn.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = tn.nn.Parameter(tn.ones((2, 2), dtype=tn.float64, device=device))
            self.b = tn.nn.Parameter(tn.zeros(2, device=device))

        def forward(self, x):
            return x @ self.w + self.b

    model = Affine()
    opt = tn.optim.Adam(model.parameters(), lr=0.1)
    x = tn.ones((3, 2), dtype=tn.float64, device=device)
    model(x).sum().backward()
    opt.step()
    assert model.w.dtype == tn.float64 and model.b.dtype == tn.float32
    assert opt.state[model.b]["exp_avg"].dtype == tn.float32
    assert opt.state[model.w]["exp_avg"].device == device
    np.testing.assert_allclose(host(model.w), np.full((2, 2), 0.9), rtol=1e-6)
    assert "Adam (" in repr(opt) and "Parameter Group 0" in repr(opt) and "lr: 0.1" in repr(opt)


# --- state dicts ----------------------------------------------------------------------------------

STATE_KEYS = [
    ("SGD", dict(lr=0.1), set()),
    ("SGD", dict(lr=0.1, momentum=0.9), {"momentum_buffer"}),
    ("Adam", {}, {"step", "exp_avg", "exp_avg_sq"}),
    ("Adam", dict(amsgrad=True), {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
    ("AdamW", {}, {"step", "exp_avg", "exp_avg_sq"}),
    ("RMSprop", {}, {"step", "square_avg"}),
    ("RMSprop", dict(momentum=0.9, centered=True),
     {"step", "square_avg", "momentum_buffer", "grad_avg"}),
    ("Adagrad", {}, {"step", "sum"}),
]


@pytest.mark.parametrize("name, opts, keys", STATE_KEYS)
def test_state_dict_layout_is_pytorchs(name, opts, keys, device):
    params = [leaf(np.ones(2), device), leaf(np.ones(3), device), leaf(np.ones(1), device)]
    opt = OPTIMIZERS[name]([{"params": params[:2]}, {"params": params[2:], "lr": 0.2}], **opts)
    for _ in range(2):  # the second step runs on flat arrays (small tensors, state made)
        set_grads(params, [np.ones(2), np.ones(3), np.ones(1)], device)
        opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.2
    assert set(sd["param_groups"][0]) == set(opt.defaults) | {"params"}
    if keys:
        assert sorted(sd["state"]) == [0, 1, 2]
        for i, p in enumerate(params):
            assert set(sd["state"][i]) == keys
            if "step" in keys:
                assert sd["state"][i]["step"] == 2
            for k in keys - {"step"}:
                assert sd["state"][i][k].shape == p.shape
    else:
        assert sd["state"] == {}


def test_state_dict_is_a_snapshot(device):
    p = leaf(np.ones(3), device)
    opt = tn.optim.Adam([p], lr=0.1)
    p.grad = tn.ones(3, device=device)
    opt.step()
    sd = opt.state_dict()
    before = host(sd["state"][0]["exp_avg"])
    opt.step()
    opt.param_groups[0]["lr"] = 7.0
    np.testing.assert_array_equal(host(sd["state"][0]["exp_avg"]), before)
    assert sd["state"][0]["step"] == 1 and sd["param_groups"][0]["lr"] == 0.1


def test_load_state_dict_moves_state_to_the_parameters_device(device):
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(4), [rng.standard_normal(4) for _ in range(4)]
    p = leaf(w0, "cpu")
    opt = tn.optim.RMSprop([p], lr=0.01, momentum=0.5, centered=True)
    for g in grads[:2]:
        p.grad = tn.tensor(g)
        opt.step()
    sd = opt.state_dict()
    q = leaf(host(p), device)
    opt_q = tn.optim.RMSprop([q])
    opt_q.load_state_dict(sd)
    assert opt_q.state[q]["square_avg"].device == device
    for g in grads[2:]:
        p.grad, q.grad = tn.tensor(g), tn.tensor(g, device=device)
        opt.step()
        opt_q.step()
    np.testing.assert_array_equal(host(q), host(p))


def test_load_state_dict_reports_what_does_not_match(device):
    params = [leaf(np.ones(2), device), leaf(np.ones(3), device)]
    opt = tn.optim.Adam(params, lr=0.1)
    set_grads(params, [np.ones(2), np.ones(3)], device)
    opt.step()
    sd = opt.state_dict()

    two_groups = tn.optim.Adam([{"params": params[:1]}, {"params": params[1:]}])
    with pytest.raises(ValueError, match="1 parameter group.*has 2"):
        two_groups.load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0: the loaded state dict has 2 parameters, this "
                                         "optimizer's group has 1"):
        tn.optim.Adam(params[:1]).load_state_dict(sd)
    swapped = [leaf(np.ones(3), device), leaf(np.ones(2), device)]
    target = tn.optim.Adam(swapped, lr=0.5)
    with pytest.raises(ValueError, match=r"parameter 0, state 'exp_avg': shape \(2,\) in the "
                                         r"state dict, the parameter has shape \(3,\)"):
        target.load_state_dict(sd)
    assert target.state == {} and target.param_groups[0]["lr"] == 0.5  # nothing changed
    with pytest.raises(ValueError, match="no 'momentum'.*another optimizer than SGD"):
        tn.optim.SGD(params, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# --- torch.optim, exactly ---------------------------------------------------------------------


def _torch_grid():
    cases = []
    for mu, damp, nesterov, wd, maximize in itertools.product(
            [0.0, 0.9], [0.0, 0.5], [False, True], [0.0, 0.1], [False, True]):
        if nesterov and (mu == 0 or damp != 0):
            continue
        cases.append(("SGD", dict(lr=0.1, momentum=mu, dampening=damp, nesterov=nesterov,
                                  weight_decay=wd, maximize=maximize)))
    for name in ("Adam", "AdamW"):
        for betas, wd, amsgrad, maximize in itertools.product(
                [(0.9, 0.999), (0.5, 0.9)], [0.0, 0.1], [False, True], [False, True]):
            cases.append((name, dict(lr=0.05, betas=betas, weight_decay=wd, amsgrad=amsgrad,
                                     maximize=maximize)))
    for alpha, mu, centered, wd in itertools.product([0.99, 0.8], [0.0, 0.6], [False, True],
                                                     [0.0, 0.1]):
        cases.append(("RMSprop", dict(lr=0.01, alpha=alpha, momentum=mu, centered=centered,
                                      weight_decay=wd)))
    for decay, wd, init, maximize in itertools.product([0.0, 0.1], [0.0, 0.1], [0.0, 0.5],
                                                       [False, True]):
        cases.append(("Adagrad", dict(lr=0.1, lr_decay=decay, weight_decay=wd,
                                      initial_accumulator_value=init, maximize=maximize)))
    return cases


def two_groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.03}]


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch_optim_for_every_option_combination(device, dtype):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 2)]
    w0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    # The same gradients go to both; the second parameter sometimes has none (both skip it).
    grads = [[None if (i == 1 and k % 3 == 0) else rng.standard_normal(s).astype(dtype)
              for i, s in enumerate(shapes)] for k in range(20)]
    # float64 agrees to ~1e-15; float32 to its rounding (PyTorch fuses some multiply-adds).
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    for name, opts in _torch_grid():
        ours = [leaf(w, device) for w in w0]
        theirs = [torch.tensor(w, requires_grad=True) for w in w0]
        opt = OPTIMIZERS[name](two_groups(ours), **opts)
        topt = getattr(torch.optim, name)(two_groups(theirs), **opts)
        for step_grads in grads:
            set_grads(ours, step_grads, device)
            for t, g in zip(theirs, step_grads):
                t.grad = None if g is None else torch.tensor(g)
            opt.step()
            topt.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(host(p), t.detach().numpy(), **tol,
                                       err_msg=f"{name} {opts}")
        ours_sd, theirs_sd = opt.state_dict(), topt.state_dict()
        assert sorted(ours_sd["state"]) == sorted(theirs_sd["state"]), name
        for i, state in theirs_sd["state"].items():
            assert set(ours_sd["state"][i]) == set(state), f"{name} {opts}"
            for key, value in state.items():
                ours_value = ours_sd["state"][i][key]
                ours_value = ours_value if key == "step" else host(ours_value)
                np.testing.assert_allclose(ours_value, value.detach().numpy(), **tol,
                                           err_msg=f"{name} {opts} state {key}")


# --- docs/optim.md: every ```python block runs (and its asserts hold) ---------------------------

OPTIM_DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "optim.md"


def _doc_snippets() -> list:
    """Each ```python block, padded with blank lines so tracebacks give its line in the file."""
    text = OPTIM_DOC.read_text()
    return [pytest.param("\n" * text.count("\n", 0, m.start(1)) + m.group(1), id=f"block{i}")
            for i, m in enumerate(re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL))]


def test_docs_optim_has_snippets():
    assert len(_doc_snippets()) >= 5


@pytest.mark.parametrize("snippet", _doc_snippets())
def test_docs_optim_snippet_runs(snippet):
    exec(compile(snippet, str(OPTIM_DOC), "exec"), {"__name__": "docs_optim"})  # noqa: S102
