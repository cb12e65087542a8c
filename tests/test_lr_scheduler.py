"""tn.optim.lr_scheduler: each schedule's learning-rate sequence against its formula written here,
state-dict round trips, per-iteration use in training, and PyTorch's sequences when installed."""

import math
import warnings
from bisect import bisect_right

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.optim import lr_scheduler as S

try:
    import torch
except ImportError:  # CI has no torch: the comparisons are skipped
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

BASE_LRS = (0.1, 0.5)


def make_optimizer(lib=tn, kind="SGD"):
    """An optimizer with two groups (lrs 0.1 and 0.5) over dummy parameters, in tinynet or torch."""
    params = [lib.zeros(2, requires_grad=True), lib.zeros(1, requires_grad=True)]
    groups = [{"params": params[:1]}, {"params": params[1:], "lr": BASE_LRS[1]}]
    if kind == "SGD":
        return lib.optim.SGD(groups, lr=BASE_LRS[0], momentum=0.9)
    return lib.optim.Adam(groups, lr=BASE_LRS[0])


def sequence(sched, steps):
    """get_last_lr() after construction and after each of ``steps`` steps: (steps + 1, groups)."""
    out = [list(sched.get_last_lr())]
    for _ in range(steps):
        sched.optimizer.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
    return np.array(out)


def expected(fn, steps):
    """The formula ``fn(base_lr, t)`` for t = 0..steps and each group."""
    return np.array([[fn(base, t) for base in BASE_LRS] for t in range(steps + 1)])


# --- each schedule against its formula ------------------------------------------------------------


