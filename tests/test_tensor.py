"""The Tensor API (tinynet/tensor.py, tinynet/creation.py): dtype rules, type promotion, creation
helpers, random reproducibility, error messages, host conversion, repr, indexing and sizes."""

import numpy as np
import pytest

import tinynet as tn


def host(t: tn.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# --------------------------------------------------------------------------------------------
# tn.tensor dtype rules
# --------------------------------------------------------------------------------------------


def test_python_floats_become_float32(device):
    assert tn.tensor([1.5, 2.0], device=device).dtype == tn.float32
    assert tn.tensor(2.5, device=device).dtype == tn.float32
    assert tn.tensor([1, 2.5], device=device).dtype == tn.float32  # a float anywhere: floating


def test_python_ints_become_int64_and_bools_bool(device):
    assert tn.tensor([1, 2, 3], device=device).dtype == tn.int64
    assert tn.tensor(7, device=device).dtype == tn.int64
    assert tn.tensor([True, False], device=device).dtype == tn.bool


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32, np.int8, np.uint8])
def test_numpy_arrays_keep_their_dtype(device, dtype):
    arr = np.arange(4).astype(dtype)
    t = tn.tensor(arr, device=device)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(host(t), arr)


def test_numpy_scalars_keep_their_dtype(device):
    assert tn.tensor(np.float64(1.5), device=device).dtype == tn.float64
    assert tn.tensor(np.float32(1.5), device=device).dtype == tn.float32
    assert tn.tensor(np.int32(3), device=device).dtype == tn.int32


def test_default_dtype_changes_what_python_floats_become(device):
    tn.set_default_dtype(tn.float64)  # restored by the conftest fixture
    assert tn.tensor([1.0], device=device).dtype == tn.float64
    assert tn.zeros(2, device=device).dtype == tn.float64
    assert tn.tensor([1], device=device).dtype == tn.int64


def test_dtype_argument_wins(device):
    assert tn.tensor([1, 2], dtype=tn.float64, device=device).dtype == tn.float64
    assert tn.tensor([1.0, 2.0], dtype=tn.int32, device=device).dtype == tn.int32
    assert tn.tensor(np.ones(2, np.float32), dtype="float64", device=device).dtype == tn.float64


def test_whole_floats_cast_to_int_exactly(device):
    t = tn.tensor([1.0, -2.0, 3.0], dtype=tn.int64, device=device)
    assert t.tolist() == [1, -2, 3]


@pytest.mark.parametrize("data", [[1.5], [2.0, 0.25], np.array([1.0, 2.5])])
def test_float_to_int_that_loses_data_raises(device, data):
    with pytest.raises(ValueError, match="lose data"):
        tn.tensor(data, dtype=tn.int64, device=device)


