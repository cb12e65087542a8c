"""Sharing memory with other libraries: NumPy (``np.asarray``, ``tn.from_numpy``) and DLPack
(NumPy, and PyTorch when it is installed)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn

DTYPES = [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_]


@st.composite
def _arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    return draw(hnp.arrays(dtype, shape))


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.size == 0 or np.shares_memory(a, b)


# --------------------------------------------------------------------------------------------
# NumPy
# --------------------------------------------------------------------------------------------


def test_asarray_of_a_cpu_tensor_shares_memory():
    t = tn.arange(6.0).reshape(2, 3)
    a = np.asarray(t)
    assert a.shape == (2, 3) and np.shares_memory(a, t.data)
    a[0, 0] = -5.0
    assert t[0, 0].item() == -5.0
    assert t.numpy() is t.data


def test_asarray_with_a_dtype_or_copy_makes_a_copy():
    t = tn.tensor([1.0, 2.0])
    converted = np.asarray(t, dtype=np.float64)
    assert converted.dtype == np.float64 and not np.shares_memory(converted, t.data)
    copied = np.array(t, copy=True)
    assert not np.shares_memory(copied, t.data)
    np.testing.assert_array_equal(copied, [1.0, 2.0])


def test_from_numpy_shares_memory():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = tn.from_numpy(a)
    assert t.device == "cpu" and t.dtype == np.float64  # the array's dtype is kept
    a[1, 1] = 40.0
    assert t[1, 1].item() == 40.0
    t.zero_()
    assert a.sum() == 0


def test_tensor_copies_numpy_data():
    a = np.array([1.0, 2.0])
    t = tn.tensor(a)
    assert t.dtype == np.float64  # NumPy arrays keep their dtype, as in PyTorch
    a[0] = 10.0
    assert t[0].item() == 1.0


# --------------------------------------------------------------------------------------------
# DLPack with NumPy
# --------------------------------------------------------------------------------------------


@given(_arrays())
def test_dlpack_round_trip_with_numpy(array):
    t = tn.from_dlpack(array)
    assert t.device == "cpu" and t.dtype == array.dtype and t.shape == array.shape
    assert _same_memory(t.data, array)

    back = np.from_dlpack(t)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert _same_memory(back, array)
    np.testing.assert_array_equal(back, array)


def test_dlpack_device_of_a_cpu_tensor():
    kind, index = tn.zeros(2).__dlpack_device__()
    assert (int(kind), index) == (1, 0)  # kDLCPU


def test_dlpack_of_a_view_keeps_its_strides():
    t = tn.arange(12.0).reshape(3, 4)
    view = t.data[:, ::2]  # non-contiguous
    imported = tn.from_dlpack(view)
    np.testing.assert_array_equal(imported.numpy(), [[0, 2], [4, 6], [8, 10]])
    assert np.shares_memory(imported.data, t.data)


def test_from_dlpack_of_an_unknown_device_raises():
    class OnAnAccelerator:
        def __dlpack_device__(self):
            return (14, 0)  # kDLOneAPI: no tinynet backend

    with pytest.raises(RuntimeError, match="unsupported DLPack device"):
        tn.from_dlpack(OnAnAccelerator())


# --------------------------------------------------------------------------------------------
# DLPack with PyTorch (optional)
# --------------------------------------------------------------------------------------------


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: DLPack interop with "
                                               "it cannot be tested here")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8, np.bool_])
def test_torch_reads_a_tensor_without_copying(dtype):
    torch = _torch()
    t = tn.tensor(np.arange(6).reshape(2, 3).astype(dtype))
    pt = torch.from_dlpack(t)
    assert tuple(pt.shape) == (2, 3) and pt.device.type == "cpu"
    np.testing.assert_array_equal(pt.numpy(), t.numpy())
    if dtype != np.bool_:
        pt[0, 0] = 5
        assert t[0, 0].item() == 5  # the same memory


def test_tinynet_reads_a_torch_tensor_without_copying():
    torch = _torch()
    pt = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    t = tn.from_dlpack(pt)
    assert t.device == "cpu" and t.dtype == np.float64 and t.shape == (3, 4)
    np.testing.assert_array_equal(t.numpy(), pt.numpy())
    pt[2, 3] = -1.0
    assert t[2, 3].item() == -1.0

    # ... and computes on it, with gradients
    x = tn.from_dlpack(torch.tensor([1.0, 2.0, 3.0])).requires_grad_()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_round_trip_through_torch():
    torch = _torch()
    t = tn.randn(4, 5, generator=tn.Generator(0))
    back = tn.from_dlpack(torch.from_dlpack(t))
    assert np.shares_memory(back.data, t.data)
    np.testing.assert_array_equal(back.numpy(), t.numpy())