@given(step_size=st.integers(1, 10), gamma=st.floats(0.05, 0.99))
def test_step_lr(step_size, gamma):
    got = sequence(S.StepLR(make_optimizer(), step_size, gamma), 60)
    want = expected(lambda base, t: base * gamma ** (t // step_size), 60)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@given(milestones=st.lists(st.integers(1, 40), max_size=5), gamma=st.floats(0.05, 0.99))
def test_multistep_lr(milestones, gamma):
    # A milestone listed twice decays twice.
    got = sequence(S.MultiStepLR(make_optimizer(), milestones, gamma), 50)
    want = expected(lambda base, t: base * gamma ** sum(m <= t for m in milestones), 50)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@given(gamma=st.floats(0.5, 1.0))
def test_exponential_lr(gamma):
    got = sequence(S.ExponentialLR(make_optimizer(), gamma), 60)
    np.testing.assert_allclose(got, expected(lambda base, t: base * gamma**t, 60), rtol=1e-12)


@given(t_max=st.integers(1, 20), eta_min=st.sampled_from([0.0, 1e-3, 0.05]))
def test_cosine_annealing_lr_follows_the_closed_form_over_several_periods(t_max, eta_min):
    # The recursive form PyTorch steps with must stay on the closed form, also past T_max (the
    # rate climbs back) and at t = T_max + 1 (mod 2 T_max), where the ratio form would be 0/0.
    steps = 3 * t_max + 2
    got = sequence(S.CosineAnnealingLR(make_optimizer(), t_max, eta_min), steps)
    want = expected(lambda base, t: eta_min + (base - eta_min)
                    * (1 + math.cos(math.pi * t / t_max)) / 2, steps)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got[t_max, 0] == pytest.approx(eta_min, abs=1e-12)


@given(start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total=st.integers(1, 20))
def test_linear_lr(start, end, total):
    got = sequence(S.LinearLR(make_optimizer(), start, end, total), total + 10)
    want = expected(lambda base, t: base * (start + (end - start) * min(t, total) / total),
                    total + 10)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_lambda_lr_with_one_function_per_group():
    opt = make_optimizer()
    sched = S.LambdaLR(opt, [lambda t: 1 / (t + 1), lambda t: 0.9**t])
    got = sequence(sched, 30)
    want = np.array([[BASE_LRS[0] / (t + 1), BASE_LRS[1] * 0.9**t] for t in range(31)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(make_optimizer(), [lambda t: 1.0])


def one_cycle_formula(t, total, pct_start, three_phase, strategy, start, peak, final):
    """OneCycleLR's value at step t, from its phase table (PyTorch's documented definition)."""
    def anneal(a, b, pct):
        if strategy == "cos":
            return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)
        return a + (b - a) * pct
    if three_phase:
        phases = [(pct_start * total - 1, start, peak), (2 * pct_start * total - 2, peak, start),
                  (total - 1, start, final)]
    else:
        phases = [(pct_start * total - 1, start, peak), (total - 1, peak, final)]
    begin = 0.0
    for i, (end, a, b) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            return anneal(a, b, (t - begin) / (end - begin))
        begin = end


@given(total=st.integers(10, 60), pct_start=st.floats(0.1, 0.45), three_phase=st.booleans(),
       strategy=st.sampled_from(["cos", "linear"]), kind=st.sampled_from(["SGD", "Adam"]))
def test_one_cycle_lr_and_momentum(total, pct_start, three_phase, strategy, kind):
    assume(pct_start * total != 1)  # a zero-length warm-up: refused, tested below
    opt = make_optimizer(kind=kind)
    max_lrs, div, final_div = (1.0, 2.0), 25.0, 1e4
    sched = S.OneCycleLR(opt, list(max_lrs), total_steps=total, pct_start=pct_start,
                         three_phase=three_phase, anneal_strategy=strategy, div_factor=div,
                         final_div_factor=final_div)
    lrs, moms = [], []
    for t in range(total):
        lrs.append(sched.get_last_lr())
        group = opt.param_groups[0]
        moms.append(group["betas"][0] if kind == "Adam" else group["momentum"])
        if t < total - 1:
            sched.step()
    for g, peak in enumerate(max_lrs):
        want = [one_cycle_formula(t, total, pct_start, three_phase, strategy, peak / div, peak,
                                  peak / div / final_div) for t in range(total)]
        np.testing.assert_allclose(np.array(lrs)[:, g], want, rtol=1e-9, atol=1e-15)
    # Momentum runs the other way: 0.95 -> 0.85 while the rate rises, and back.
    want_m = [one_cycle_formula(t, total, pct_start, three_phase, strategy, 0.95, 0.85, 0.95)
              for t in range(total)]
    if three_phase:  # the third phase holds momentum at its maximum
        want_m = [0.95 if t > 2 * pct_start * total - 2 else m for t, m in enumerate(want_m)]
    np.testing.assert_allclose(moms, want_m, rtol=1e-9)
    assert opt.param_groups[0].get("betas", (0, 0.999))[1] == 0.999  # beta2 is left alone
    sched.step()
    with pytest.raises(ValueError, match="Tried to step"):
        sched.step()


def test_one_cycle_lr_from_epochs_and_steps_per_epoch():
    sched = S.OneCycleLR(make_optimizer(), 1.0, epochs=3, steps_per_epoch=7)
    assert sched.total_steps == 21
    for args in [dict(), dict(total_steps=0), dict(epochs=2), dict(total_steps=5, pct_start=2.0),
                 dict(total_steps=5, anneal_strategy="step")]:
        with pytest.raises(ValueError):
            S.OneCycleLR(make_optimizer(), 1.0, **args)
    with pytest.raises(ValueError, match="zero steps long"):
        S.OneCycleLR(make_optimizer(), 1.0, total_steps=10, pct_start=0.1)
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(tn.optim.Adagrad([tn.zeros(1, requires_grad=True)]), 1.0, total_steps=5)


@given(m=st.integers(1, 10), gamma=st.floats(0.5, 0.99), t_max=st.integers(2, 15))
def test_sequential_lr_warmup_then_decay(m, gamma, t_max):
    opt = make_optimizer()
    warm = S.LinearLR(opt, start_factor=0.1, total_iters=m)
    cos = S.CosineAnnealingLR(opt, t_max)
    exp = S.ExponentialLR(opt, gamma)
    sched = S.SequentialLR(opt, [warm, cos, exp], milestones=[m, m + t_max])
    steps = m + t_max + 15
    got = sequence(sched, steps)

    def formula(base, t):  # each schedule restarts at its own epoch 0 at its milestone
        if t < m:
            return base * (0.1 + 0.9 * t / m)
        if t < m + t_max:
            return base * (1 + math.cos(math.pi * (t - m) / t_max)) / 2
        return base * gamma ** (t - m - t_max)

    np.testing.assert_allclose(got, expected(formula, steps), rtol=1e-9, atol=1e-15)


def test_sequential_lr_checks_its_arguments():
    opt = make_optimizer()
    a, b = S.ExponentialLR(opt, 0.9), S.StepLR(opt, 2)
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        S.SequentialLR(opt, [a, b], milestones=[])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.SequentialLR(opt, [a, S.ReduceLROnPlateau(opt)], milestones=[3])
    with pytest.raises(ValueError, match="same optimizer"):
        S.SequentialLR(opt, [a, S.StepLR(make_optimizer(), 2)], milestones=[3])


# --- ReduceLROnPlateau ----------------------------------------------------------------------------


def plateau_run(metrics, **kwargs):
    opt = make_optimizer()
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for value in metrics:
        sched.step(value)
        out.append(sched.get_last_lr()[0])
    return out


def test_plateau_reduces_after_more_than_patience_bad_epochs():
    # Epoch 1 sets the best; epochs 2, 3, 4 are bad: 3 > patience 2 reduces at epoch 4, and the
    # count restarts, so the next reduction is at epoch 7.
    got = plateau_run([1.0] * 7, patience=2, factor=0.5)
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_plateau_improvements_reset_the_count_and_cooldown_waits():
    # Improvements at epochs 2 and 4 restart the count: epochs 5, 6, 7 are the first three bad
    # ones in a row, so the rate drops at epoch 7, not before.
    got = plateau_run([5, 4, 4, 3, 3, 3, 3], patience=2, factor=0.5)
    assert got == pytest.approx([0.1] * 6 + [0.05])
    # cooldown 2: after the reduction at epoch 4, epochs 5 and 6 do not count.
    got = plateau_run([1.0] * 9, patience=2, factor=0.5, cooldown=2)
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025])


def test_plateau_threshold_modes_and_max_mode():
    # rel: 0.99995 is not below 1 * (1 - 1e-4), so it is a bad epoch.
    assert plateau_run([1.0, 0.99995, 0.99995], patience=1, factor=0.5)[-1] == pytest.approx(0.05)
    assert plateau_run([1.0, 0.9998, 0.9996], patience=1, factor=0.5)[-1] == pytest.approx(0.1)
    # abs: an improvement must beat best - threshold.
    got = plateau_run([1.0, 0.95, 0.9], patience=1, threshold=0.1, threshold_mode="abs")
    assert got[-1] == pytest.approx(0.01)
    # max: rising accuracy is good, a flat one is not.
    assert plateau_run([0.5, 0.6, 0.7, 0.8], mode="max", patience=0)[-1] == pytest.approx(0.1)
    assert plateau_run([0.5, 0.5], mode="max", patience=0)[-1] == pytest.approx(0.01)


def test_plateau_min_lr_eps_and_tensor_metrics():
    got = plateau_run([1.0] * 10, patience=0, factor=0.1, min_lr=[0.002, 0.3])
    assert got[-1] == pytest.approx(0.002)
    opt = make_optimizer()
    sched = S.ReduceLROnPlateau(opt, patience=0, factor=0.1, min_lr=[0.002, 0.3])
    for _ in range(5):
        sched.step(tn.tensor(1.0))  # a one-element tensor is a metric too
    assert sched.get_last_lr() == pytest.approx([0.002, 0.3])
    # A reduction smaller than eps is not made.
    assert plateau_run([1.0, 1.0], patience=0, factor=0.5, eps=0.06) == [0.1, 0.1]
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(make_optimizer(), factor=1.0)
    with pytest.raises(ValueError, match="unknown"):
        S.ReduceLROnPlateau(make_optimizer(), mode="up")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        S.ReduceLROnPlateau(make_optimizer(), min_lr=[0.1])


# --- shared behaviour -----------------------------------------------------------------------------

SCHEDULES = {
    "StepLR": lambda opt: S.StepLR(opt, 3, 0.5),
    "MultiStepLR": lambda opt: S.MultiStepLR(opt, [2, 5, 5, 11], 0.3),
    "ExponentialLR": lambda opt: S.ExponentialLR(opt, 0.9),
    "CosineAnnealingLR": lambda opt: S.CosineAnnealingLR(opt, 7, 0.01),
    "LinearLR": lambda opt: S.LinearLR(opt, 0.2, 0.9, 6),
    "OneCycleLR": lambda opt: S.OneCycleLR(opt, [1.0, 2.0], total_steps=40),
    "OneCycleLR3": lambda opt: S.OneCycleLR(opt, 1.0, total_steps=40, three_phase=True,
                                            anneal_strategy="linear"),
    "LambdaLR": lambda opt: S.LambdaLR(opt, lambda t: 1 / (t + 1)),
    "SequentialLR": lambda opt: S.SequentialLR(
        opt, [S.LinearLR(opt, 0.1, total_iters=4), S.CosineAnnealingLR(opt, 10),
              S.ExponentialLR(opt, 0.8)], [4, 12]),
    "SequentialLR-multistep": lambda opt: S.SequentialLR(
        opt, [S.ExponentialLR(opt, 0.9), S.MultiStepLR(opt, [3, 20], 0.5)], [8]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("split", [0, 5, 13])
def test_state_dict_round_trip_continues_the_sequence(name, split):
    opt = make_optimizer()
    sched = SCHEDULES[name](opt)
    sequence(sched, split)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    rest = sequence(sched, 39 - split)

    opt2 = make_optimizer()
    sched2 = SCHEDULES[name](opt2)  # a fresh run, then the checkpoint loaded over it
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    np.testing.assert_array_equal(sequence(sched2, 39 - split), rest)
    if "momentum" in opt.param_groups[0]:
        assert opt2.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]


@pytest.mark.skipif(not hasattr(tn, "save"), reason="tn.save/tn.load are not available")
@pytest.mark.parametrize("name", ["SequentialLR-multistep", "SequentialLR", "OneCycleLR"])
def test_checkpoint_file_round_trip(name, tmp_path):
    # Weights, optimizer and schedule state through tn.save / tn.load resume the run exactly.
    def run(opt, sched, steps):
        p = opt.param_groups[0]["params"][0]
        out = []
        for _ in range(steps):
            p.grad = tn.tensor([1.0, -0.5])
            opt.step()
            sched.step()
            out.append(list(sched.get_last_lr()) + p.numpy().tolist())
        return np.array(out)

    opt = make_optimizer(kind="Adam")
    sched = SCHEDULES[name](opt)
    run(opt, sched, 6)
    params = [g["params"][0] for g in opt.param_groups]
    tn.save({"weights": [p.detach() for p in params], "optimizer": opt.state_dict(),
             "schedule": sched.state_dict()}, tmp_path / "checkpoint.npz")
    rest = run(opt, sched, 20)

    opt2 = make_optimizer(kind="Adam")
    sched2 = SCHEDULES[name](opt2)
    checkpoint = tn.load(tmp_path / "checkpoint.npz")
    for group, saved in zip(opt2.param_groups, checkpoint["weights"]):
        group["params"][0].data[...] = saved.data
    opt2.load_state_dict(checkpoint["optimizer"])
    sched2.load_state_dict(checkpoint["schedule"])
    np.testing.assert_array_equal(run(opt2, sched2, 20), rest)


def test_plateau_state_dict_round_trip():
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85]
    opt = make_optimizer()
    sched = S.ReduceLROnPlateau(opt, patience=1, cooldown=1)
    for m in metrics[:4]:
        sched.step(m)
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    opt2 = make_optimizer()
    sched2 = S.ReduceLROnPlateau(opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    for m in metrics[4:]:
        sched.step(m)
        sched2.step(m)
        assert sched2.get_last_lr() == sched.get_last_lr()
    assert (sched2.patience, sched2.best, sched2.num_bad_epochs) == (1, sched.best,
                                                                   sched.num_bad_epochs)


def test_construction_sets_epoch_zero_and_resuming_needs_initial_lr():
    opt = make_optimizer()
    sched = S.LinearLR(opt, start_factor=0.25, total_iters=4)
    assert sched.last_epoch == 0
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.025, 0.125])
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE_LRS)
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_optimizer(), 2, last_epoch=3)
    # With initial_lr present (a loaded optimizer), last_epoch=k resumes: the next step is k+1.
    opt = make_optimizer()
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    sched = S.ExponentialLR(opt, 0.5, last_epoch=3)
    assert sched.last_epoch == 4 and sched.get_last_lr() == list(BASE_LRS)
    with pytest.raises(TypeError, match="not an Optimizer"):
        S.StepLR(object(), 2)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        S.LinearLR(make_optimizer(), start_factor=0.0)


