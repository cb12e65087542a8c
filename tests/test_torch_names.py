"""One meaning per name, PyTorch's: transpose/permute, max/min/amax/amin/argmax, view vs reshape,
``dim``/``keepdim`` with NumPy's ``axis``/``keepdims`` as aliases everywhere, the op classes'
names, the op functions as Tensor methods, the public ``Tensor.wrap`` / ``.data`` contract, and
the ops ported code needs (gather/scatter/index_select/take_along_dim/masked_fill, sort/topk).

PyTorch is the reference: where it is installed, the meanings are also compared with it.
"""

import inspect

import numpy as np
import pytest

import tinynet as tn
import tinynet.ops
from tinynet.tensor import OP_METHODS, Tensor, tensor_method


def _torch():
    try:
        import torch as module  # noqa: PLC0415
    except ImportError:
        pytest.skip("PyTorch is not installed (the optional reference)")
    return module


def host(t):
    return t.detach().cpu().numpy()


def cube(device, dtype=tn.float64, requires_grad=False):
    """A (2, 3, 4) tensor of distinct values."""
    a = np.random.default_rng(0).permutation(24).reshape(2, 3, 4).astype(np.float64)
    return tn.tensor(a, dtype=dtype, device=device, requires_grad=requires_grad), a


# --- transpose, permute, T, mT -----------------------------------------------------------------


def test_transpose_function_and_method_both_swap_two_dims(device):
    x, a = cube(device)
    for y in (tn.transpose(x, 0, 2), x.transpose(0, 2), tn.swapaxes(x, 0, 2), x.swapaxes(0, 2)):
        assert y.shape == (4, 3, 2)
        np.testing.assert_array_equal(host(y), np.swapaxes(a, 0, 2))
    assert tn.transpose(x, -1, -2).shape == x.transpose(1, 2).shape == (2, 4, 3)


def test_transpose_needs_both_dims_as_in_pytorch(device):
    x, _ = cube(device)
    with pytest.raises(TypeError):
        x.transpose()
    with pytest.raises(IndexError, match="transpose: dim 3 is out of range"):
        x.transpose(0, 3)


def test_permute_T_and_mT(device):
    x, a = cube(device)
    np.testing.assert_array_equal(host(x.permute(2, 0, 1)), np.transpose(a, (2, 0, 1)))
    np.testing.assert_array_equal(host(tn.permute(x, (2, 0, 1))), np.transpose(a, (2, 0, 1)))
    np.testing.assert_array_equal(host(x.T), a.T)
    np.testing.assert_array_equal(host(x.mT), np.swapaxes(a, -1, -2))


def test_transpose_matches_pytorch():
    torch = _torch()
    x, a = cube("cpu")
    t = torch.tensor(a)
    for d0, d1 in ((0, 2), (-1, 0), (1, 1)):
        np.testing.assert_array_equal(host(tn.transpose(x, d0, d1)),
                                      torch.transpose(t, d0, d1).numpy())
        np.testing.assert_array_equal(host(x.transpose(d0, d1)), t.transpose(d0, d1).numpy())


# --- max, min, amax, amin, argmax, argmin ------------------------------------------------------


def test_max_without_dim_is_the_largest_value(device):
    x, a = cube(device)
    assert x.max().shape == () and x.max().item() == a.max()
    assert tn.min(x).item() == a.min()


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(device, keepdim):
    x, a = cube(device, requires_grad=True)
    for name, ref, arg in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
        result = getattr(x, name)(dim=1, keepdim=keepdim)
        values, indices = result  # a named tuple, as torch.return_types.max
        assert isinstance(result, tn.ops.ValuesIndices)
        assert result.values is values and result.indices is indices
        np.testing.assert_array_equal(host(values), ref(a, axis=1, keepdims=keepdim))
        np.testing.assert_array_equal(host(indices), arg(a, axis=1, keepdims=keepdim))
        assert indices.dtype == tn.int64 and not indices.requires_grad
        assert values.requires_grad


def test_max_values_gradient_goes_to_the_maximum(device):
    x, a = cube(device, requires_grad=True)
    x.max(dim=2).values.sum().backward()
    expected = (a == a.max(axis=2, keepdims=True)).astype(np.float64)
    np.testing.assert_array_equal(host(x.grad), expected)


def test_max_of_two_tensors_is_maximum(device):
    x, a = cube(device)
    y = tn.full((4,), 11.5, dtype=tn.float64, device=device)
    np.testing.assert_array_equal(host(tn.max(x, y)), np.maximum(a, 11.5))
    np.testing.assert_array_equal(host(x.min(y)), np.minimum(a, 11.5))


