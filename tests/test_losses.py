"""The losses of ``tn.nn`` (``tinynet/nn/loss.py``), on every device.

* forward against closed forms written here in NumPy (class-index losses: a loop over samples),
  for every loss and every reduction, with weights, ignore_index, label smoothing, pos_weight,
  probability targets and (N, C, d1) inputs;
* float64 gradcheck (and gradgradcheck for the smooth losses) on hypothesis-chosen shapes, values
  and options, with respect to the input and, where it is differentiable, the target and weight;
* stability: BCE-with-logits and cross entropy at logits of +-1e4 against stable references;
* the modules (same numbers as the functions, weight buffers, state dict, reduction checks);
* error messages (bad labels, dtypes, shapes); PyTorch comparison over a grid of options (skipped
  without torch); the docs/nn.md "Losses" snippets run.
"""

import itertools
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.testing import Domain, arrays, check_gradients

F = tn.nn.functional
REDUCTIONS = ("mean", "sum", "none")
FEWER = settings(max_examples=max(5, settings().max_examples * 2 // 5))


def host(t):
    return t.detach().cpu().numpy()


def tensor(a, device, requires_grad=False, dtype=None):
    a = np.asarray(a)
    dtype = dtype or (np.float64 if a.dtype.kind == "f" else a.dtype)
    return tn.tensor(a, dtype=dtype, device=device, requires_grad=requires_grad)


def assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=""):
    got = host(got)
    assert got.shape == np.shape(expected), f"{msg}: shape {got.shape} != {np.shape(expected)}"
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=msg)


# --- NumPy references -----------------------------------------------------------------------------


def np_reduce(loss, reduction, weight_sum=None):
    if reduction == "none":
        return loss
    if reduction == "sum" or (reduction == "batchmean" and loss.ndim == 0):
        return loss.sum()
    if reduction == "batchmean":
        return loss.sum() / loss.shape[0]
    return loss.sum() / (loss.size if weight_sum is None else weight_sum)


def np_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_softplus(x):
    return np.logaddexp(0.0, x)  # log(1 + e^x), exact for any x


def np_index_loss(log_probs, target, weight, ignore_index, reduction, smoothing=0.0):
    """NLL / cross entropy with class indices, one sample at a time."""
    out_shape = np.shape(target)
    if log_probs.ndim == 1:  # unbatched: (C,) with a 0-d target
        log_probs, target = log_probs[None], np.asarray(target)[None]
    classes = log_probs.shape[1]
    rows = np.moveaxis(log_probs, 1, -1).reshape(-1, classes)
    w = np.ones(classes) if weight is None else weight
    losses, weight_sum = [], 0.0
    for row, label in zip(rows, target.reshape(-1)):
        if label == ignore_index:
            losses.append(0.0)
            continue
        nll = -w[label] * row[label]
        spread = -sum(w[c] * row[c] for c in range(classes))
        losses.append((1 - smoothing) * nll + smoothing / classes * spread)
        weight_sum += w[label]
    loss = np.array(losses).reshape(out_shape)
    if reduction == "none":
        return loss
    return np_reduce(loss, reduction, weight_sum)


def np_probability_ce(logits, target, weight, reduction, smoothing):
    classes = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
    axis = 1 if logits.ndim > 1 else 0
    target = target * (1 - smoothing) + smoothing / classes
    w = np.ones(classes) if weight is None else weight
    w = w.reshape((classes,) + (1,) * (logits.ndim - 1 - axis))
    loss = -(np_log_softmax(logits, axis) * target * w).sum(axis=axis)
    return np_reduce(loss, reduction)


def np_clamped_log(p):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(p), -100.0)


# --- strategies ----------------------------------------------------------------------------------

small_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)
nonempty_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple)
unit = Domain(0.0, 1.0)
probabilities = Domain(0.05, 0.95)  # BCE's input: away from the clamped ends
positive = Domain(0.25, 2.0)


@st.composite
def class_problem(draw, max_n=4, max_c=4, spatial=True):
    """(logits shape, integer labels, class count): (N, C), (N, C, d1) or (C,) inputs."""
    kind = draw(st.sampled_from(["NC", "NCd", "C"] if spatial else ["NC"]))
    n, c = draw(st.integers(1, max_n)), draw(st.integers(1, max_c))
    shape = {"NC": (n, c), "NCd": (n, c, draw(st.integers(1, 3))), "C": (c,)}[kind]
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    labels = np.array(draw(st.lists(st.integers(0, c - 1), min_size=int(np.prod(target_shape)),
                                    max_size=int(np.prod(target_shape)))), dtype=np.int64)
    return shape, labels.reshape(target_shape), c


def with_ignored(draw, labels, ignore_index):
    """Some labels replaced by ignore_index (never all: the weighted mean needs one)."""
    flat = labels.reshape(-1).copy()
    mask = np.array(draw(st.lists(st.booleans(), min_size=flat.size, max_size=flat.size)))
    mask[0] = False
    flat[mask] = ignore_index
    return flat.reshape(labels.shape)


