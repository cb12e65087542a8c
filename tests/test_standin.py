"""The stand-in device proves the GPU code path: device arrays refuse every implicit trip to host
NumPy, as CuPy's do, so a stray ``np.`` call in an op fails here in CI instead of on a user's GPU.

The meta-test at the end shows exactly that: one op with a stray ``np.exp`` passes on CPU and fails
on the stand-in, while the same op written with ``ctx.xp`` passes on both.
"""

import numpy as np
import pytest

import tinynet as tn
from tinynet.backend.standin import StandinArray

XP = tn.Device("standin").xp


def _standin(values):
    return tn.tensor(values, dtype=tn.float64, device="standin").data


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------


def test_standin_arrays_refuse_conversion_to_host_numpy():
    a = _standin([1.0, 2.0, 3.0])
    assert isinstance(a, StandinArray)
    for convert in (np.asarray, np.array, lambda x: np.ascontiguousarray(x)):
        with pytest.raises(TypeError, match=r"\.cpu\(\)"):
            convert(a)


@pytest.mark.parametrize("call", [
    lambda a: np.exp(a),
    lambda a: np.add(a, 1.0),
    lambda a: np.sum(a),
    lambda a: np.concatenate([a, a]),
    lambda a: np.where(a > 0, a, 0.0),
    lambda a: np.matmul(a, a),
])
def test_numpy_functions_on_standin_data_raise(call):
    with pytest.raises(TypeError, match="device array"):
        call(_standin([1.0, -2.0]))


@pytest.mark.parametrize("mix", [
    lambda a, h: a + h,
    lambda a, h: h + a,
    lambda a, h: a * h,
    lambda a, h: a @ h,
    lambda a, h: XP.add(a, h),
    lambda a, h: XP.concatenate([a, h]),
    lambda a, h: XP.where(a > 0, h, a),
])
def test_mixing_host_arrays_into_standin_math_raises(mix):
    with pytest.raises(TypeError):
        mix(_standin([1.0, 2.0]), np.array([3.0, 4.0]))


def test_standin_namespace_works_on_standin_arrays():
    a = _standin([[1.0, -2.0], [3.0, 4.0]])
    out = XP.exp(XP.matmul(a, a.T)) + 1
    assert isinstance(out, StandinArray)
    host = a.get()
    np.testing.assert_array_equal(out.get(), np.exp(host @ host.T) + 1)


def test_reductions_return_0d_arrays_not_scalars():
    a = _standin([[1.0, 2.0], [3.0, 4.0]])
    for result in (a.sum(), a.max(), a.mean(), XP.sum(a), XP.max(a), XP.linalg.norm(a), a[0, 1]):
        assert isinstance(result, StandinArray) and result.shape == (), repr(result)
    assert float(a.sum()) == 10.0 and a.mean().item() == 2.5
    # NumPy, by contrast, returns a scalar: the stand-in exists to catch code relying on that
    assert isinstance(np.arange(4.0).sum(), np.generic)


def test_explicit_exits_copy_to_host():
    a = _standin([1.0, 2.0])
    host = a.get()
    assert type(host) is np.ndarray and host.tolist() == [1.0, 2.0]
    host[0] = 99.0
    assert a.tolist() == [1.0, 2.0]  # .get() is a copy, as a device->host transfer is


def test_standin_tensors_refuse_host_numpy_and_dlpack():
    t = tn.tensor([1.0, 2.0], device="standin")
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        t.numpy()
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        np.asarray(t)
    with pytest.raises(TypeError):
        np.exp(t.data)
    with pytest.raises(BufferError):
        np.from_dlpack(t)  # a CUDA array cannot become a host NumPy view either
    np.testing.assert_array_equal(t.cpu().numpy(), [1.0, 2.0])
    assert t.tolist() == [1.0, 2.0] and t.sum().item() == 3.0


def test_repr_of_a_standin_tensor_names_its_device():
    assert "device='standin'" in repr(tn.tensor([1.0, 2.0], device="standin"))