def test_max_over_several_dims_points_to_amax(device):
    x, a = cube(device)
    with pytest.raises(TypeError, match="max: dim must be one int.*amax"):
        x.max(dim=(0, 1))
    np.testing.assert_array_equal(host(x.amax(dim=(0, 1))), a.max(axis=(0, 1)))
    np.testing.assert_array_equal(host(tn.amin(x, (0, 2), keepdim=True)),
                                  a.min(axis=(0, 2), keepdims=True))


def test_argmax_argmin_take_dim_and_keepdim(device):
    x, a = cube(device)
    assert x.argmax().item() == a.argmax()
    np.testing.assert_array_equal(host(x.argmax(dim=1, keepdim=True)),
                                  a.argmax(axis=1, keepdims=True))
    np.testing.assert_array_equal(host(tn.argmin(x, -1)), a.argmin(axis=-1))


def test_max_and_argmax_match_pytorch():
    torch = _torch()
    x, a = cube("cpu")
    t = torch.tensor(a)
    for dim in (0, -1):
        ours, theirs = x.max(dim, keepdim=True), t.max(dim, keepdim=True)
        np.testing.assert_array_equal(host(ours.values), theirs.values.numpy())
        np.testing.assert_array_equal(host(ours.indices), theirs.indices.numpy())
        np.testing.assert_array_equal(host(x.amin(dim)), torch.amin(t, dim).numpy())
        np.testing.assert_array_equal(host(x.argmax(dim)), t.argmax(dim).numpy())


# --- dim/keepdim, and NumPy's axis/keepdims as aliases ------------------------------------------

# (function, positional args, dim argument): called with dim=..., then with axis=...
DIM_CALLS = [
    (tn.sum, (), 1), (tn.mean, (), (0, 2)), (tn.var, (), 1), (tn.std, (), 2), (tn.amax, (), 1),
    (tn.amin, (), -1), (tn.logsumexp, (), 0), (tn.argmax, (), 1), (tn.argmin, (), 2),
    (tn.softmax, (), 0), (tn.log_softmax, (), 1), (tn.unsqueeze, (), 1), (tn.squeeze, (), 0),
    (lambda x, **k: tn.max(x, **k).values, (), 1), (lambda x, **k: tn.min(x, **k).indices, (), 2),
    (lambda x, **k: tn.cat([x, x], **k), (), 2), (lambda x, **k: tn.stack([x, x], **k), (), 1),
    (lambda x, **k: tn.split(x, 1, **k)[1], (), 0),
]


@pytest.mark.parametrize("fn, args, dim", DIM_CALLS)
def test_axis_and_keepdims_are_aliases_of_dim_and_keepdim(device, fn, args, dim):
    x, _ = cube(device)
    by_dim = fn(x, *args, dim=dim)
    by_axis = fn(x, *args, axis=dim)
    np.testing.assert_array_equal(host(by_dim), host(by_axis))
    params = inspect.signature(getattr(fn, "__wrapped__", fn)).parameters
    if "keepdim" in params:
        np.testing.assert_array_equal(host(fn(x, dim=dim, keepdim=True)),
                                      host(fn(x, axis=dim, keepdims=True)))


def test_dim_and_axis_given_differently_raise_naming_the_op(device):
    x, _ = cube(device)
    with pytest.raises(TypeError, match="sum: got dim=0 and axis=1"):
        tn.sum(x, dim=0, axis=1)
    with pytest.raises(TypeError, match="softmax: got dim=0 and axis=1"):
        x.softmax(dim=0, axis=1)
    with pytest.raises(TypeError, match="mean: got keepdim=True and keepdims=False"):
        x.mean(1, keepdim=True, keepdims=False)
    assert tn.sum(x, dim=1, axis=1).shape == (2, 4)  # the same value twice is fine


def _dim_signatures():
    """Every op function and every Tensor method that takes a dim, with its parameters."""
    seen = {}
    for name, obj in vars(tinynet.ops).items():
        if inspect.isfunction(obj) and obj.__module__.startswith("tinynet.ops."):
            seen[f"tn.ops.{name}"] = inspect.signature(obj).parameters
    for name in dir(Tensor):
        attr = getattr(Tensor, name)
        if inspect.isfunction(attr):
            seen[f"Tensor.{name}"] = inspect.signature(attr).parameters
    return {k: v for k, v in seen.items() if {"dim", "axis", "keepdim", "keepdims"} & set(v)}