# --- forward against closed forms ----------------------------------------------------------------


@given(data=st.data())
def test_regression_losses_forward(device, data):
    shape = data.draw(small_shapes, label="shape")
    x = data.draw(arrays(shape, domain=Domain(-3, 3)), label="input")
    y = data.draw(arrays(shape, domain=Domain(-3, 3)), label="target")
    w = data.draw(arrays(shape, domain=positive), label="weight")
    beta = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]), label="beta")
    delta = data.draw(st.sampled_from([0.5, 1.0, 3.0]), label="delta")
    d = np.abs(x - y)
    smooth = d if beta == 0 else np.where(d < beta, 0.5 * d**2 / max(beta, 1e-300), d - beta / 2)
    huber = np.where(d < delta, 0.5 * d**2, delta * (d - delta / 2))
    tx, ty, tw = tensor(x, device), tensor(y, device), tensor(w, device)
    for r in REDUCTIONS:
        assert_close(F.mse_loss(tx, ty, reduction=r), np_reduce(d**2, r), msg=f"mse {r}")
        assert_close(F.l1_loss(tx, ty, reduction=r), np_reduce(d, r), msg=f"l1 {r}")
        assert_close(F.smooth_l1_loss(tx, ty, reduction=r, beta=beta), np_reduce(smooth, r),
                     msg=f"smooth_l1 beta={beta} {r}")
        assert_close(F.huber_loss(tx, ty, reduction=r, delta=delta), np_reduce(huber, r),
                     msg=f"huber delta={delta} {r}")
        for fn, loss in ((F.mse_loss, d**2), (F.l1_loss, d)):  # mean: sum(w loss) / sum(w)
            assert_close(fn(tx, ty, reduction=r, weight=tw), np_reduce(w * loss, r, w.sum()),
                         msg=f"{fn.__name__} weight")
        assert_close(F.huber_loss(tx, ty, reduction=r, delta=delta, weight=tw),  # a plain mean
                     np_reduce(w * huber, r), msg="huber weight")


def test_losses_keep_float32_and_device(device):
    x = tn.tensor([[0.5, -1.0], [2.0, 0.0]], device=device, requires_grad=True)
    y = tn.tensor([[0.0, 1.0], [0.5, 0.25]], device=device)
    w64 = tn.tensor([1.0, 2.0], dtype=tn.float64, device=device)  # cast to the input's dtype
    labels = tn.tensor([1, 0], device=device)
    outs = [fn(x, y) for fn in (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss,
                                F.binary_cross_entropy_with_logits, F.cross_entropy)]
    outs += [F.binary_cross_entropy(x.sigmoid(), y), F.kl_div(x, y, reduction="batchmean"),
             F.cross_entropy(x, labels, w64, label_smoothing=0.1), F.nll_loss(x, labels, w64)]
    for out in outs:
        assert out.dtype == tn.float32 and out.device == tn.device(device) and out.shape == ()
        (grad,) = tn.grad(out, [x])
        assert grad.dtype == tn.float32 and np.isfinite(host(grad)).all()


@given(data=st.data())
def test_binary_cross_entropy_forward(device, data):
    shape = data.draw(small_shapes, label="shape")
    p = data.draw(arrays(shape, domain=unit), label="input")  # 0 and 1 included: the clamp
    y = data.draw(arrays(shape, domain=unit), label="target")
    w = data.draw(arrays(shape[-1:], domain=positive), label="weight")  # broadcast weight
    loss = -(y * np_clamped_log(p) + (1 - y) * np_clamped_log(1 - p))
    tp, ty = tensor(p, device), tensor(y, device)
    for r in REDUCTIONS:
        assert_close(F.binary_cross_entropy(tp, ty, reduction=r), np_reduce(loss, r), msg=r)
        assert_close(F.binary_cross_entropy(tp, ty, tensor(w, device), reduction=r),
                     np_reduce(w * loss, r), msg=f"weight {r}")


def test_binary_cross_entropy_clamps_log_at_minus_100(device):
    p = tn.tensor([0.0, 1.0, 0.0, 1.0], dtype=tn.float64, device=device, requires_grad=True)
    y = tn.tensor([1.0, 0.0, 0.0, 1.0], dtype=tn.float64, device=device)
    loss = F.binary_cross_entropy(p, y, reduction="none")
    assert_close(loss, [100.0, 100.0, 0.0, 0.0])
    loss.sum().backward()
    assert np.isfinite(host(p.grad)).all()


@given(data=st.data())
def test_binary_cross_entropy_with_logits_forward(device, data):
    shape = data.draw(nonempty_shapes, label="shape")
    x = data.draw(arrays(shape, domain=Domain(-30, 30)), label="input")
    y = data.draw(arrays(shape, domain=unit), label="target")
    w = data.draw(arrays(shape, domain=positive), label="weight")
    pw = data.draw(arrays(shape[-1:], domain=Domain(0.25, 4.0)), label="pos_weight")
    tx, ty, tw, tpw = (tensor(a, device) for a in (x, y, w, pw))
    for r in REDUCTIONS:
        plain = (1 - y) * np_softplus(x) + y * np_softplus(-x)
        assert_close(F.binary_cross_entropy_with_logits(tx, ty, reduction=r), np_reduce(plain, r),
                     msg=r)
        weighted = w * ((1 - y) * np_softplus(x) + pw * y * np_softplus(-x))
        assert_close(F.binary_cross_entropy_with_logits(tx, ty, tw, reduction=r, pos_weight=tpw),
                     np_reduce(weighted, r), msg=f"weight, pos_weight {r}")


