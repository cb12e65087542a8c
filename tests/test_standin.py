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


# --------------------------------------------------------------------------------------------
# CuPy's index rule: out-of-range integer-array indices wrap around
# --------------------------------------------------------------------------------------------


def test_out_of_range_index_arrays_wrap_around_as_on_cupy():
    base = np.arange(12.0).reshape(3, 4)
    a = tn.tensor(base, device="standin").data
    idx = tn.tensor([5, -4, 1], device="standin").data  # 5 -> 2 and -4 -> 2 along an axis of 3
    np.testing.assert_array_equal(a[idx].get(), base[[2, 2, 1]])
    np.testing.assert_array_equal(a[1, idx].get(), base[1, [1, 0, 1]])  # axis 1 has 4
    np.testing.assert_array_equal(a[..., idx].get(), base[:, [1, 0, 1]])
    rows, cols = tn.tensor([3, 0], device="standin").data, tn.tensor([4, 7], device="standin").data
    np.testing.assert_array_equal(a[rows, cols].get(), base[[0, 0], [0, 3]])
    np.testing.assert_array_equal(XP.take(a, idx, axis=0).get(), base[[2, 2, 1]])
    np.testing.assert_array_equal(XP.take(a, tn.tensor([13], device="standin").data).get(), [1.0])

    b = XP.zeros(3)
    b[tn.tensor([4], device="standin").data] = 1.0
    XP.add.at(b, tn.tensor([-1, 5, 5], device="standin").data, 1.0)
    np.testing.assert_array_equal(b.get(), [0.0, 1.0, 3.0])
    mask = a > 5  # boolean masks are not integer indices: unchanged
    np.testing.assert_array_equal(a[mask].get(), base[base > 5])
    with pytest.raises(IndexError):
        a[3]  # a host integer is checked on the host, by CuPy too
    with pytest.raises(IndexError):
        np.arange(3)[np.array([5])]  # what NumPy (the CPU device) does instead


# --------------------------------------------------------------------------------------------
# Counting what a GPU pays for: array calls, host syncs, uploads
# --------------------------------------------------------------------------------------------


def test_each_kind_of_array_call_counts_once_and_views_not_at_all():
    a = _standin([[1.0, -2.0], [3.0, 4.0]])
    with tn.backend.count_calls() as counts:
        b = a * 2          # operator: one kernel
        b += 1             # in place
        c = XP.exp(b)      # ufunc
        s = c.sum()        # method (a reduction)
        XP.maximum(c, 0, out=c)  # ufunc with out=
        d = XP.stack((s, s))     # function
        c[0, 0] = 5.0            # setitem
        e = c[XP.arange(2)]      # gather (and arange)
        c.reshape(4)             # views of a contiguous array: free
        c.T
        c[1:]
        c.astype(c.dtype, copy=False)  # returns the array itself
        XP.empty(3)              # allocation only
    assert counts.calls == {"mul": 1, "iadd": 1, "exp": 1, "sum": 1, "maximum": 1, "stack": 1,
                            "setitem": 1, "arange": 1, "getitem": 1}
    assert counts.array_calls == 9 and counts.syncs == 0 and counts.uploads == 0
    assert d.shape == (2,) and e.shape == (2, 2)


def test_every_device_to_host_read_is_a_sync():
    t = tn.tensor([1.0, 0.0, 3.0], device="standin")
    with tn.backend.count_calls() as counts:
        t[0].item()
        float(t[0])                            # Tensor: through .item()
        float(t.data[0])                       # raw arrays: their own conversions
        int(t.data[0])
        bool(t[0] > 0)
        t.tolist()
        t.cpu().numpy()
        t.data[t.data > 0]                     # how many elements: the host must know
        XP.nonzero(t.data)
        XP.unique(t.data)
        XP.where(t.data > 0)                   # one argument: nonzero
        XP.where(t.data > 0, t.data, 0.0)      # three: a kernel, no sync
        repr(t)
    assert counts.sync_calls == {"item": 2, "float": 1, "int": 1, "bool": 1, "tolist": 1,
                                 "get": 2, "getitem[mask]": 1, "nonzero": 1, "unique": 1,
                                 "where": 1}
    assert counts.syncs == 12