@pytest.mark.parametrize("name", sorted(_dim_signatures()))
def test_every_dim_parameter_has_its_numpy_alias(name):
    params = set(_dim_signatures()[name])
    for torch_name, numpy_name in (("dim", "axis"), ("keepdim", "keepdims")):
        assert (torch_name in params) == (numpy_name in params), f"{name}: {sorted(params)}"


# --- view and reshape ----------------------------------------------------------------------------


def test_view_of_contiguous_data_shares_memory(device):
    x = tn.arange(12.0, device=device)
    y = x.view(3, 4)
    assert y.shape == (3, 4) and x.view(-1, 6).shape == (2, 6)
    if device == "cpu":
        assert np.shares_memory(y.numpy(), x.numpy())


def test_view_that_would_need_a_copy_raises_as_in_pytorch(device):
    x = tn.arange(12.0, device=device).reshape(3, 4)
    with pytest.raises(RuntimeError, match=r"view: .*use \.reshape"):
        x.T.view(12)
    assert x.T.reshape(12).tolist() == np.arange(12.0).reshape(3, 4).T.reshape(12).tolist()


def test_view_of_non_contiguous_data_when_strides_allow(device):
    x = tn.arange(24.0, device=device).reshape(4, 6)[:, :4]  # rows of 4 with a pitch of 6
    expected = np.arange(24.0).reshape(4, 6)[:, :4].reshape(4, 2, 2)
    assert x.view(4, 2, 2).tolist() == expected.tolist()
    with pytest.raises(RuntimeError, match="view"):
        x.view(16)  # would merge rows across the gaps


def test_view_keeps_the_graph(device):
    x = tn.arange(6.0, device=device, requires_grad=True)
    (x.view(2, 3) * tn.tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]