# --------------------------------------------------------------------------------------------
# The meta-test: a stray np. call is caught on the stand-in
# --------------------------------------------------------------------------------------------


class StrayNumpyExp(tn.Function):
    """exp(x), forward written with a stray host ``np.exp``: works on CPU only."""

    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)  # the bug this file exists to catch
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class StrayNumpyExpBackward(tn.Function):
    """exp(x), backward written with a stray host ``np.exp``: works on CPU only."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * np.exp(x)  # the bug this file exists to catch


class DeviceExp(tn.Function):
    """exp(x) written against ``ctx.xp``: works everywhere."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


def _exp_and_grad(fn, device):
    x = tn.tensor([-1.0, 0.0, 0.5, 2.0], dtype=tn.float64, device=device, requires_grad=True)
    y = fn.apply(x)
    y.sum().backward()
    return y.cpu().numpy(), x.grad.cpu().numpy()


@pytest.mark.parametrize("fn", [StrayNumpyExp, StrayNumpyExpBackward, DeviceExp])
def test_every_version_is_right_on_cpu(fn):
    y, grad = _exp_and_grad(fn, "cpu")
    expected = np.exp([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(y, expected)
    np.testing.assert_allclose(grad, expected)


@pytest.mark.parametrize("fn", [StrayNumpyExp, StrayNumpyExpBackward])
def test_a_stray_numpy_call_fails_on_the_standin(fn):
    with pytest.raises(TypeError, match="device array"):
        _exp_and_grad(fn, "standin")


def test_the_xp_version_passes_on_every_device(device):
    y, grad = _exp_and_grad(DeviceExp, device)
    expected = np.exp([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(y, expected)
    np.testing.assert_allclose(grad, expected)
    x = tn.tensor([0.3, -0.8], dtype=tn.float64, device=device, requires_grad=True)
    assert tn.gradcheck(DeviceExp.apply, (x,))


# --------------------------------------------------------------------------------------------
# A whole training step on the stand-in equals the CPU one
# --------------------------------------------------------------------------------------------


def _mlp_step(device: str, weights: list, x_host: np.ndarray, labels_host: np.ndarray):
    """Forward and backward of a 2-layer MLP with NLL loss; returns loss, logits and gradients."""
    params = [tn.tensor(w, device=device, requires_grad=True) for w in weights]
    w1, b1, w2, b2 = params
    x = tn.tensor(x_host, device=device)
    labels = tn.tensor(labels_host, device=device)
    hidden = (x @ w1 + b1).relu()  # (B, H)
    logits = hidden @ w2 + b2  # (B, C)
    log_probs = logits.log_softmax(axis=1)
    rows = tn.arange(x.shape[0], device=device)
    loss = -log_probs[rows, labels].mean()
    loss.backward()
    assert loss.device == device and all(p.grad.device == device for p in params)
    return [loss.cpu().numpy(), logits.detach().cpu().numpy()] + [p.grad.cpu().numpy()
                                                                 for p in params]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_forward_and_backward_match_cpu(dtype):
    rng = np.random.default_rng(7)
    batch, d_in, hidden, classes = 16, 5, 8, 3
    weights = [rng.standard_normal((d_in, hidden)), rng.standard_normal(hidden),
               rng.standard_normal((hidden, classes)), rng.standard_normal(classes)]
    weights = [w.astype(dtype) for w in weights]
    x = rng.standard_normal((batch, d_in)).astype(dtype)
    labels = rng.integers(0, classes, batch)
    labels[:4] = 1  # repeated classes: the NLL gradient scatters into repeated columns

    on_cpu = _mlp_step("cpu", weights, x, labels)
    on_standin = _mlp_step("standin", weights, x, labels)
    assert all(np.abs(g).sum() > 0 for g in on_cpu[2:])  # every parameter gets a gradient
    for a, b in zip(on_cpu, on_standin):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