def test_uploads_count_host_to_device_copies():
    with tn.backend.count_calls() as counts:
        x = tn.tensor(np.ones((2, 2)), device="standin")
        y = tn.ones(2, 2).to("standin")
        (x + y).cpu()
    assert counts.uploads == 2 and counts.syncs == 1


def test_counts_nest_are_per_thread_and_stop_at_the_end_of_the_block():
    a = _standin([1.0, 2.0])
    with tn.backend.count_calls() as outer:
        a + 1
        with tn.backend.count_calls() as inner:
            a * 3
        _in_other_thread = __import__("threading").Thread(target=lambda: a - 1)
        _in_other_thread.start()
        _in_other_thread.join()
    a / 2  # after the block: not counted
    assert outer.calls == {"add": 1, "mul": 1} and inner.calls == {"mul": 1}
    assert repr(outer) == "CallCounts(array_calls=2, syncs=0, uploads=0)"


@pytest.mark.parametrize("n, m", [(1, 1), (3, 2), (7, 5), (50, 3)])
def test_bytes_written_are_the_memory_each_array_call_writes(n, m):
    """Results, in-place updates and ``a[i] = v`` count the bytes they write; views none."""
    a = tn.ones(n, m, device="standin", dtype=tn.float64).data
    with tn.backend.count_calls() as counts:
        b = a * 2                     # n*m*8 bytes
        a[0] = 3.0                    # one row: m*8
        c = a.reshape(m, n)[0]        # a view: nothing
        d = b.sum(axis=1)             # n*8
        b += 1                        # n*m*8 (in place)
        tn.Device("standin").xp.multiply(a, 2, out=a)  # n*m*8 (into out)
    assert c.shape == (n,) and d.shape == (n,)
    assert counts.bytes_written == 8 * (3 * n * m + m + n)


def test_a_training_step_on_the_cpu_counts_nothing():
    model = tn.nn.Linear(3, 2)
    with tn.backend.count_calls() as counts:
        tn.nn.functional.cross_entropy(model(tn.ones(4, 3)), tn.tensor([0, 1, 1, 0])).backward()
    assert (counts.array_calls, counts.syncs, counts.uploads) == (0, 0, 0)


def test_known_tensor_ops_give_their_counts():
    # Forward of two elementwise ops and a sum, then backward: the engine's own array calls are
    # part of the cost a GPU sees, so they are counted too; .item() is the one sync.
    x = tn.tensor([1.0, 2.0, 3.0], device="standin", requires_grad=True)
    with tn.backend.count_calls() as forward:
        y = (x * x).sum()
    with tn.backend.count_calls() as read:
        y.item()
    assert forward.calls["mul"] == 1 and forward.calls["sum"] == 1 and forward.syncs == 0
    assert read.array_calls == 0 and read.sync_calls == {"item": 1}
    with tn.backend.count_calls() as backward:
        y.backward()
    assert backward.syncs == 0 and backward.uploads == 0
    assert backward.calls["mul"] >= 2  # d(x*x)/dx = g*x + g*x
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [2.0, 4.0, 6.0])


def test_a_device_array_on_the_left_of_a_tensor_defers_to_the_tensor():
    """``t.data + t``: as with CuPy and NumPy (``__array_priority__``), the array hands the
    operator to the Tensor, which computes on the tensor's device."""
    for device in ("cpu", "standin"):
        t = tn.tensor([1.0, 2.0, 3.0], device=device)
        for result, expected in ((t.data + t, [2.0, 4.0, 6.0]), (t.data * t, [1.0, 4.0, 9.0]),
                                 (t.data - t, [0.0, 0.0, 0.0]), (t.data @ t, 14.0)):
            assert isinstance(result, tn.Tensor) and result.device == t.device
            assert result.cpu().numpy().tolist() == expected
