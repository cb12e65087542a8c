"""tinynet.backend.kernels: every fused kernel against the plain array code it replaces.

On the stand-in device a kernel runs its NumPy twin inside one counted array call, so these tests
check, without a GPU, that (1) the twin computes what the unfused code computes (bit for bit where
the arithmetic is IEEE-exact), (2) the arguments the library passes line up with the kernel's
parameter list, and (3) the fused path is one call. On a CUDA machine the last test runs every
CUDA kernel against its twin (the GPU check, benchmarks/gpu_check.py, runs it).
"""

import inspect
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.backend import kernels

STANDIN = tn.device("standin")


def on(device, array):
    return tn.backend.transfer(np.array(array), tn.device("cpu"), tn.device(device))


def back(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _param_names(params: str) -> list:
    return [p.split()[-1] for p in params.split(",")]


@pytest.mark.parametrize("kernel", kernels.ALL_KERNELS, ids=lambda k: k.name)
def test_each_twin_takes_the_kernels_parameters_in_order(kernel):
    """A CUDA kernel and its twin are called with the same arguments: same names, same order."""
    names = _param_names(kernel.in_params)
    outputs = _param_names(kernel.out_params)
    twin = [p for p in inspect.signature(kernel.twin).parameters
            if p not in ("axis", "keepdims")]
    # A twin takes the outputs when the library passes them (in-place updates), else returns them.
    if kernel.twin.__name__ != "<lambda>":
        assert twin in (names, names + outputs), \
            f"{kernel.name}: twin {twin} vs CUDA parameters {names} -> {outputs}"
    else:
        assert len(twin) in (len(names), len(names + outputs))
    assert kernel.operation.count("{") == kernel.operation.count("}")
    assert re.fullmatch(r"tinynet_\w+", kernel.name)


# --- optimizers: the fused step against _update, bit for bit, in one call ---------------------

def _adam_options(draw):
    decoupled = draw(st.booleans())
    return dict(lr=draw(st.floats(1e-4, 0.5)),
                betas=(draw(st.floats(0.0, 0.99)), draw(st.floats(0.5, 0.9999))),
                eps=draw(st.sampled_from([1e-8, 1e-3])),
                weight_decay=draw(st.sampled_from([0.0, 0.05])), maximize=draw(st.booleans()),
                decoupled_weight_decay=decoupled)


def _sgd_options(draw):
    momentum = draw(st.sampled_from([0.5, 0.9]))
    nesterov = draw(st.booleans())
    return dict(lr=draw(st.floats(1e-4, 0.5)), momentum=momentum, nesterov=nesterov,
                dampening=0.0 if nesterov else draw(st.sampled_from([0.0, 0.3])),
                weight_decay=draw(st.sampled_from([0.0, 0.05])), maximize=draw(st.booleans()))


@settings(max_examples=30)
@given(data=st.data(), name=st.sampled_from(["Adam", "SGD"]), size=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]), step=st.integers(1, 50))
def test_fused_optimizer_steps_equal_update_bit_for_bit(data, name, size, dtype, step):
    options = (_adam_options if name == "Adam" else _sgd_options)(data.draw)
    rng = np.random.default_rng(size)
    w, g = rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype)
    slots = {"Adam": {"exp_avg": rng.standard_normal(size).astype(dtype) * 0.1,
                      "exp_avg_sq": rng.random(size).astype(dtype) * 0.01},
             "SGD": {"momentum_buffer": rng.standard_normal(size).astype(dtype)}}[name]
    opt = getattr(tn.optim, name)([tn.zeros(1, requires_grad=True)], **options)
    group = opt.param_groups[0]
    results = {}
    for how in ("update", "fused"):
        xp = STANDIN.xp
        ww, gg = on("standin", w), on("standin", g)
        arrays = {k: on("standin", v) for k, v in slots.items()}
        with tn.backend.count_calls() as counts:
            if how == "update":
                opt._update(xp, ww, gg, arrays, step, group)
            else:
                assert opt._fused_step(xp, ww, gg, arrays, step, group)
        if how == "fused":
            assert counts.array_calls == 1 and counts.syncs == 0
        results[how] = [back(ww)] + [back(arrays[k]) for k in sorted(arrays)]
    for want, got in zip(results["update"], results["fused"]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(back(gg), g)  # the gradient is never written


def test_fused_steps_decline_what_they_do_not_cover():
    xp = STANDIN.xp
    w = on("standin", np.ones(3, np.float32))
    amsgrad = tn.optim.Adam([tn.zeros(1, requires_grad=True)], amsgrad=True)
    assert not amsgrad._fused_step(xp, w, w, {}, 1, amsgrad.param_groups[0])
    plain = tn.optim.SGD([tn.zeros(1, requires_grad=True)], lr=0.1)
    assert not plain._fused_step(xp, w, w, {}, None, plain.param_groups[0])
    first = tn.optim.SGD([tn.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    assert not first._fused_step(xp, w, w, {"momentum_buffer": None}, None,
                                 first.param_groups[0])  # the first step makes the buffer


# --- activations and the softmax cross entropy ----------------------------------------------

@given(values=st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=30))
def test_relu_backward_is_the_masked_gradient(values):
    y = np.maximum(np.asarray(values, np.float32), 0)
    g = np.linspace(-1, 1, y.size, dtype=np.float32)
    with tn.backend.count_calls() as counts:
        got = kernels.RELU_BACKWARD(STANDIN.xp, on("standin", g), on("standin", y))
    assert counts.array_calls == 1
    np.testing.assert_array_equal(back(got), g * (y > 0))


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-7), (np.float64, 1e-15)])
def test_erf_is_one_call_and_accurate(dtype, tolerance):
    x = np.linspace(-6, 6, 241).astype(dtype)
    t = tn.tensor(x, device="standin")
    with tn.backend.count_calls() as counts:
        y = tn.erf(t)
    assert (counts.array_calls, counts.syncs) == (1, 0)
    got = back(y.data)
    want = np.array([math.erf(v) for v in x.astype(float)])
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    assert got.dtype == dtype


