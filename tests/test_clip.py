"""tn.nn.utils.clip_grad_norm_ / clip_grad_value_ against a NumPy reference (and torch when
installed), in place, on every device."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinynet as tn
from tinynet.nn.utils import clip_grad_norm_, clip_grad_value_

try:
    import torch
except ImportError:  # CI has no torch: the comparison is skipped
    torch = None

grad_arrays = st.lists(
    arrays(np.float64, st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
           elements=st.floats(-100, 100)),
    min_size=1, max_size=3)


def with_grads(grads, device, dtype=None):
    params = []
    for g in grads:
        p = tn.zeros(g.shape, dtype=dtype or g.dtype, device=device, requires_grad=True)
        p.grad = tn.tensor(g.astype(dtype or g.dtype), device=device)
        params.append(p)
    return params


def host(t):
    return np.array(t.detach().cpu().numpy(), copy=True)


def reference_norm(grads, norm_type):
    flat = np.concatenate([g.ravel() for g in grads])
    if norm_type == math.inf:
        return np.max(np.abs(flat))
    return np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)


@given(grads=grad_arrays, norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf]),
       max_norm=st.floats(0.01, 500))
def test_clip_grad_norm_matches_numpy(device, grads, norm_type, max_norm):
    params = with_grads(grads, device)
    arrays_before = [p.grad.data for p in params]
    total = clip_grad_norm_(params, max_norm, norm_type)
    want_total = reference_norm(grads, norm_type)
    assert float(total) == pytest.approx(want_total, rel=1e-9, abs=1e-12)
    assert total.device == device and total.shape == ()
    coef = min(1.0, max_norm / (want_total + 1e-6))
    for p, g, arr in zip(params, grads, arrays_before):
        np.testing.assert_allclose(host(p.grad), g * coef, rtol=1e-9, atol=1e-12)
        assert p.grad.data is arr  # in place
    clipped = reference_norm([host(p.grad) for p in params], norm_type)
    assert clipped <= max_norm * (1 + 1e-9) or clipped == pytest.approx(want_total)


def test_clip_grad_norm_float32_and_direction(device):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(
        np.float32)]
    params = with_grads(grads, device)
    total = clip_grad_norm_(params, max_norm=0.5)
    assert total.dtype == tn.float32
    joint = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    assert float(total) == pytest.approx(joint, rel=1e-6)
    new = np.concatenate([host(p.grad).ravel() for p in params])
    old = np.concatenate([g.ravel() for g in grads])
    assert np.linalg.norm(new) == pytest.approx(0.5, rel=1e-5)  # clipped to max_norm ...
    np.testing.assert_allclose(new / np.linalg.norm(new), old / np.linalg.norm(old), rtol=1e-5,
                               atol=1e-6)  # ... along the same direction


def test_clip_grad_norm_skips_missing_grads_and_takes_one_tensor(device):
    a = tn.zeros(3, device=device, requires_grad=True)
    b = tn.zeros(2, device=device, requires_grad=True)
    a.grad = tn.tensor([3.0, 0.0, 4.0], device=device)
    total = clip_grad_norm_([a, b], max_norm=1.0)
    assert float(total) == pytest.approx(5.0) and b.grad is None
    np.testing.assert_allclose(host(a.grad), np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-6), rtol=1e-6)
    a.grad = tn.tensor([3.0, 0.0, 4.0], device=device)
    assert float(clip_grad_norm_(a, max_norm=10.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(host(a.grad), [3.0, 0.0, 4.0], rtol=1e-6)  # within: unchanged
    assert float(clip_grad_norm_([b], max_norm=1.0)) == 0.0  # no gradients at all


def test_clip_grad_norm_non_finite(device):
    (p,) = with_grads([np.array([1.0, np.inf])], device)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isinf(float(clip_grad_norm_([p], 1.0)))  # PyTorch's default: no error


def test_clip_grad_norm_works_with_module_parameters(device):
    class Two(tn.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = tn.nn.Parameter(tn.ones((2, 2), device=device))
            self.v = tn.nn.Parameter(tn.ones(2, device=device))

    model = Two()
    (model.w.sum() * 3 + model.v.sum() * 4).backward()  # grads: all 3 (4 of them), all 4 (2)
    total = tn.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    assert float(total) == pytest.approx(math.sqrt(4 * 9 + 2 * 16), rel=1e-6)


@given(grads=grad_arrays, clip=st.floats(0.0, 50))
def test_clip_grad_value_matches_numpy(device, grads, clip):
    params = with_grads(grads, device)
    arrays_before = [p.grad.data for p in params]
    assert clip_grad_value_(params, clip) is None
    for p, g, arr in zip(params, grads, arrays_before):
        np.testing.assert_array_equal(host(p.grad), np.clip(g, -clip, clip))
        assert p.grad.data is arr


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("norm_type", [0.0, 1.0, 2.0, 3.5, math.inf])
@pytest.mark.parametrize("max_norm", [0.3, 1e3])
def test_clip_grad_norm_matches_torch(device, norm_type, max_norm):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (5,), (1,)]]
    tparams = []
    for g in grads:
        t = torch.zeros(g.shape, requires_grad=True)
        t.grad = torch.tensor(g)
        tparams.append(t)
    params = with_grads(grads, device)
    want = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    got = clip_grad_norm_(params, max_norm, norm_type)
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(host(p.grad), t.grad.numpy(), rtol=1e-6, atol=1e-7)