def test_view_agrees_with_pytorch_on_what_is_viewable():
    torch = _torch()
    base = np.arange(48.0).reshape(4, 3, 4)
    cases = [(lambda a: a, (12, 4)), (lambda a: a.transpose(1, 0, 2), (3, 16)),
             (lambda a: a.transpose(1, 0, 2), (3, 4, 2, 2)), (lambda a: a[:, :2], (8, 4)),
             (lambda a: a[:, :, :2], (24,)), (lambda a: a[:, :, :2], (4, 3, 2, 1))]
    for make, shape in cases:
        ours = tn.from_numpy(make(base))
        theirs = torch.from_numpy(np.ascontiguousarray(base)).as_strided(
            make(base).shape, [s // 8 for s in make(base).strides])
        try:
            expected = theirs.view(shape).numpy()
        except RuntimeError:
            with pytest.raises(RuntimeError, match="view"):
                ours.view(shape)
        else:
            np.testing.assert_array_equal(host(ours.view(shape)), expected)


# --- op classes: one naming rule, apart from the layers ------------------------------------------


def test_op_classes_end_in_op_and_are_named_without_it_in_graphs():
    for op in tn.ops.OPS:
        assert op.__name__.endswith("Op") and issubclass(op, tinynet.autograd.Op), op
        assert op.name == op.__name__.removesuffix("Op")
    x = tn.randn(2, 3, requires_grad=True)
    assert repr(tn.nn.functional.linear(x, tn.randn(4, 3)).grad_fn) == "<LinearBackward>"


def test_no_op_class_shares_a_name_with_a_layer_or_a_function():
    names = set(vars(tn.nn)) | set(vars(tn.nn.functional)) | set(vars(tn))
    clashes = [op.__name__ for op in tn.ops.OPS if op.__name__ in names]
    assert not clashes


def test_nn_functional_linear_is_the_op_function():
    assert tn.nn.functional.linear is tn.ops.linear is tn.ops.linalg.linear


# --- op functions as Tensor methods --------------------------------------------------------------


def test_registered_methods_are_the_op_functions(device):
    x, _ = cube(device)
    assert {"exp", "sum", "max", "transpose", "clamp", "astype"} <= set(OP_METHODS)
    for name, fn in OP_METHODS.items():
        assert getattr(Tensor, name) is fn, name
    np.testing.assert_array_equal(host(x.clamp(3.0, 7.0)), host(tn.clip(x, 3.0, 7.0)))
    np.testing.assert_array_equal(host(x.exp()), host(tn.exp(x)))


def test_tensor_method_refuses_to_replace_a_method_of_the_class_body():
    with pytest.raises(TypeError, match="Tensor.reshape is written in the class body"):
        tensor_method("reshape")(lambda x: x)
    assert Tensor.reshape is Tensor.__dict__["reshape"]


# --- the public contract for library code: Tensor.wrap and .data ------------------------------


def test_wrap_shares_the_array_and_records_nothing(device):
    dev = tn.Device(device)
    arr = dev.xp.zeros((2, 3), dtype=dev.xp.float32)
    t = Tensor.wrap(arr, dev)
    assert t.data is arr and t.device is dev and not t.requires_grad and t.grad_fn is None


def test_assigning_a_tensor_to_data_takes_its_array_and_device():
    p = tn.nn.Parameter(tn.ones(3))
    moved = tn.zeros(3, device="standin")
    p.data = moved  # what Module.to needs: the same object, now on another device
    assert p.device == "standin" and p.data is moved.data and p.requires_grad
    with pytest.raises(TypeError, match="Tensor.data must be"):
        p.data = np.zeros(3)  # a raw array must already belong to the tensor's device


def test_contiguous_copies_only_what_is_not(device):
    x = tn.arange(6.0, device=device).reshape(2, 3).requires_grad_()
    assert x.is_contiguous() and x.contiguous() is x
    t = x.T
    assert not t.is_contiguous()
    c = t.contiguous()
    assert c.is_contiguous() and c.view(6).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    c.view(6).sum().backward()  # still in the graph
    assert x.grad.tolist() == [[1.0] * 3] * 2


# --- gather, scatter, index_select, take_along_dim, masked_fill: PyTorch's meanings ------------


def _grads(fn, *arrays):
    """Values and input gradients of sum(fn(...) * weights) in tinynet (float64)."""
    inputs = [tn.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    weights = np.arange(1.0, out.numel() + 1).reshape(out.shape)
    (out * tn.tensor(weights)).sum().backward()
    return host(out), [host(i.grad) for i in inputs]


def _torch_grads(torch, fn, *arrays):
    inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    weights = np.arange(1.0, out.numel() + 1).reshape(tuple(out.shape))
    (out * torch.tensor(weights)).sum().backward()
    return out.detach().numpy(), [i.grad.numpy() for i in inputs]


INDEX = np.array([[0, 2, 2, 1], [1, 1, 0, 0], [2, 0, 1, 2]])  # repeats: gradients accumulate
MASK = np.array([True, False, True, False])
# (name, call with the library as ``lib`` and an index tensor maker ``ix``, input shapes)
INDEXED = [
    ("gather", lambda lib, ix, x: lib.gather(x, 1, ix(INDEX[:, :3])), [(3, 4)]),
    ("gather_method", lambda lib, ix, x: x.gather(0, ix(INDEX[:2])), [(3, 4)]),
    ("take_along_dim", lambda lib, ix, x: lib.take_along_dim(x, ix(INDEX[:1]), dim=0),
     [(3, 4)]),
    ("take_along_dim_flat", lambda lib, ix, x: lib.take_along_dim(x, ix(INDEX[0])), [(3, 4)]),
    ("index_select", lambda lib, ix, x: lib.index_select(x, 1, ix(INDEX[0])), [(3, 4)]),
    ("scatter", lambda lib, ix, x, s: lib.scatter(x, 0, ix(np.array([[2, 0, 1, 1]])), s),
     [(3, 4), (1, 4)]),
    ("scatter_value", lambda lib, ix, x: x.scatter(1, ix(INDEX[:, :1]), 0.5), [(3, 4)]),
    ("scatter_add", lambda lib, ix, x, s: lib.scatter_add(x, 1, ix(INDEX), s), [(3, 4), (3, 4)]),
    ("masked_fill", lambda lib, ix, x: x.masked_fill(ix(MASK), -2.0), [(3, 4)]),
    ("masked_fill_tensor_value", lambda lib, ix, x, v: lib.masked_fill(x, ix(MASK), v),
     [(3, 4), ()]),
]


@pytest.mark.parametrize("name, call, input_shapes", INDEXED, ids=[c[0] for c in INDEXED])
def test_indexing_ops_match_pytorch_values_and_gradients(name, call, input_shapes):
    torch = _torch()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in input_shapes]
    ours = _grads(lambda *xs: call(tn, lambda a: tn.tensor(a), *xs), *arrays)
    theirs = _torch_grads(torch, lambda *xs: call(torch, torch.tensor, *xs), *arrays)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    for g, t in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(g, t, rtol=1e-12)


def test_gather_scatter_errors_name_the_op_and_the_shapes(device):
    x = tn.zeros(3, 4, device=device)
    idx = tn.tensor([[0, 4]], device=device)
    with pytest.raises(IndexError, match=r"gather: index 4 is out of range for dimension 1 of "
                                         r"size 4"):
        x.gather(1, idx)  # raised on the stand-in device too (CuPy would silently wrap)
    with pytest.raises(IndexError, match="index_select: index -1 is out of range"):
        x.index_select(0, tn.tensor([0, -1], device=device))
    with pytest.raises(ValueError, match=r"gather: index must have as many dims as the input, "
                                         r"got index of shape \(2,\)"):
        x.gather(1, tn.tensor([0, 1], device=device))
    with pytest.raises(ValueError, match=r"larger than the input of shape \(3, 4\) in dim 0"):
        x.gather(1, tn.zeros(4, 1, dtype=tn.long, device=device))
    with pytest.raises(TypeError, match="gather: index must be an integer tensor"):
        x.gather(1, tn.zeros(1, 1, device=device))
    with pytest.raises(TypeError, match="scatter: src has dtype float64, the input float32"):
        x.scatter(0, tn.zeros(1, 1, dtype=tn.long, device=device),
                  tn.zeros(1, 1, dtype=tn.float64, device=device))
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor"):
        x.masked_fill(tn.ones(4, device=device), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(2,\) does not broadcast"):
        x.masked_fill(tn.ones(2, dtype=tn.bool, device=device), 0.0)


def test_masked_fill_keeps_the_dtype_and_builds_an_attention_mask(device):
    future = tn.tensor(np.triu(np.ones((3, 3)), 1).astype(bool), device=device)  # causal mask
    scores = tn.zeros(3, 3, device=device).masked_fill(future, float("-inf"))
    weights = scores.softmax(dim=-1)
    np.testing.assert_allclose(host(weights), [[1, 0, 0], [0.5, 0.5, 0], [1 / 3] * 3])
    n = tn.tensor([1, 2, 3], device=device).masked_fill(tn.tensor([True, False, False],
                                                                  device=device), 7.9)
    assert n.dtype == tn.int64 and n.tolist() == [7, 2, 3]  # PyTorch truncates into int too


# --- sort, argsort, topk ----------------------------------------------------------------------


def test_sort_topk_match_pytorch_with_ties_and_nan():
    torch = _torch()
    a = np.array([[2.0, 1.0, 2.0, np.nan, 1.0, 0.5], [3.0, 3.0, -1.0, 3.0, 0.0, 3.0]])
    x, t = tn.tensor(a, dtype=tn.float64), torch.tensor(a)
    for descending in (False, True):
        ours, theirs = x.sort(dim=1, descending=descending), torch.sort(
            t, dim=1, descending=descending, stable=True)
        np.testing.assert_array_equal(host(ours.values), theirs.values.numpy())
        np.testing.assert_array_equal(host(ours.indices), theirs.indices.numpy())
        np.testing.assert_array_equal(host(tn.argsort(x, 0, descending=descending)),
                                      torch.argsort(t, dim=0, descending=descending,
                                                    stable=True).numpy())
    for largest in (True, False):
        ours, theirs = x.topk(3, largest=largest), t.topk(3, largest=largest)
        np.testing.assert_array_equal(host(ours.values), theirs.values.numpy())
    finite = a[1:]  # indices of ties are unspecified in PyTorch's topk: compare where none tie
    np.testing.assert_array_equal(host(tn.tensor(finite).topk(2, largest=False).indices),
                                  torch.tensor(finite).topk(2, largest=False).indices.numpy())


def test_sort_and_topk_gradients_go_back_to_where_values_came_from(device):
    a = np.array([[0.3, -1.0, 2.0, 0.7], [1.5, 0.2, -0.4, 0.0]])
    x = tn.tensor(a, dtype=tn.float64, device=device, requires_grad=True)
    values, indices = x.topk(2, dim=1)
    (values * tn.tensor([[1.0, 10.0]], dtype=tn.float64, device=device)).sum().backward()
    expected = np.zeros_like(a)
    expected[[0, 0, 1, 1], [2, 3, 0, 1]] = [1.0, 10.0, 1.0, 10.0]
    np.testing.assert_array_equal(host(x.grad), expected)
    assert indices.dtype == tn.int64 and not indices.requires_grad
    assert isinstance(x.sort(), tn.ops.ValuesIndices)
    with pytest.raises(ValueError, match=r"topk: k=5 is out of range for dim 1 of size 4"):
        x.topk(5)