@given(data=st.data())
def test_kl_div_forward(device, data):
    shape = data.draw(small_shapes, label="shape")
    x = data.draw(arrays(shape, domain=Domain(-3, 0)), label="input (log-probabilities)")
    t = data.draw(arrays(shape, domain=unit), label="target")
    t = np.where(t < 0.2, 0.0, t)  # zeros: 0 log 0 counts as 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pointwise = np.where(t > 0, t * np.log(t), 0.0) - t * x
    log_t = np.log(np.maximum(t, 0.1))
    pointwise_log = np.exp(log_t) * (log_t - x)
    tx, tt, tlog = tensor(x, device), tensor(t, device), tensor(log_t, device)
    for r in REDUCTIONS + ("batchmean",):
        assert_close(F.kl_div(tx, tt, reduction=r), np_reduce(pointwise, r), msg=r)
        assert_close(F.kl_div(tx, tlog, reduction=r, log_target=True), np_reduce(pointwise_log, r),
                     msg=f"log_target {r}")


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # all ignored: 0 / 0
@given(data=st.data())
def test_nll_loss_forward(device, data):
    shape, labels, c = data.draw(class_problem(), label="problem")
    logp = np_log_softmax(data.draw(arrays(shape), label="logits"), 1 if len(shape) > 1 else 0)
    w = data.draw(arrays((c,), domain=positive), label="weight")
    ignore_index = data.draw(st.sampled_from([-100, 0, 7]), label="ignore_index")
    if labels.ndim:
        labels = with_ignored(data.draw, labels, ignore_index)
    x = tensor(logp, device)
    for r, weight in itertools.product(REDUCTIONS, (None, w)):
        got = F.nll_loss(x, tensor(labels, device),
                         None if weight is None else tensor(weight, device),
                         ignore_index=ignore_index, reduction=r)
        assert_close(got, np_index_loss(logp, labels, weight, ignore_index, r),
                     msg=f"{shape} {r} weight={weight is not None}")


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # all ignored: 0 / 0
@given(data=st.data())
def test_cross_entropy_forward_class_indices(device, data):
    shape, labels, c = data.draw(class_problem(), label="problem")
    logits = data.draw(arrays(shape, domain=Domain(-4, 4)), label="logits")
    w = data.draw(arrays((c,), domain=positive), label="weight")
    ignore_index = data.draw(st.sampled_from([-100, 1]), label="ignore_index")
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]), label="label_smoothing")
    if labels.ndim:
        labels = with_ignored(data.draw, labels, ignore_index)
    logp = np_log_softmax(logits, 1 if len(shape) > 1 else 0)
    for r, weight in itertools.product(REDUCTIONS, (None, w)):
        got = F.cross_entropy(tensor(logits, device), tensor(labels, device),
                              None if weight is None else tensor(weight, device),
                              ignore_index=ignore_index, reduction=r, label_smoothing=smoothing)
        assert_close(got, np_index_loss(logp, labels, weight, ignore_index, r, smoothing),
                     msg=f"{shape} {r} weight={weight is not None} smoothing={smoothing}")


@given(data=st.data())
def test_cross_entropy_forward_probabilities(device, data):
    shape, _, c = data.draw(class_problem(), label="problem")
    logits = data.draw(arrays(shape, domain=Domain(-4, 4)), label="logits")
    raw = data.draw(arrays(shape, domain=positive), label="target")
    target = raw / raw.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    w = data.draw(arrays((c,), domain=positive), label="weight")
    smoothing = data.draw(st.sampled_from([0.0, 0.2]), label="label_smoothing")
    for r, weight in itertools.product(REDUCTIONS, (None, w)):
        got = F.cross_entropy(tensor(logits, device), tensor(target, device),
                              None if weight is None else tensor(weight, device), reduction=r,
                              label_smoothing=smoothing)
        assert_close(got, np_probability_ce(logits, target, weight, r, smoothing),
                     msg=f"{shape} {r} weight={weight is not None} smoothing={smoothing}")


def test_cross_entropy_equals_nll_of_log_softmax_and_one_hot_probabilities(device):
    rng = np.random.default_rng(0)
    logits = tensor(rng.normal(size=(5, 4)), device)
    labels = np.array([0, 3, 1, 1, 2])
    one_hot = np.eye(4)[labels]
    ce = F.cross_entropy(logits, tensor(labels, device))
    assert_close(ce, host(F.nll_loss(F.log_softmax(logits, axis=1), tensor(labels, device))))
    assert_close(ce, host(F.cross_entropy(logits, tensor(one_hot, device))))


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # all ignored: 0 / 0
def test_all_targets_ignored_gives_nan_mean_and_zero_sum(device):
    x = tn.zeros(3, 4, dtype=tn.float64, device=device)
    t = tn.tensor([-100, -100, -100], device=device)
    assert np.isnan(host(F.cross_entropy(x, t)))  # 0 / 0, as in PyTorch
    assert host(F.cross_entropy(x, t, reduction="sum")) == 0


