"""The optimizers ported from torch.optim (Adadelta, Adamax, NAdam, RAdam, ASGD): every update
against an independent float64 NumPy reference written from the papers' equations in PyTorch's
form, state-dict round trips, the multi-tensor step, PyTorch's checks, flags and signatures, and
step-by-step agreement with torch.optim for every option combination when PyTorch is installed."""

import inspect
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn

try:
    import torch
except ImportError:  # CI has no torch: the comparisons are skipped
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

NAMES = ("Adadelta", "Adamax", "NAdam", "RAdam", "ASGD")
SHAPES = [(2, 3), (3,), (4,)]


def optimizer(name):
    return getattr(tn.optim, name)


def leaf(array, device):
    return tn.tensor(np.asarray(array), device=device, requires_grad=True)


def host(t):
    return np.array(t.detach().cpu().numpy(), copy=True)


def run(params, opt, grads, device):
    """Apply the gradient lists step by step (None: that parameter has no gradient)."""
    out = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else tn.tensor(g, device=device)
        opt.step()
        out.append([host(p) for p in params])
    return out


def gradients(rng, steps, shapes=SHAPES):
    """Random gradients; the last parameter has none on odd steps, so its step count lags."""
    last = len(shapes) - 1
    return [[None if (i == last and k % 2) else rng.standard_normal(s)
             for i, s in enumerate(shapes)] for k in range(steps)]


# --- an independent reference: each update as PyTorch's documentation writes it ---------------