def test_recursive_schedules_follow_a_rate_changed_by_hand():
    opt = make_optimizer()
    sched = S.ExponentialLR(opt, 0.5)
    opt.param_groups[0]["lr"] = 1.0
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.5, 0.25])


def test_schedule_per_iteration_drives_the_updates(device):
    # OneCycleLR stepped per batch: each SGD step must use that iteration's rate.
    p = tn.tensor(np.zeros(3), device=device, requires_grad=True)
    opt = tn.optim.SGD([p], lr=0.1)
    epochs, batches = 3, 4
    sched = S.OneCycleLR(opt, max_lr=0.5, epochs=epochs, steps_per_epoch=batches,
                         cycle_momentum=False)
    g = np.array([1.0, -2.0, 0.5])
    for _ in range(epochs):
        for _ in range(batches):
            lr = sched.get_last_lr()[0]
            before = np.array(p.detach().cpu().numpy(), copy=True)
            p.grad = tn.tensor(g, device=device)
            opt.step()
            np.testing.assert_allclose(p.detach().cpu().numpy(), before - lr * g, rtol=1e-12)
            sched.step() if sched.last_epoch < sched.total_steps - 1 else None
    assert sched.last_epoch == epochs * batches - 1


# --- against PyTorch ------------------------------------------------------------------------------