# --- gradients -----------------------------------------------------------------------------------


@given(data=st.data())
def test_gradcheck_regression_losses(device, data):
    shape = data.draw(small_shapes, label="shape")
    name = data.draw(st.sampled_from(["mse", "l1", "smooth_l1", "huber"]), label="loss")
    b = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0] if name == "smooth_l1" else [0.5, 1.0]))
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    # |input - target| stays off the kinks at 0 (abs) and at beta/delta (the branch switch).
    diff = data.draw(arrays(shape, domain=Domain(-3, 3, avoid=(-b, 0.0, b), margin=0.05)))
    y = data.draw(arrays(shape), label="target")
    use_weight = name != "smooth_l1" and data.draw(st.booleans(), label="weight")
    w = data.draw(arrays(shape, domain=positive), label="weight") if use_weight else None
    tx, ty = tensor(y + diff, device, True), tensor(y, device, True)
    tw = None if w is None else tensor(w, device, True)

    def loss(x, t, weight=None):
        if name == "smooth_l1":
            return F.smooth_l1_loss(x, t, reduction=reduction, beta=b)
        fn = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[name]
        kwargs = {"delta": b} if name == "huber" else {}
        return fn(x, t, reduction=reduction, weight=weight, **kwargs)

    check_gradients(loss, tx, ty, *([tw] if tw is not None else []),
                    second_order=name in ("mse", "huber"))


@given(data=st.data())
def test_gradcheck_binary_losses(device, data):
    shape = data.draw(nonempty_shapes, label="shape")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    p = tensor(data.draw(arrays(shape, domain=probabilities), label="p"), device, True)
    x = tensor(data.draw(arrays(shape, domain=Domain(-4, 4)), label="logits"), device, True)
    y = tensor(data.draw(arrays(shape, domain=unit), label="target"), device, True)
    w = tensor(data.draw(arrays(shape, domain=positive), label="weight"), device, True)
    pw = tensor(data.draw(arrays(shape[-1:], domain=positive), label="pos_weight"), device, True)
    check_gradients(lambda p, y, w: F.binary_cross_entropy(p, y, w, reduction=reduction),
                    p, y, w, second_order=True)
    check_gradients(lambda x, y, w, pw: F.binary_cross_entropy_with_logits(
        x, y, w, reduction=reduction, pos_weight=pw), x, y, w, pw, second_order=True)


@given(data=st.data())
def test_gradcheck_kl_div(device, data):
    shape = data.draw(small_shapes, label="shape")
    reduction = data.draw(st.sampled_from(REDUCTIONS + ("batchmean",)), label="reduction")
    log_target = data.draw(st.booleans(), label="log_target")
    x = tensor(data.draw(arrays(shape), label="input"), device, True)
    t = tensor(data.draw(arrays(shape, domain=Domain(-2, 2) if log_target else positive)),
               device, True)
    check_gradients(lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
                    x, t, second_order=True)


@given(data=st.data())
def test_gradcheck_cross_entropy_and_nll_class_indices(device, data):
    shape, labels, c = data.draw(class_problem(max_n=3, max_c=4), label="problem")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    smoothing = data.draw(st.sampled_from([0.0, 0.2]), label="label_smoothing")
    if labels.ndim:
        labels = with_ignored(data.draw, labels, -100)
    x = tensor(data.draw(arrays(shape), label="logits"), device, True)
    w = tensor(data.draw(arrays((c,), domain=positive), label="weight"), device, True)
    t = tensor(labels, device)
    check_gradients(lambda x, w: F.cross_entropy(x, t, w, reduction=reduction,
                                                 label_smoothing=smoothing), x, w)
    check_gradients(lambda x: F.nll_loss(x, t, reduction=reduction), x)


@FEWER
@given(data=st.data())
def test_gradgradcheck_cross_entropy(device, data):
    shape, labels, c = data.draw(class_problem(max_n=2, max_c=3), label="problem")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    x = tensor(data.draw(arrays(shape), label="logits"), device, True)
    w = tensor(data.draw(arrays((c,), domain=positive), label="weight"), device)
    t = tensor(labels, device)
    tn.gradgradcheck(lambda x: F.cross_entropy(x, t, w, reduction=reduction,
                                               label_smoothing=0.1), (x,))


@given(data=st.data())
def test_gradcheck_cross_entropy_probabilities(device, data):
    shape, _, c = data.draw(class_problem(max_n=3, max_c=3), label="problem")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    x = tensor(data.draw(arrays(shape), label="logits"), device, True)
    t = tensor(data.draw(arrays(shape, domain=positive), label="target"), device, True)
    w = tensor(data.draw(arrays((c,), domain=positive), label="weight"), device)
    check_gradients(lambda x, t: F.cross_entropy(x, t, w, reduction=reduction,
                                                 label_smoothing=0.1), x, t)