def reference(name, opts):
    """``update(w, g, state) -> new w`` in float64 NumPy, keeping its own per-parameter state."""
    lr = opts.get("lr", {"Adadelta": 1.0, "Adamax": 2e-3, "NAdam": 2e-3, "RAdam": 1e-3,
                         "ASGD": 1e-2}[name])
    wd, maximize = opts.get("weight_decay", 0.0), opts.get("maximize", False)
    beta1, beta2 = opts.get("betas", (0.9, 0.999))
    eps = opts.get("eps", 1e-6 if name == "Adadelta" else 1e-8)
    decoupled = opts.get("decoupled_weight_decay", False)

    def grad(w, g):
        g = -g if maximize else g
        if wd and decoupled:
            return w * (1 - lr * wd), g
        return w, g + wd * w

    def adadelta(w, g, s):
        rho = opts.get("rho", 0.9)
        w, g = grad(w, g)
        s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g**2
        delta = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(s["v"] + eps) * g
        s["u"] = rho * s.get("u", 0.0) + (1 - rho) * delta**2
        return w - lr * delta

    def adamax(w, g, s):
        w, g = grad(w, g)
        t = s["t"] = s.get("t", 0) + 1
        s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * g
        s["u"] = np.maximum(beta2 * s.get("u", 0.0), np.abs(g) + eps)
        return w - lr / (1 - beta1**t) * s["m"] / s["u"]

    def moments(g, s):
        s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * g
        s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * g**2
        return s["m"], s["v"]

    def nadam(w, g, s):
        psi = opts.get("momentum_decay", 4e-3)
        w, g = grad(w, g)
        t = s["t"] = s.get("t", 0) + 1
        mu = [beta1 * (1 - 0.5 * 0.96 ** (i * psi)) for i in range(1, t + 2)]
        product = math.prod(mu[:t])
        m, v = moments(g, s)
        d = np.sqrt(v / (1 - beta2**t)) + eps
        return (w - lr * (1 - mu[t - 1]) / (1 - product) * g / d
                - lr * mu[t] / (1 - product * mu[t]) * m / d)

    def radam(w, g, s):
        w, g = grad(w, g)
        t = s["t"] = s.get("t", 0) + 1
        m, v = moments(g, s)
        m_hat = m / (1 - beta1**t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t <= 5:
            return w - lr * m_hat
        r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        return w - lr * m_hat * math.sqrt(1 - beta2**t) / (np.sqrt(v) + eps) * r

    def asgd(w, g, s):
        lambd, alpha, t0 = opts.get("lambd", 1e-4), opts.get("alpha", 0.75), opts.get("t0", 1e6)
        w, g = grad(w, g)
        t = s["t"] = s.get("t", 0) + 1
        eta = lr / (1 + lambd * lr * (t - 1)) ** alpha
        w = w * (1 - lambd * eta) - eta * g
        mu = 1 / max(1, t - 1 - t0)
        s["ax"] = w.copy() if mu == 1 else s["ax"] + mu * (w - s["ax"])
        return w

    return {"Adadelta": adadelta, "Adamax": adamax, "NAdam": nadam, "RAdam": radam,
            "ASGD": asgd}[name]


def random_options(name, draw):
    opts = {"lr": draw(st.sampled_from([0.5, 0.05])), "maximize": draw(st.booleans()),
            "weight_decay": draw(st.sampled_from([0.0, 0.1]))}
    if name == "Adadelta":
        opts["rho"] = draw(st.sampled_from([0.9, 0.5]))
    elif name == "ASGD":
        opts.update(lambd=draw(st.sampled_from([1e-4, 0.05])), t0=draw(st.sampled_from([1e6, 2])),
                    alpha=draw(st.sampled_from([0.75, 0.5])))
    else:
        opts["betas"] = draw(st.sampled_from([(0.9, 0.999), (0.5, 0.9)]))
        if name in ("NAdam", "RAdam"):
            opts["decoupled_weight_decay"] = draw(st.booleans())
        if name == "NAdam":
            opts["momentum_decay"] = draw(st.sampled_from([4e-3, 0.2]))
    return opts


@settings(max_examples=max(5, settings().max_examples // 3))
@given(data=st.data(), name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_updates_match_the_reference(device, data, name, seed):
    opts = random_options(name, data.draw)
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s) for s in SHAPES]
    grads = gradients(rng, 12)  # RAdam with betas (0.5, 0.9) rectifies from step 6 on
    params = [leaf(w, device) for w in w0]
    opt = optimizer(name)(params, **opts)
    got = run(params, opt, grads, device)
    update = reference(name, opts)
    weights, states = [w.copy() for w in w0], [{} for _ in w0]
    for step_grads, step_got in zip(grads, got):
        for i, g in enumerate(step_grads):
            if g is not None:
                weights[i] = update(weights[i], g, states[i])
            np.testing.assert_allclose(step_got[i], weights[i], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {opts}")
    if name == "ASGD":  # the average the method is named for
        for p, s in zip(params, states):
            np.testing.assert_allclose(host(opt.state[p]["ax"]), s["ax"], rtol=1e-10, atol=1e-12)


def test_adadelta_first_step_by_hand(device):
    # v = 0.1 g^2, d = sqrt(eps) / sqrt(v + eps) * g, p <- p - lr d
    p = leaf([1.0, -2.0], device)
    opt = tn.optim.Adadelta([p], lr=1.0)
    p.grad = tn.tensor([0.5, -1.0], dtype=tn.float64, device=device)
    opt.step()
    v = 0.1 * np.array([0.25, 1.0])
    d = math.sqrt(1e-6) / np.sqrt(v + 1e-6) * np.array([0.5, -1.0])
    np.testing.assert_allclose(host(p), np.array([1.0, -2.0]) - d, rtol=1e-12)
    np.testing.assert_allclose(host(opt.state[p]["acc_delta"]), 0.1 * d**2, rtol=1e-12)
    assert opt.state[p]["step"] == 1


# --- state dicts, the multi-tensor step, parameters without gradients -------------------------


@settings(max_examples=max(5, settings().max_examples // 3))
@given(data=st.data(), name=st.sampled_from(NAMES), split=st.integers(1, 7),
       seed=st.integers(0, 2**16))
def test_state_dict_round_trip_mid_run_continues_identically(device, tmp_path, data, name, split,
                                                              seed):
    opts = random_options(name, data.draw)
    rng = np.random.default_rng(seed)
    grads = gradients(rng, split + 4)
    params = [leaf(rng.standard_normal(s), device) for s in SHAPES]
    opt = optimizer(name)([{"params": params[:2]}, {"params": params[2:], "lr": 0.01}], **opts)
    run(params, opt, grads[:split], device)
    saved, saved_params = opt.state_dict(), [host(p) for p in params]
    expected = run(params, opt, grads[split:], device)  # the uninterrupted run

    resumed = [leaf(w, device) for w in saved_params]
    fresh = optimizer(name)([{"params": resumed[:2]}, {"params": resumed[2:]}], lr=0.3)
    tn.save(saved, tmp_path / "optimizer.npz")  # through a checkpoint, as a resumed run does
    fresh.load_state_dict(tn.load(tmp_path / "optimizer.npz", map_location=device))
    for step_expected, step_got in zip(expected, run(resumed, fresh, grads[split:], device)):
        for e, g in zip(step_expected, step_got):
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("name", NAMES)
def test_multi_tensor_step_is_bitwise_the_per_parameter_loop(device, name, monkeypatch):
    rng = np.random.default_rng(1)
    w0 = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    # Flat once every state exists with one step count; the loop once parameter 0 misses step 4.
    grads = [[None if (i == 0 and k == 4) else rng.standard_normal(s).astype(np.float32)
              for i, s in enumerate(SHAPES)] for k in range(7)]
    opts = {"weight_decay": 0.05} | ({"t0": 2} if name == "ASGD" else {})
    results = []
    for limit in (tn.optim.flat.FLAT_MAX_MEAN_SIZE, 0):
        monkeypatch.setattr(tn.optim.flat, "FLAT_MAX_MEAN_SIZE", limit)
        params = [leaf(w, device) for w in w0]
        opt = optimizer(name)(params, **opts)
        results.append((run(params, opt, grads, device), opt, params))
    (flat_run, flat_opt, flat_params), (loop_run, loop_opt, loop_params) = results
    assert flat_opt._flat_layouts and not loop_opt._flat_layouts  # both paths really ran
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in flat_run[-1]]),
                                  np.concatenate([w.ravel() for w in loop_run[-1]]))
    for p, q in zip(flat_params, loop_params):
        for key, value in flat_opt.state[p].items():
            expected = loop_opt.state[q][key]
            if isinstance(value, tn.Tensor):
                np.testing.assert_array_equal(host(value), host(expected))
            else:
                assert value == expected


@pytest.mark.parametrize("name", NAMES)
def test_parameters_without_gradient_are_untouched(device, name):
    rng = np.random.default_rng(2)
    kept = rng.standard_normal(3)
    params = [leaf(rng.standard_normal(3), device), leaf(kept, device)]
    opt = optimizer(name)(params, weight_decay=0.1)  # decay must not touch it either
    for _ in range(3):
        params[0].grad = tn.tensor(rng.standard_normal(3), device=device)
        opt.step()
    np.testing.assert_array_equal(host(params[1]), kept)
    assert params[1] not in opt.state


# --- PyTorch's checks, flags and signatures ---------------------------------------------------

INVALID = [
    ("Adadelta", {"lr": -1.0}, "Invalid learning rate: -1.0"),
    ("Adadelta", {"rho": 1.5}, "Invalid rho value: 1.5"),
    ("Adadelta", {"eps": -1e-6}, "Invalid epsilon value"),
    ("Adamax", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    ("Adamax", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ("NAdam", {"momentum_decay": -1.0}, "Invalid momentum_decay value: -1.0"),
    ("NAdam", {"betas": (-0.1, 0.9)}, "Invalid beta parameter at index 0"),
    ("RAdam", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("ASGD", {"lr": -0.1}, "Invalid learning rate: -0.1"),
]


@pytest.mark.parametrize("name, opts, message", INVALID)
def test_invalid_hyper_parameters_raise_pytorchs_errors(name, opts, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        optimizer(name)([tn.zeros(2, requires_grad=True)], **opts)


@pytest.mark.parametrize("name", NAMES)
def test_implementation_flags_are_accepted_or_refused_clearly(name):
    rng = np.random.default_rng(3)
    w, g = rng.standard_normal(4), rng.standard_normal(4)
    results = []
    for foreach, capturable in ((None, False), (True, True), (False, False)):
        p = leaf(w, "cpu")
        opt = optimizer(name)([p], foreach=foreach, capturable=capturable)
        p.grad = tn.tensor(g)
        opt.step()
        results.append(host(p))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])  # no effect on the update
    with pytest.raises(NotImplementedError, match=f"{name}: differentiable=True"):
        optimizer(name)([tn.zeros(2, requires_grad=True)], differentiable=True)
    with pytest.raises(TypeError, match="foreach must be None, True or False"):
        optimizer(name)([tn.zeros(2, requires_grad=True)], foreach="yes")


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_signature_is_pytorchs(name):
    ours = inspect.signature(optimizer(name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    assert list(ours) == list(theirs)
    for key, param in theirs.items():
        assert ours[key].kind == param.kind, key
        if param.default is not inspect.Parameter.empty:
            assert ours[key].default == param.default, key


# --- torch.optim, step by step ---------------------------------------------------------------


def _torch_grid():
    flags = list(itertools.product([0.0, 0.1], [False, True]))  # weight_decay, maximize
    cases = [("Adadelta", dict(lr=lr, rho=rho, weight_decay=wd, maximize=mx))
             for lr, rho, (wd, mx) in itertools.product([1.0, 0.3], [0.9, 0.5], flags)]
    cases += [("Adamax", dict(lr=0.05, betas=b, weight_decay=wd, maximize=mx))
              for b, (wd, mx) in itertools.product([(0.9, 0.999), (0.5, 0.9)], flags)]
    for name in ("NAdam", "RAdam"):
        for b, dec, (wd, mx) in itertools.product([(0.9, 0.999), (0.5, 0.9)], [False, True],
                                                  flags):
            opts = dict(lr=0.05, betas=b, weight_decay=wd, decoupled_weight_decay=dec, maximize=mx)
            cases.append((name, opts | ({"momentum_decay": 0.1} if b[0] == 0.5 and
                                        name == "NAdam" else {})))
    cases += [("ASGD", dict(lr=0.05, lambd=lambd, alpha=alpha, t0=t0, weight_decay=wd,
                            maximize=mx))
              for lambd, alpha, t0, (wd, mx) in itertools.product([1e-4, 0.05], [0.75, 0.5],
                                                                  [1e6, 4], flags)]
    return cases


# PyTorch keeps these as float32 scalars in the state (NAdam's momentum product, ASGD's step
# size and averaging weight) even for float64 parameters: agreement is to float32 rounding there.
SCALAR_STATE = {"NAdam": {"mu_product"}, "ASGD": {"eta", "mu"}}


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch_optim_for_every_option_combination(dtype):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 2)]
    w0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[g if g is None else g.astype(dtype) for g in gs]
             for gs in gradients(rng, 20, shapes)]
    for name, opts in _torch_grid():
        tight = dtype == "float64" and name not in SCALAR_STATE
        tol = (dict(rtol=1e-12, atol=1e-13) if tight else dict(rtol=2e-6, atol=1e-7)
               if dtype == "float64" else dict(rtol=1e-5, atol=1e-6))
        ours = [leaf(w, "cpu") for w in w0]
        theirs = [torch.tensor(w, requires_grad=True) for w in w0]
        groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.03}]  # noqa: E731
        opt, topt = optimizer(name)(groups(ours), **opts), getattr(torch.optim, name)(
            groups(theirs), **opts)
        for step_grads in grads:
            for p, t, g in zip(ours, theirs, step_grads):
                p.grad = None if g is None else tn.tensor(g)
                t.grad = None if g is None else torch.tensor(g)
            opt.step()
            topt.step()
            for p, t in zip(ours, theirs):
                np.testing.assert_allclose(host(p), t.detach().numpy(), **tol,
                                           err_msg=f"{name} {opts}")
        ours_sd, theirs_sd = opt.state_dict(), topt.state_dict()
        assert sorted(ours_sd["state"]) == sorted(theirs_sd["state"]), name
        for i, state in theirs_sd["state"].items():
            assert set(state) - set(ours_sd["state"][i]) == SCALAR_STATE.get(name, set()), name
            for key, value in ours_sd["state"][i].items():
                theirs_value = state[key].detach().numpy()
                np.testing.assert_allclose(value if key == "step" else host(value), theirs_value,
                                           **tol, err_msg=f"{name} {opts} state {key}")