def torch_schedules():
    T = torch.optim.lr_scheduler
    return {
        "StepLR": lambda opt: T.StepLR(opt, 3, 0.5),
        "MultiStepLR": lambda opt: T.MultiStepLR(opt, [2, 5, 5, 11], 0.3),
        "ExponentialLR": lambda opt: T.ExponentialLR(opt, 0.9),
        "CosineAnnealingLR": lambda opt: T.CosineAnnealingLR(opt, 7, 0.01),
        "LinearLR": lambda opt: T.LinearLR(opt, 0.2, 0.9, 6),
        "OneCycleLR": lambda opt: T.OneCycleLR(opt, [1.0, 2.0], total_steps=40),
        "OneCycleLR3": lambda opt: T.OneCycleLR(opt, 1.0, total_steps=40, three_phase=True,
                                                anneal_strategy="linear"),
        "LambdaLR": lambda opt: T.LambdaLR(opt, lambda t: 1 / (t + 1)),
        "SequentialLR": lambda opt: T.SequentialLR(
            opt, [T.LinearLR(opt, 0.1, total_iters=4), T.CosineAnnealingLR(opt, 10),
                  T.ExponentialLR(opt, 0.8)], [4, 12]),
        "SequentialLR-multistep": lambda opt: T.SequentialLR(
            opt, [T.ExponentialLR(opt, 0.9), T.MultiStepLR(opt, [3, 20], 0.5)], [8]),
    }