def test_cross_entropy_gradient_is_softmax_minus_one_hot(device):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 5))
    labels = np.array([4, 0, 2, 2])
    x = tensor(logits, device, True)
    F.cross_entropy(x, tensor(labels, device), reduction="sum").backward()
    softmax = np.exp(np_log_softmax(logits, 1))
    assert_close(x.grad, softmax - np.eye(5)[labels])


# --- stability at large logits -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_bce_with_logits_is_stable_at_1e4(device, dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 30.0, -30.0, 100.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.5, 0.5, 0.0])
    pw = 2.0
    expected = (1 - y) * np_softplus(x) + pw * y * np_softplus(-x)
    sig = 0.5 * (1 + np.tanh(x / 2))  # sigmoid with no overflow
    expected_grad = (1 - y) * sig - pw * y * (1 - sig)
    tx = tn.tensor(x, dtype=dtype, device=device, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(
        tx, tn.tensor(y, dtype=dtype, device=device), reduction="none",
        pos_weight=tn.tensor([pw], dtype=dtype, device=device))
    loss.sum().backward()
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert loss.dtype == dtype and np.isfinite(host(loss)).all()
    assert_close(loss, expected, rtol=tol, atol=tol)
    assert_close(tx.grad, expected_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_cross_entropy_is_stable_at_1e4(device, dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [-1e4, -1e4, -1e4], [1e4, 0.0, 1.0]])
    labels = np.array([0, 0, 2, 1])
    expected = -np_log_softmax(logits, 1)[np.arange(4), labels]  # shifted: exact in float64
    expected_grad = np.exp(np_log_softmax(logits, 1)) - np.eye(3)[labels]
    x = tn.tensor(logits, dtype=dtype, device=device, requires_grad=True)
    loss = F.cross_entropy(x, tn.tensor(labels, device=device), reduction="none",
                           label_smoothing=0.0)
    loss.sum().backward()
    assert np.isfinite(host(loss)).all() and np.isfinite(host(x.grad)).all()
    assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    assert_close(x.grad, expected_grad, rtol=1e-6, atol=1e-6)
    smoothed = F.cross_entropy(x.detach(), tn.tensor(labels, device=device), label_smoothing=0.1)
    assert np.isfinite(host(smoothed))


# --- modules -------------------------------------------------------------------------------------


def test_modules_match_functions(device):
    rng = np.random.default_rng(2)
    x, y = tensor(rng.normal(size=(3, 4)), device), tensor(rng.uniform(size=(3, 4)), device)
    p = tensor(rng.uniform(0.1, 0.9, size=(3, 4)), device)
    w = tensor(rng.uniform(0.5, 2, size=4), device)
    labels = tensor(np.array([3, -100, 0]), device)
    logp = F.log_softmax(x, axis=1)
    pairs = [
        (tn.nn.MSELoss(reduction="sum"), F.mse_loss(x, y, reduction="sum")),
        (tn.nn.L1Loss(), F.l1_loss(x, y)),
        (tn.nn.SmoothL1Loss(beta=0.5), F.smooth_l1_loss(x, y, beta=0.5)),
        (tn.nn.HuberLoss(reduction="none", delta=0.3), F.huber_loss(x, y, "none", delta=0.3)),
        (tn.nn.BCELoss(w), F.binary_cross_entropy(p, y, w)),
        (tn.nn.BCEWithLogitsLoss(pos_weight=w), F.binary_cross_entropy_with_logits(
            x, y, pos_weight=w)),
        (tn.nn.KLDivLoss(reduction="batchmean"), F.kl_div(logp, y, reduction="batchmean")),
        (tn.nn.CrossEntropyLoss(w, label_smoothing=0.2), F.cross_entropy(
            x, labels, w, label_smoothing=0.2)),
        (tn.nn.NLLLoss(w, reduction="sum"), F.nll_loss(logp, labels, w, reduction="sum")),
    ]
    inputs = {tn.nn.BCELoss: (p, y), tn.nn.KLDivLoss: (logp, y),
              tn.nn.CrossEntropyLoss: (x, labels), tn.nn.NLLLoss: (logp, labels)}
    for module, expected in pairs:
        assert_close(module(*inputs.get(type(module), (x, y))), host(expected),
                     msg=type(module).__name__)


def test_loss_weights_are_buffers_in_the_state_dict(device):
    w = tn.tensor([1.0, 2.0, 3.0])
    assert list(tn.nn.CrossEntropyLoss(w).state_dict()) == ["weight"]
    assert list(tn.nn.CrossEntropyLoss().state_dict()) == []
    bce = tn.nn.BCEWithLogitsLoss(weight=w, pos_weight=w * 2)
    assert list(bce.state_dict()) == ["weight", "pos_weight"]
    assert list(bce.parameters()) == []
    bce.to(device)  # buffers move with the module, so the loss runs next to the model
    assert bce.weight.device == tn.device(device) and bce.pos_weight.device == tn.device(device)
    x = tn.zeros(2, 3, device=device)
    assert host(bce(x, tn.ones(2, 3, device=device))).shape == ()
    assert repr(tn.nn.MSELoss()) == "MSELoss()"


def test_reduction_is_checked():
    with pytest.raises(ValueError, match=r"MSELoss: reduction must be one of 'mean', 'sum', "
                                         r"'none', got 'avg'"):
        tn.nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="cross_entropy: reduction"):
        F.cross_entropy(tn.zeros(2, 3), tn.tensor([0, 1]), reduction="batchmean")
    assert tn.nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"