def test_gelu_costs_a_few_calls_and_no_sync():
    x = tn.randn(4, 5, device="standin", requires_grad=True)
    with tn.backend.count_calls() as counts:
        tn.nn.functional.gelu(x).sum().backward()
    # erf is one kernel in forward and one in backward (the series would be ~400 calls and
    # boolean-mask syncs); the rest is GELU's arithmetic around it.
    assert counts.syncs == 0 and counts.calls["erf"] == 2 and counts.array_calls <= 20


@settings(max_examples=20)
@given(data=st.data(), rows=st.integers(1, 6), classes=st.integers(1, 5),
       reduction=st.sampled_from(["mean", "sum", "none"]), weighted=st.booleans())
def test_fused_cross_entropy_matches_the_composed_one(data, rows, classes, reduction, weighted):
    """The fused op (5 calls forward, 1 backward on the stand-in) against log_softmax + gather +
    reduce written with tinynet ops, values and gradients, with some labels ignored."""
    rng = np.random.default_rng(rows * 7 + classes)
    x = rng.standard_normal((rows, classes)) * 3
    labels = np.array(data.draw(st.lists(st.sampled_from([*range(classes), -100]),
                                         min_size=rows, max_size=rows)))
    if (labels == -100).all():
        labels[0] = 0
    w = rng.random(classes) + 0.5 if weighted else None
    got, grads = {}, {}
    for how in ("fused", "composed"):
        t = tn.tensor(x, device="standin", requires_grad=True)
        y = tn.tensor(labels, device="standin")
        weight = None if w is None else tn.tensor(w, device="standin")
        with tn.backend.count_calls() as counts:
            if how == "fused":
                loss = tn.nn.functional.cross_entropy(t, y, weight, reduction=reduction)
            else:
                keep = labels != -100
                safe = np.where(keep, labels, 0)
                row_w = keep * (1.0 if w is None else w[safe])
                picked = tn.log_softmax(t, 1)[tn.arange(rows, device="standin"),
                                              tn.tensor(safe, device="standin")]
                per_row = -picked * tn.tensor(row_w, device="standin")
                loss = per_row if reduction == "none" else per_row.sum()
                if reduction == "mean":
                    loss = loss / float(row_w.sum())
        if how == "fused" and not weighted:
            assert counts.calls["tinynet_ce_rows"] == 1 and counts.syncs == 0
            assert counts.array_calls - counts.calls["zeros"] <= 5  # zeros: the flags, once
        (loss if reduction != "none" else loss.sum()).backward()
        got[how], grads[how] = back(loss.data), back(t.grad.data)
    np.testing.assert_allclose(got["fused"], got["composed"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["fused"], grads["composed"], rtol=1e-12, atol=1e-12)


def test_a_bad_label_gives_nan_and_raises_at_the_next_read():
    x = tn.zeros(3, 4, device="standin", requires_grad=True)
    loss = tn.nn.functional.cross_entropy(x, tn.tensor([0, 9, 1], device="standin"),
                                          reduction="none")
    assert tn.backend.checks.pending(STANDIN) is not None  # nothing read yet: no sync
    with pytest.raises(ValueError, match=r"got label 9 \(1 out of range\); checked on standin"):
        loss.sum().item()
    row = back(loss.data)  # read directly: the flags were cleared by the error
    assert np.isnan(row[1]) and np.isfinite(row[[0, 2]]).all()
    loss.sum().backward()
    assert np.isnan(back(x.grad.data)[1]).all() and np.isfinite(back(x.grad.data)[0]).all()


def test_deferred_checks_travel_with_the_next_read():
    """Several checks, one read: one sync (the values and the flags in one transfer)."""
    x = tn.arange(6.0, device="standin")
    idx = tn.tensor([0, 5, -6], device="standin")
    emb = tn.nn.Embedding(4, 2, device="standin")
    with tn.backend.count_calls() as counts:
        picked = x[idx]
        vectors = emb(tn.tensor([3, 1], device="standin"))
        total = picked.sum() + vectors.sum()
        total.item()
    assert counts.syncs == 1 and counts.calls["tinynet_index_check"] == 2  # x[idx], the table
    bad = x[tn.tensor([6], device="standin")]
    with tn.backend.count_calls() as counts, pytest.raises(IndexError, match="index 6 is out of "
                                                            "bounds for axis 0 with size 6"):
        bad.tolist()
    assert counts.sync_calls == {"get": 1}  # the flags were read, and raised before the data


def test_the_check_raises_the_first_failed_slot_and_clears():
    with pytest.raises(IndexError, match="index 4 is out of range"):
        tn.nn.Embedding(4, 2, device="standin")(tn.tensor([4], device="standin")).tolist()
    assert tn.backend.checks.pending(STANDIN) is None
    tn.nn.Embedding(4, 2, device="standin")(tn.tensor([3], device="standin")).tolist()


def test_of_two_failed_checks_the_one_launched_first_is_reported():
    """The first bad value is the cause; what it caused later is not. Slot numbers follow first
    use in the process, so the check sites are made here in the reverse of their launch order
    (11 classes: a size no other test checks against, so both slots are new here)."""
    x = tn.zeros(2, 11, device="standin")
    labels = tn.tensor([0, 17], device="standin")
    rows = tn.tensor([0, 1], device="standin")
    with pytest.raises(IndexError, match="getitem: index 17"):  # gives the later check a low slot
        x[rows, labels].sum().item()
    # the label check first, then the getitem its labels reach: the label error is the one told
    loss = tn.nn.functional.cross_entropy(x, labels, reduction="none")
    picked = x[rows, labels]
    with pytest.raises(ValueError, match=r"cross_entropy: target labels .* got label 17"):
        (loss.sum() + picked.sum()).item()
    assert tn.backend.checks.pending(STANDIN) is None


# --- the counter-based random stream ------------------------------------------------------------

def _splitmix64(key: int, counter: int) -> int:
    """SplitMix64 in Python integers (independent of the vectorised twin)."""
    mask = (1 << 64) - 1
    z = (key + counter * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_the_stream_is_splitmix64_of_key_and_counter():
    key, start = 0x0123456789ABCDEF, (1 << 64) - 3  # the counter wraps around, as in CUDA
    words = kernels.mix64(key, start, 6)
    assert [int(w) for w in words] == [_splitmix64(key, (start + i) % (1 << 64))
                                       for i in range(6)]
    u = kernels.UNIFORM(STANDIN.xp, key, start, 0.0, 1.0, STANDIN.xp.empty(6, np.float32))
    assert back(u).tolist() == [(_splitmix64(key, (start + i) % (1 << 64)) >> 40) / 2**24
                                for i in range(6)]


def test_counter_stream_draws_are_equal_on_every_device_and_advance():
    g1, g2 = tn.Generator(5), tn.Generator(5)
    shape = (256, 300)  # >= COUNTER_STREAM_MIN elements: drawn on the device
    assert math.prod(shape) >= tn.backend.random.COUNTER_STREAM_MIN
    a = tn.randn(*shape, generator=g1).numpy()
    with tn.backend.count_calls() as counts:
        b = tn.randn(*shape, generator=g2, device="standin")
    assert (counts.array_calls, counts.uploads) == (1, 0)
    np.testing.assert_array_equal(a, b.cpu().numpy())
    assert g1.get_state() == g2.get_state()
    assert g1.get_state()["counter_stream"]["counter"] == math.prod(shape)
    c = tn.randn(*shape, generator=g1).numpy()
    assert not np.array_equal(a, c)
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01 and np.abs(a).max() < 6.7
    u = tn.rand(*shape, generator=g1, dtype=tn.float64).numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


def test_dropout_masks_are_drawn_on_the_device():
    x = tn.ones(64, 100, device="standin", requires_grad=True)
    tn.manual_seed(0)
    with tn.backend.count_calls() as counts:
        y = tn.nn.functional.dropout(x, 0.3)
        y.sum().backward()
    assert counts.uploads == 0 and counts.calls["tinynet_dropout_mask"] == 1
    kept = back(y.data) != 0
    assert abs(kept.mean() - 0.7) < 0.03
    np.testing.assert_array_equal(back(x.grad.data), kept * np.float32(1 / 0.7))
    tn.manual_seed(0)
    np.testing.assert_array_equal(back(tn.nn.functional.dropout(x, 0.3).data), back(y.data))


# --- on a GPU: each CUDA kernel against its twin ------------------------------------------------

@pytest.mark.gpu
def test_cuda_kernels_match_their_twins():
    """Run by ``pytest --device cuda -m gpu`` on a CUDA machine (skipped elsewhere): the IEEE-exact
    kernels bit for bit, those with exp/log/cos to a few ulp."""
    if not tn.cuda.is_available():
        pytest.skip("cuda: CuPy or a CUDA device is missing")
    import cupy

    xp = tn.device("cuda").xp
    rng = np.random.default_rng(0)
    w, g, m, v = (rng.standard_normal(1000).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    args = (-1e-3, 0.1, 0.999, 1e-3, 0.3, 1e-8, 0.01, 1.0, -1.0)
    host = [a.copy() for a in (w, m, v)]
    kernels.ADAM.twin(g, *args, *host)
    dev = [cupy.asarray(a) for a in (w, m, v)]
    kernels.ADAM(xp, cupy.asarray(g), *args, *dev)
    for h, d in zip(host, dev):
        np.testing.assert_array_equal(d.get(), h)
    host = [w.copy(), m.copy()]
    kernels.SGD_MOMENTUM.twin(g, 0.1, 0.9, 0.7, 0.01, -1.0, 1, *host)
    dev = [cupy.asarray(w), cupy.asarray(m)]
    kernels.SGD_MOMENTUM(xp, cupy.asarray(g), 0.1, 0.9, 0.7, 0.01, -1.0, 1, *dev)
    for h, d in zip(host, dev):
        np.testing.assert_array_equal(d.get(), h)
    for kernel, dtype in ((kernels.UNIFORM, np.float32), (kernels.UNIFORM, np.float64)):
        out = kernel(xp, 99, 12345, -2.0, 4.0, cupy.empty(4097, dtype)).get()
        np.testing.assert_array_equal(out, kernel.twin(99, 12345, -2.0, 4.0, np.empty(4097, dtype)))
    normal = kernels.NORMAL(xp, 7, 0, 0.5, 2.0, cupy.empty(100_000, np.float32)).get()
    want = kernels.NORMAL.twin(7, 0, 0.5, 2.0, np.empty(100_000, np.float32))
    np.testing.assert_allclose(normal, want, rtol=1e-6, atol=1e-6)
    mask = kernels.DROPOUT_MASK(xp, np.float32(0.8), 1.25, 3, 10, cupy.empty((64, 33), np.float32))
    np.testing.assert_array_equal(
        mask.get(), kernels.DROPOUT_MASK.twin(np.float32(0.8), 1.25, 3, 10,
                                              np.empty((64, 33), np.float32)))
    y = np.maximum(rng.standard_normal(999).astype(np.float32), 0)
    np.testing.assert_array_equal(
        kernels.RELU_BACKWARD(xp, cupy.asarray(g[:999]), cupy.asarray(y)).get(),
        kernels.RELU_BACKWARD.twin(g[:999], y))
    x = rng.standard_normal((37, 11)).astype(np.float32) * 4
    labels = rng.integers(0, 11, 37)
    labels[3], labels[5] = -100, 11  # one ignored, one out of range
    xm = x.max(axis=1, keepdims=True)
    s = kernels.SUM_EXP(xp, cupy.asarray(x), cupy.asarray(xm), axis=1, keepdims=True)
    np.testing.assert_allclose(s.get(), kernels.SUM_EXP.twin(x, xm, axis=1, keepdims=True),
                               rtol=1e-6)
    s = s.get()
    rows_h = kernels.CE_ROWS.twin(s.ravel(), xm.ravel(), labels, 1.0, x, 11, -100, math.nan, 0,
                                  np.empty((37, 2), np.float32), np.zeros(2))
    flags = cupy.zeros(2)
    out = cupy.empty((37, 2), np.float32)
    kernels.CE_ROWS(xp, cupy.asarray(s.ravel()), cupy.asarray(xm.ravel()), cupy.asarray(labels),
                    1.0, cupy.asarray(x), 11, -100, math.nan, 0, out, flags)
    np.testing.assert_allclose(out.get(), rows_h[0], rtol=1e-5, atol=1e-6)
    assert flags.get().tolist() == [1.0, 11.0]
    grad = kernels.CE_GRAD(xp, cupy.asarray(x), cupy.asarray(xm), cupy.asarray(s),
                           cupy.asarray(labels[:, None]), 1.0, cupy.asarray(np.float32(0.5)),
                           cupy.asarray(np.float32(35)), 11, -100, math.nan)
    np.testing.assert_allclose(
        grad.get(), kernels.CE_GRAD.twin(x, xm, s, labels[:, None], 1.0, np.float32(0.5),
                                         np.float32(35), 11, -100, math.nan),
        rtol=1e-5, atol=1e-7)
    erf = tn.erf(tn.tensor(np.linspace(-5, 5, 1001), device="cuda")).cpu().numpy()
    np.testing.assert_allclose(erf, kernels._erf_twin(np.linspace(-5, 5, 1001)), rtol=1e-13,
                               atol=1e-15)