@needs_torch
@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_sequences_equal_pytorchs(name, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's call-order warnings: no optimizer step here
        topt = make_optimizer(torch, kind)
        theirs = sequence(torch_schedules()[name](topt), 39)
    opt = make_optimizer(tn, kind)
    ours = sequence(SCHEDULES[name](opt), 39)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=0)
    key = "momentum" if kind == "SGD" else "betas"
    assert opt.param_groups[0][key] == pytest.approx(topt.param_groups[0][key], rel=1e-13)


@needs_torch
@given(data=st.data(), t_max=st.integers(1, 12), eta_min=st.sampled_from([0.0, 0.01]),
       m=st.integers(1, 8), gamma=st.floats(0.3, 0.99))
def test_random_schedules_equal_pytorchs(data, t_max, eta_min, m, gamma):
    milestones = sorted(data.draw(st.lists(st.integers(1, 30), max_size=4)))
    T = torch.optim.lr_scheduler

    def build(lib, module):
        opt = make_optimizer(lib)
        seq = module.SequentialLR(opt, [module.LinearLR(opt, 0.3, 1.0, m),
                                        module.CosineAnnealingLR(opt, t_max, eta_min),
                                        module.MultiStepLR(opt, milestones, gamma)],
                                  [m, m + 2 * t_max])
        return seq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sequence(build(torch, T), 50)
    np.testing.assert_allclose(sequence(build(tn, S), 50), theirs, rtol=1e-12, atol=1e-15)


@needs_torch
@given(metrics=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=40),
       mode=st.sampled_from(["min", "max"]), threshold_mode=st.sampled_from(["rel", "abs"]),
       patience=st.integers(0, 4), cooldown=st.integers(0, 3), threshold=st.floats(0.0, 0.2),
       min_lr=st.sampled_from([0.0, 0.004]))
def test_plateau_equals_pytorchs(metrics, mode, threshold_mode, patience, cooldown, threshold,
                                 min_lr):
    kwargs = dict(mode=mode, threshold_mode=threshold_mode, patience=patience, cooldown=cooldown,
                  threshold=threshold, min_lr=min_lr, factor=0.5)
    topt, opt = make_optimizer(torch), make_optimizer()
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    ours = S.ReduceLROnPlateau(opt, **kwargs)
    for value in metrics:
        theirs.step(value)
        ours.step(value)
        assert ours.get_last_lr() == theirs.get_last_lr()
        assert ours.num_bad_epochs == theirs.num_bad_epochs


def test_multistep_closed_form_agrees_with_recursion():
    # The closed form (used by SequentialLR at milestones) is gamma ** bisect_right(milestones, t).
    milestones = [3, 3, 8]
    opt = make_optimizer()
    sched = S.MultiStepLR(opt, milestones, 0.5)
    for t in range(12):
        sched.step(t)
        assert sched.get_last_lr()[0] == pytest.approx(0.1 * 0.5 ** bisect_right(milestones, t))