def test_integer_tensors_refuse_requires_grad(device):
    with pytest.raises(TypeError, match="floating"):
        tn.tensor([1, 2], device=device, requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        tn.zeros(2, dtype=tn.int32, device=device).requires_grad_()
    with pytest.raises(TypeError, match="floating"):
        tn.arange(3, device=device, requires_grad=True)


def test_tensor_of_a_tensor_is_a_copy(device):
    a = tn.tensor([1.0, 2.0], device=device)
    b = tn.tensor(a)
    b[0] = 10.0
    assert a[0].item() == 1.0 and b.device == a.device


def test_from_numpy_shares_memory_and_tensor_copies():
    arr = np.array([1.0, 2.0])
    shared, copied = tn.from_numpy(arr), tn.tensor(arr)
    arr[0] = 5.0
    assert shared[0].item() == 5.0
    assert copied[0].item() == 1.0


def test_as_tensor_shares_only_when_nothing_changes():
    arr = np.array([1.0, 2.0])
    shared = tn.as_tensor(arr, device="cpu")
    cast = tn.as_tensor(arr, dtype=tn.float32, device="cpu")
    moved = tn.as_tensor(arr, device="standin")
    arr[0] = 5.0
    assert shared[0].item() == 5.0 and shared.dtype == tn.float64
    assert cast[0].item() == 1.0 and moved[0].item() == 1.0
    t = tn.tensor([1.0])
    assert tn.as_tensor(t) is t


def test_unsupported_data_raises():
    with pytest.raises(TypeError, match="tn.tensor"):
        tn.tensor(["a", "b"])


# --------------------------------------------------------------------------------------------
# Type promotion
# --------------------------------------------------------------------------------------------


def test_float32_plus_float64_is_float64(device):
    a = tn.tensor([1.0], device=device)
    b = tn.tensor([1.0], dtype=tn.float64, device=device)
    assert (a + b).dtype == tn.float64
    assert (b * a).dtype == tn.float64


def test_int_tensor_times_python_float_is_float32(device):
    t = tn.tensor([1, 2, 3], device=device)
    out = t * 0.5
    assert out.dtype == tn.float32
    np.testing.assert_allclose(host(out), [0.5, 1.0, 1.5])
    assert (0.5 + t).dtype == tn.float32


def test_int_tensor_with_python_int_stays_integer(device):
    assert (tn.tensor([1, 2], device=device) + 2).dtype == tn.int64
    assert (tn.tensor([1, 2], dtype=tn.int32, device=device) * 3).dtype == tn.int32


def test_python_scalars_adopt_the_tensor_dtype(device):
    assert (tn.tensor([1.0], dtype=tn.float64, device=device) * 2.5).dtype == tn.float64
    assert (tn.tensor([1.0], dtype=tn.float16, device=device) + 1.0).dtype == tn.float16


def test_float32_tensor_with_numpy_float64_scalar_stays_float32(device):
    t = tn.tensor([1.0, 2.0], device=device)
    assert (t * np.float64(2.0)).dtype == tn.float32
    assert (np.float64(2.0) * t).dtype == tn.float32
    assert (t + np.float32(1)).dtype == tn.float32


def test_int_plus_float_tensor_is_float(device):
    i = tn.tensor([1, 2], device=device)
    f = tn.tensor([0.5, 0.5], device=device)
    assert (i + f).dtype == tn.float32
    assert (tn.tensor([1], dtype=tn.int32, device=device)
            + tn.tensor([1], dtype=tn.int64, device=device)).dtype == tn.int64


def test_integer_division_is_true_division(device):
    out = tn.tensor([1, 3], device=device) / tn.tensor([2, 2], device=device)
    assert out.dtype.kind == "f"
    np.testing.assert_allclose(host(out), [0.5, 1.5])


def test_promotion_keeps_the_gradient_path(device):
    x = tn.tensor([1.0, 2.0], device=device, requires_grad=True)  # float32
    w = tn.tensor([3.0, 4.0], dtype=tn.float64, device=device)
    (x * w).sum().backward()
    assert x.grad.dtype == tn.float32
    np.testing.assert_allclose(host(x.grad), [3.0, 4.0])


# --------------------------------------------------------------------------------------------
# Creation helpers
# --------------------------------------------------------------------------------------------


def test_zeros_ones_full_empty(device):
    z = tn.zeros(2, 3, device=device)
    assert z.shape == (2, 3) and z.dtype == tn.float32 and z.device == device
    np.testing.assert_array_equal(host(z), np.zeros((2, 3)))
    assert tn.zeros((2, 3), device=device).shape == (2, 3)
    np.testing.assert_array_equal(host(tn.ones(4, dtype=tn.int64, device=device)), np.ones(4))
    assert tn.ones(4, dtype=tn.int64, device=device).dtype == tn.int64
    f = tn.full((2, 2), 1.5, device=device)
    assert f.dtype == tn.float32
    np.testing.assert_array_equal(host(f), np.full((2, 2), 1.5))
    assert tn.full(3, 7, device=device).dtype == tn.int64
    assert tn.full(3, True, device=device).dtype == tn.bool
    e = tn.empty(3, 2, device=device)
    assert e.shape == (3, 2) and e.dtype == tn.float32 and e.device == device


def test_arange(device):
    a = tn.arange(5, device=device)
    assert a.dtype == tn.int64 and a.tolist() == [0, 1, 2, 3, 4]
    assert tn.arange(1, 7, 2, device=device).tolist() == [1, 3, 5]
    f = tn.arange(0, 1, 0.25, device=device)
    assert f.dtype == tn.float32
    np.testing.assert_allclose(host(f), [0.0, 0.25, 0.5, 0.75])
    assert tn.arange(3, dtype=tn.float64, device=device).dtype == tn.float64


def test_linspace(device):
    t = tn.linspace(-1, 1, 5, device=device)
    assert t.dtype == tn.float32
    np.testing.assert_allclose(host(t), [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert tn.linspace(0, 1, 3, dtype=tn.float64, device=device).dtype == tn.float64


def test_eye(device):
    np.testing.assert_array_equal(host(tn.eye(3, device=device)), np.eye(3))
    np.testing.assert_array_equal(host(tn.eye(2, 3, device=device)), np.eye(2, 3))
    assert tn.eye(2, device=device).dtype == tn.float32


def test_like_helpers_follow_the_source(device):
    src = tn.tensor([[1, 2, 3]], dtype=tn.int32, device=device)
    for made in (tn.zeros_like(src), tn.ones_like(src), tn.full_like(src, 4), tn.empty_like(src)):
        assert made.shape == src.shape and made.dtype == tn.int32 and made.device == device
    assert tn.zeros_like(src).tolist() == [[0, 0, 0]]
    assert tn.full_like(src, 4).tolist() == [[4, 4, 4]]
    assert tn.ones_like(src, dtype=tn.float64).dtype == tn.float64
    x = tn.tensor([[1.0, 2.0]], device=device)
    r = tn.randn_like(x)
    assert r.shape == x.shape and r.dtype == tn.float32 and r.device == device
    u = tn.rand_like(x, dtype=tn.float64)
    assert u.dtype == tn.float64 and ((host(u) >= 0) & (host(u) < 1)).all()
    assert tn.zeros_like(x, requires_grad=True).requires_grad


def test_randn_and_rand_reproducible_from_manual_seed(device):
    tn.manual_seed(123)
    a, u = tn.randn(3, 4, device=device), tn.rand(5, device=device)
    tn.manual_seed(123)
    b, v = tn.randn(3, 4, device=device), tn.rand(5, device=device)
    np.testing.assert_array_equal(host(a), host(b))
    np.testing.assert_array_equal(host(u), host(v))
    tn.manual_seed(124)
    assert not np.array_equal(host(tn.randn(3, 4, device=device)), host(a))
    assert ((host(u) >= 0) & (host(u) < 1)).all()
    assert a.dtype == tn.float32
    assert tn.randn(2, dtype=tn.float64, device=device).dtype == tn.float64


def test_a_seed_gives_the_same_values_on_every_device(device):
    tn.manual_seed(7)
    on_cpu = tn.randn(6, device="cpu")
    tn.manual_seed(7)
    on_device = tn.randn(6, device=device)
    np.testing.assert_array_equal(host(on_device), host(on_cpu))


def test_generator_is_reproducible_and_independent_of_the_default_stream(device):
    first = tn.randn(4, generator=tn.Generator(5), device=device)
    g = tn.Generator(5)
    tn.manual_seed(0)
    tn.randn(10)  # draws on the default stream must not move g
    second = tn.randn(4, generator=g, device=device)
    np.testing.assert_array_equal(host(first), host(second))
    third = tn.randn(4, generator=g, device=device)
    assert not np.array_equal(host(third), host(second))  # the stream moved on


# --------------------------------------------------------------------------------------------
# Shape errors name the op and both shapes
# --------------------------------------------------------------------------------------------


def test_add_shape_error_names_op_and_both_shapes(device):
    a, b = tn.ones(3, device=device), tn.ones(4, device=device)
    with pytest.raises(ValueError) as info:
        a + b
    message = str(info.value)
    assert "Add" in message and "(3,)" in message and "(4,)" in message


def test_matmul_misaligned_error_names_op_and_both_shapes(device):
    a, b = tn.ones(2, 3, device=device), tn.ones(4, 5, device=device)
    with pytest.raises(ValueError) as info:
        a @ b
    message = str(info.value)
    assert "matmul" in message and "(2, 3)" in message and "(4, 5)" in message


# --------------------------------------------------------------------------------------------
# Leaving the tensor: item, tolist, numpy, np.asarray
# --------------------------------------------------------------------------------------------


def test_item_and_tolist(device):
    t = tn.tensor([[1.5, 2.0], [3.0, 4.0]], device=device)
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert t[1, 0].item() == 3.0 and isinstance(t[1, 0].item(), float)
    assert tn.tensor([7], device=device).item() == 7
    assert float(tn.tensor(2.5, device=device)) == 2.5 and int(tn.tensor(3, device=device)) == 3
    with pytest.raises(ValueError, match="one element"):
        t.item()


def test_numpy_and_asarray_on_cpu_share_memory():
    t = tn.tensor([1.0, 2.0])
    arr = t.numpy()
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    arr[0] = 9.0
    assert t[0].item() == 9.0
    np.testing.assert_array_equal(np.asarray(t), [9.0, 2.0])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


def test_numpy_on_device_tensor_says_to_call_cpu():
    t = tn.tensor([1.0, 2.0], device="standin")
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        t.numpy()
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        np.asarray(t)
    np.testing.assert_array_equal(t.cpu().numpy(), [1.0, 2.0])


# --------------------------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------------------------


def test_repr_shows_values_and_what_differs_from_defaults(device):
    plain = repr(tn.tensor([1.5, 2.0], device=device))
    assert plain.startswith("tensor(") and "1.5" in plain and "2." in plain
    assert ("device='standin'" in plain) == (device == "standin")
    assert "dtype" not in plain and "grad" not in plain
    assert "dtype=float64" in repr(tn.tensor([1.0], dtype=tn.float64, device=device))
    x = tn.tensor([1.0], device=device, requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward>" in repr(x * 2)


# --------------------------------------------------------------------------------------------
# Indexing
# --------------------------------------------------------------------------------------------


def test_getitem_matches_numpy(device):
    arr = np.arange(12.0).reshape(3, 4)
    t = tn.tensor(arr, device=device)
    np.testing.assert_array_equal(host(t[1]), arr[1])
    np.testing.assert_array_equal(host(t[:, 1:3]), arr[:, 1:3])
    np.testing.assert_array_equal(host(t[-1, ::2]), arr[-1, ::2])
    np.testing.assert_array_equal(host(t[tn.tensor([2, 0], device=device)]), arr[[2, 0]])
    np.testing.assert_array_equal(host(t[t > 5]), arr[arr > 5])
    np.testing.assert_array_equal(host(t[None, 0]), arr[None, 0])


def test_getitem_gradient_accumulates_repeated_indices(device):
    x = tn.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    x[tn.tensor([0, 0, 2], device=device)].sum().backward()
    np.testing.assert_array_equal(host(x.grad), [2.0, 0.0, 1.0])


def test_setitem_outside_the_graph(device):
    t = tn.zeros(2, 3, device=device)
    t[0, 1] = 5.0
    t[1] = tn.tensor([1.0, 2.0, 3.0], device=device)
    t[:, 2] = 7.0
    np.testing.assert_array_equal(host(t), [[0.0, 5.0, 7.0], [1.0, 2.0, 7.0]])


def test_setitem_on_a_leaf_requiring_grad_is_refused_outside_no_grad(device):
    x = tn.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem: a leaf tensor that requires grad"):
        x[0] = 3.0
    assert x.tolist() == [1.0, 2.0]


def test_setitem_on_leaf_allowed_under_no_grad(device):
    x = tn.tensor([1.0, 2.0], device=device, requires_grad=True)
    with tn.no_grad():
        x[0] = 3.0
    assert x.tolist() == [3.0, 2.0] and x.requires_grad


def test_zero_underscore_follows_the_setitem_rule(device):
    x = tn.tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        x.zero_()
    y = x * 2
    assert y.zero_() is y and y.tolist() == [0.0, 0.0]  # recorded: nothing flows back to x
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    with tn.no_grad():
        assert x.zero_() is x
    assert x.tolist() == [0.0, 0.0]
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.zero_().tolist() == [0.0, 0.0]  # gradients are outside the graph


def test_setitem_value_on_another_device_raises():
    t = tn.zeros(2)
    with pytest.raises(RuntimeError, match="standin"):
        t[0] = tn.tensor(1.0, device="standin")


# --------------------------------------------------------------------------------------------
# Sizes and iteration
# --------------------------------------------------------------------------------------------


def test_len_iter_size_numel(device):
    t = tn.tensor(np.arange(24.0).reshape(2, 3, 4), device=device)
    assert len(t) == 2
    rows = list(t)
    assert len(rows) == 2 and all(r.shape == (3, 4) for r in rows)
    np.testing.assert_array_equal(host(rows[1]), np.arange(12.0, 24.0).reshape(3, 4))
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.numel() == 24 and t.dim() == 3 and t.ndim == 3 and t.shape == (2, 3, 4)


def test_zero_dim_tensor_has_no_len_or_iter(device):
    t = tn.tensor(1.0, device=device)
    assert t.numel() == 1 and t.size() == ()
    with pytest.raises(TypeError):
        len(t)
    with pytest.raises(TypeError):
        iter(t)


def test_iteration_keeps_the_graph(device):
    x = tn.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    total = sum(row.sum() * (i + 1) for i, row in enumerate(x))
    total.backward()
    np.testing.assert_array_equal(host(x.grad), [[1.0, 1.0], [2.0, 2.0]])


def test_bool_of_a_many_element_tensor_raises(device):
    assert bool(tn.tensor([1.0], device=device))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tn.tensor([1.0, 2.0], device=device))


# --- in-place arithmetic -------------------------------------------------------------------------


def test_inplace_update_under_no_grad_writes_into_the_same_tensor(device):
    p = tn.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    alias = p
    data_before = p.data
    with tn.no_grad():
        p -= 0.5 * tn.tensor([2.0, 2.0, 2.0], device=device)
        p *= 2
    assert p is alias and p.data is data_before
    np.testing.assert_allclose(p.cpu().numpy(), [0.0, 2.0, 4.0])
    assert p.requires_grad and p.grad_fn is None


def test_inplace_on_leaf_requiring_grad_outside_no_grad_raises():
    p = tn.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        p += 1


def test_inplace_float_into_integer_tensor_raises_instead_of_truncating():
    i = tn.tensor([1, 2])
    with pytest.raises(TypeError, match="in-place add"):
        i += 0.5
    np.testing.assert_array_equal(i.numpy(), [1, 2])


def test_inplace_on_graph_tensor_is_recorded_out_of_place():
    x = tn.tensor([1.0, -2.0, 3.0], dtype=tn.float64, requires_grad=True)

    def f(x):
        y = x * x
        y += x  # rebinds y to x*x + x; the gradient must include both terms
        y *= 3
        return y

    assert tn.gradcheck(f, (x,))
    f(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * (2 * x.numpy() + 1))