@pytest.mark.parametrize("call", [
    lambda: tn.nn.L1Loss(size_average=False),
    lambda: tn.nn.CrossEntropyLoss(reduce=False),
    lambda: F.mse_loss(tn.zeros(3), tn.ones(3), reduce=False),
    lambda: F.nll_loss(tn.zeros(2, 3), tn.tensor([0, 1]), size_average=True),
])
def test_pytorchs_removed_size_average_and_reduce_are_rejected_by_name(call):
    with pytest.raises(TypeError, match="size_average|reduce"):
        call()


def test_options_after_the_tensors_are_keyword_only():
    # In PyTorch the 4th positional argument of cross_entropy is size_average, and MSELoss's
    # first is size_average: taken by position they would silently mean something else here.
    with pytest.raises(TypeError, match="positional"):
        F.cross_entropy(tn.zeros(2, 3), tn.tensor([0, 1]), None, -100)
    with pytest.raises(TypeError, match="positional"):
        tn.nn.MSELoss("sum")
    assert tn.nn.CrossEntropyLoss(tn.ones(3)).weight.shape == (3,)  # weight stays positional


# --- errors --------------------------------------------------------------------------------------

X = tn.zeros(4, 3)
LABELS = tn.tensor([0, 1, 2, 1])
ERRORS = [
    ("label too large", lambda: F.cross_entropy(X, tn.tensor([0, 1, 3, 1])), ValueError,
     r"cross_entropy: target labels must be in \[0, 2\] .*input of shape \(4, 3\).*got label 3"),
    ("negative label", lambda: F.nll_loss(X, tn.tensor([0, -1, 0, 0])), ValueError,
     r"nll_loss: target labels must be in \[0, 2\] \(or ignore_index=-100\).*got label -1"),
    ("float class indices", lambda: F.cross_entropy(X, tn.tensor([0.0, 1.0, 2.0, 1.0])), TypeError,
     r"cross_entropy: class-index target must be an integer tensor .* shape \(4,\), got float32"),
    ("int input", lambda: F.cross_entropy(tn.zeros(4, 3, dtype=tn.int64), LABELS), TypeError,
     r"cross_entropy: input must be a floating-point tensor, got int64 of shape \(4, 3\)"),
    ("int input, mse", lambda: F.mse_loss(tn.tensor([1, 2]), tn.tensor([1.0, 2.0])), TypeError,
     r"mse_loss: input must be a floating-point tensor, got int64"),
    ("batch size mismatch", lambda: F.cross_entropy(X, tn.tensor([0, 1, 2])), ValueError,
     (r"cross_entropy: expected a target of shape \(4,\) for input of shape \(4, 3\), got "
      r"target of shape \(3,\)")),
    ("probabilities of another shape", lambda: F.cross_entropy(X, tn.zeros(4, 2)), ValueError,
     r"cross_entropy: target size \(4, 2\) must be the same as input size \(4, 3\)"),
    ("integer probabilities", lambda: F.cross_entropy(X, tn.zeros(4, 3, dtype=tn.int64)),
     TypeError, r"cross_entropy: .*class probabilities and must be floating-point, got int64"),
    ("nll probabilities", lambda: F.nll_loss(X, tn.zeros(4, 3)), TypeError,
     r"nll_loss: class-index target must be an integer tensor"),
    ("wrong weight", lambda: F.cross_entropy(X, LABELS, tn.ones(4)), ValueError,
     r"cross_entropy: weight must hold one value per class, shape \(3,\)"),
    ("0-d input", lambda: F.nll_loss(tn.tensor(1.0), tn.tensor(0)), ValueError,
     r"nll_loss: input must have a class dimension"),
    ("smoothing", lambda: F.cross_entropy(X, LABELS, label_smoothing=1.5), ValueError,
     r"cross_entropy: label_smoothing must be between 0.0 and 1.0"),
    ("list target", lambda: F.cross_entropy(X, [0, 1, 2, 1]), TypeError,
     r"cross_entropy: target must be a Tensor, got list"),
    ("bce shape", lambda: F.binary_cross_entropy(tn.zeros(3, 1), tn.zeros(3)), ValueError,
     r"binary_cross_entropy: target size \(3,\) must be the same as input size \(3, 1\)"),
    ("bce logits shape", lambda: F.binary_cross_entropy_with_logits(X, tn.zeros(4)), ValueError,
     r"binary_cross_entropy_with_logits: target size \(4,\) must be the same as input size"),
    ("bce range", lambda: F.binary_cross_entropy(tn.tensor([0.5, 1.5]), tn.zeros(2)), ValueError,
     r"binary_cross_entropy: all elements of input .* between 0 and 1"),
    ("pos_weight shape", lambda: F.binary_cross_entropy_with_logits(
        X, X, pos_weight=tn.ones(2)), ValueError,
     r"binary_cross_entropy_with_logits: pos_weight of shape \(2,\) does not broadcast"),
    ("mse broadcast", lambda: F.mse_loss(X, tn.zeros(2)), ValueError,
     r"mse_loss: target of shape \(2,\) does not broadcast with input of shape \(4, 3\)"),
    ("mse weight", lambda: F.mse_loss(X, X, weight=tn.ones(3)), ValueError,
     r"mse_loss: weight must have the input's shape \(4, 3\), got \(3,\)"),
    ("huber delta", lambda: F.huber_loss(X, X, delta=0.0), ValueError,
     r"huber_loss: delta must be > 0"),
    ("smooth_l1 beta", lambda: F.smooth_l1_loss(X, X, beta=-1.0), ValueError,
     r"smooth_l1_loss: beta must be >= 0"),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
def test_error_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_errors_on_the_device(device):
    """A bad label raises ValueError naming it: at the call on the CPU; on a GPU (and the
    stand-in, which wraps a bad index as CuPy does) at the next read of a value, never a
    silently wrong loss. Both cross-entropy paths (fused, and composed with label smoothing)."""
    x = tn.zeros(2, 3, 2, device=device)
    bad = tn.tensor([[0, 1], [5, -100]], device=device)
    for smoothing in (0.0, 0.1):
        with pytest.raises(ValueError, match=r"cross_entropy: target labels must be in \[0, 2\] "
                                             r"\(or ignore_index=-100\) .*got label 5 "
                                             r"\(1 out of range\)"):
            F.cross_entropy(x, bad, label_smoothing=smoothing).item()
        fine = tn.tensor([[0, 1], [5, 2]], device=device)  # 5 ignored this time
        assert F.cross_entropy(x, fine, label_smoothing=smoothing, ignore_index=5
                               ).item() == pytest.approx(math.log(3))  # told once, then clean
    if device != "cpu":
        with pytest.raises(RuntimeError, match="cross_entropy: input is on .* but target is on"):
            F.cross_entropy(x, tn.tensor([[0, 1], [2, 0]]))


def test_shape_mismatch_in_pointwise_losses_warns():
    with pytest.warns(UserWarning, match=r"mse_loss: using a target size \(3,\) that is different "
                                         r"to the input size \(3, 1\)"):
        assert F.mse_loss(tn.zeros(3, 1), tn.zeros(3), reduction="none").shape == (3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(tn.zeros(3), tn.zeros(3))


# --- PyTorch comparison (skipped when torch is not installed) -------------------------------------

CE_GRID = list(itertools.product(["NC", "NCd", "C", "prob", "prob_NCd"], [False, True],
                                 [-100, 1], [0.0, 0.25]))


def _torch():
    return pytest.importorskip("torch")


def _compare(torch, tn_fn, torch_fn, arrays_, grad_of=(0,), device="cpu", rtol=1e-10):
    """Run both libraries on float64 copies of ``arrays_`` for every reduction: values and the
    gradients of the summed loss with respect to the inputs listed in ``grad_of``."""
    for reduction in REDUCTIONS:
        ours = [tensor(a, device, requires_grad=i in grad_of and a.dtype.kind == "f")
                for i, a in enumerate(arrays_)]
        theirs = [torch.tensor(a, requires_grad=i in grad_of and a.dtype.kind == "f")
                  for i, a in enumerate(arrays_)]
        got, want = tn_fn(ours, reduction), torch_fn(theirs, reduction)
        assert_close(got, want.detach().numpy(), rtol=rtol, atol=1e-12, msg=reduction)
        got.sum().backward()
        want.sum().backward()
        for i in grad_of:
            assert_close(ours[i].grad, theirs[i].grad.numpy(), rtol=rtol, atol=1e-12,
                         msg=f"{reduction}: gradient of input {i}")


@pytest.mark.parametrize("kind, weighted, ignore_index, smoothing", CE_GRID)
def test_cross_entropy_and_nll_match_torch(device, kind, weighted, ignore_index, smoothing):
    torch = _torch()
    rng = np.random.default_rng(3)
    shape = {"NC": (5, 4), "NCd": (3, 4, 2), "C": (4,), "prob": (5, 4), "prob_NCd": (3, 4, 2)}[kind]
    logits = rng.normal(size=shape) * 3
    if kind.startswith("prob"):
        target = rng.dirichlet(np.ones(4), size=shape[:1] + shape[2:])  # (N, d, C)
        target = np.moveaxis(target, -1, 1) if len(shape) > 2 else target
    else:
        target = rng.integers(0, 4, size=shape[:1] + shape[2:] if len(shape) > 1 else ())
        if target.ndim:
            target.reshape(-1)[1] = ignore_index
    weight = rng.uniform(0.5, 2.0, size=4) if weighted else None
    if kind.startswith("prob") and ignore_index >= 0:  # refused by both libraries
        with pytest.raises(ValueError, match="ignore_index is not supported for class-prob"):
            F.cross_entropy(tensor(logits, device), tensor(target, device),
                            ignore_index=ignore_index)
        return
    args = [logits, np.asarray(target)] + ([weight] if weighted else [])
    grads = (0, 1) if kind.startswith("prob") else (0,)

    def ours(t, r):
        return F.cross_entropy(t[0], t[1], t[2] if weighted else None, ignore_index=ignore_index,
                               reduction=r, label_smoothing=smoothing)

    def theirs(t, r):
        return torch.nn.functional.cross_entropy(
            t[0], t[1], t[2] if weighted else None, ignore_index=ignore_index, reduction=r,
            label_smoothing=smoothing)

    _compare(torch, ours, theirs, args, grads, device)
    if not kind.startswith("prob") and smoothing == 0:
        _compare(torch, lambda t, r: F.nll_loss(t[0], t[1], t[2] if weighted else None,
                                                ignore_index=ignore_index, reduction=r),
                 lambda t, r: torch.nn.functional.nll_loss(
                     t[0], t[1], t[2] if weighted else None, ignore_index=ignore_index,
                     reduction=r), args, grads, device)


@pytest.mark.parametrize("option", [0.0, 0.5, 1.0, 2.0])
def test_pointwise_losses_match_torch(device, option):
    torch = _torch()
    tf = torch.nn.functional
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3, 4)) * 2, rng.normal(size=(3, 4)) * 2
    w, pw = rng.uniform(0.5, 2, size=(3, 4)), rng.uniform(0.5, 2, size=4)
    p, u = rng.uniform(0.02, 0.98, size=(3, 4)), rng.uniform(size=(3, 4))
    logp = np_log_softmax(x, 1)
    delta = max(option, 0.5)
    cases = [
        (lambda t, r: F.mse_loss(t[0], t[1], reduction=r, weight=t[2] if option else None),
         lambda t, r: tf.mse_loss(t[0], t[1], reduction=r, weight=t[2] if option else None),
         [x, y, w], (0, 1)),
        (lambda t, r: F.l1_loss(t[0], t[1], reduction=r, weight=t[2] if option else None),
         lambda t, r: tf.l1_loss(t[0], t[1], reduction=r, weight=t[2] if option else None),
         [x, y, w], (0, 1)),
        (lambda t, r: F.smooth_l1_loss(t[0], t[1], reduction=r, beta=option),
         lambda t, r: tf.smooth_l1_loss(t[0], t[1], reduction=r, beta=option), [x, y], (0, 1)),
        (lambda t, r: F.huber_loss(t[0], t[1], r, delta, weight=t[2] if option else None),
         lambda t, r: tf.huber_loss(t[0], t[1], r, delta, weight=t[2] if option else None),
         [x, y, w], (0, 1)),
        (lambda t, r: F.binary_cross_entropy(t[0], t[1], t[2] if option else None, reduction=r),
         lambda t, r: tf.binary_cross_entropy(t[0], t[1], t[2] if option else None, reduction=r),
         [p, u, w], (0,)),
        (lambda t, r: F.binary_cross_entropy_with_logits(
            t[0] * 10, t[1], t[2], reduction=r, pos_weight=t[3] * option),
         lambda t, r: tf.binary_cross_entropy_with_logits(
             t[0] * 10, t[1], t[2], reduction=r, pos_weight=t[3] * option),
         [x, u, w, pw], (0, 1)),
        (lambda t, r: F.kl_div(t[0], t[1], reduction=r, log_target=option > 1),
         lambda t, r: tf.kl_div(t[0], t[1], reduction=r, log_target=option > 1),
         [logp, np.log(u) if option > 1 else u], (0, 1)),
    ]
    for i, (ours, theirs, args, grads) in enumerate(cases):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's kl_div warns about reduction='mean'
            _compare(torch, ours, theirs, args, grads, device, rtol=1e-9)


def test_kl_div_batchmean_matches_torch():
    torch = _torch()
    rng = np.random.default_rng(5)
    x, t = np_log_softmax(rng.normal(size=(4, 3)), 1), rng.dirichlet(np.ones(3), size=4)
    want = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="batchmean")
    assert_close(F.kl_div(tn.tensor(x), tn.tensor(t), reduction="batchmean"), want.numpy())


# --- documentation -------------------------------------------------------------------------------


def test_docs_losses_snippets_run():
    text = (Path(__file__).parent.parent / "docs" / "nn.md").read_text()
    section = re.search(r"^## Losses\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert section, "docs/nn.md has no '## Losses' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/nn.md (Losses)", "exec"), {})  # noqa: S102 - our own docs
