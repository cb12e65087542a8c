"""The hypothesis strategies of ``tinynet.testing`` draw what they promise.

Non-contiguous tensors really are non-contiguous on every device (and a stride-assuming op is
caught through them); ``dtype`` may be a strategy; broadcastable shapes come with their result;
index arrays repeat indices when asked; axes, matmul, conv and pool shapes are accepted by NumPy
and tinynet; upstream gradients match their outputs; the ``tinynet`` profile has no explain phase.
"""

import math

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.nn.functional as F
from tinynet.testing import (
    PROFILE, arrays, axes, broadcastable_shapes, conv_output_size, conv_shapes, dtypes,
    grad_outputs, index_arrays, matmul_shapes, pool_shapes, reduction_kwargs, shapes, tensors,
    to_tensor,
)

SMALL = settings(max_examples=15)

# --- non-contiguous layouts ---------------------------------------------------------------------


@SMALL
@given(data=st.data())
def test_non_contiguous_tensors_are_not_contiguous_on_any_device(device, data):
    x = data.draw(tensors(shape=shapes(max_side=3), dtype=dtypes(), device=device,
                          non_contiguous=True))
    assert x.device == device
    if x.numel() > 1:  # one element (or 0-d) has no layout to speak of
        assert not x.data.flags.c_contiguous, (x.shape, x.data.strides)


@SMALL
@given(data=st.data())
def test_to_tensor_keeps_a_host_arrays_layout(device, data):
    host = data.draw(arrays(shapes(min_dims=2, min_side=2, max_side=3), non_contiguous=True))
    for dtype in (np.float64, np.float32):
        t = to_tensor(host, dtype, device)
        assert t.dtype == dtype and t.device == device
        assert not t.data.flags.c_contiguous
        assert t.data.flags.f_contiguous == host.flags.f_contiguous  # transposed stays transposed
        np.testing.assert_array_equal(t.cpu().numpy(), host.astype(dtype))
    shared = to_tensor(host)  # on cpu in its own dtype: the same memory
    assert np.shares_memory(shared.numpy(), host) and shared.data.strides == host.strides


class RowSums(tn.Function):
    """Row sums computed by walking memory as if x were C-contiguous: a stride-assuming op."""

    @staticmethod
    def forward(ctx, x):
        rows, cols = x.shape
        ctx.shape = x.shape
        flat = np.lib.stride_tricks.as_strided(x, (rows * cols,), (x.itemsize,))
        return flat.reshape(rows, cols).sum(axis=1)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out[:, None] * ctx.xp.ones(ctx.shape)


def test_a_stride_assuming_op_is_caught_through_non_contiguous_tensors():
    def wrong(x):
        return not np.allclose(RowSums.apply(x).numpy(), x.numpy().sum(axis=1))

    settings_ = settings(max_examples=50, database=None, derandomize=True)
    x = find(tensors(shape=(2, 3), non_contiguous=True), wrong, settings=settings_)
    assert not x.data.flags.c_contiguous


# --- dtypes, broadcasting, matmul, conv, pool ---------------------------------------------------


def test_dtype_may_be_a_strategy():
    seen = set()

    @settings(max_examples=30, database=None)
    @given(tensors(shape=(2,), dtype=dtypes()))
    def draw(x):
        seen.add(x.dtype)
        assert x.data.dtype == x.dtype

    draw()
    assert seen == {tn.float32, tn.float64}


@SMALL
@given(broadcastable_shapes(3, with_result=True))
def test_broadcastable_shapes_come_with_the_result_shape(drawn):
    input_shapes, result = drawn
    assert len(input_shapes) == 3
    assert result == np.broadcast_shapes(*input_shapes)
    assert tn.add(tn.zeros(input_shapes[0]), tn.zeros(input_shapes[1])).shape == \
        np.broadcast_shapes(*input_shapes[:2])


@SMALL
@given(data=st.data(), kind=st.sampled_from(["any", "1d@1d", "2d@2d", "1d@2d", "2d@1d",
                                             "batched"]))
def test_matmul_shapes_are_accepted_by_numpy_and_tinynet(kind, data):
    sa, sb = data.draw(matmul_shapes(kind))
    expected = np.matmul(np.ones(sa), np.ones(sb)).shape
    assert tn.matmul(tn.ones(sa), tn.ones(sb)).shape == expected
    if kind == "batched":
        assert len(sa) >= 2 or len(sb) >= 2


@SMALL
@given(data=st.data(), role=st.sampled_from(["conv", "input_grad", "weight_grad"]))
def test_conv_shapes_fit_conv2d(role, data):
    p = {"stride": 2, "padding": 1, "dilation": 1, "groups": 2}
    drawn = data.draw(conv_shapes((2, 3), bias=True, role=role, **p))
    if role == "conv":
        x, w, b = (tn.zeros(s) for s in drawn)
        y = F.conv2d(x, w, b, **p)
        h, wd = x.shape[2:]
        assert y.shape == (x.shape[0], w.shape[0], conv_output_size(h, 2, 2, 1),
                           conv_output_size(wd, 3, 2, 1))
    elif role == "input_grad":  # (grad_out, w): grad_out is conv2d's output for some x
        g, w = drawn
        h, wd = ((o - 1) * 2 + k - 2 for o, k in zip(g[2:], (2, 3)))
        x = tn.zeros(g[0], w[1] * 2, h, wd)
        assert F.conv2d(x, tn.zeros(w), **p).shape == g
    else:  # (x, grad_out): grad_out is conv2d's output shape at x
        x, g = drawn
        w = tn.zeros(g[1], x[1] // 2, 2, 3)
        assert F.conv2d(tn.zeros(x), w, **p).shape == g


@SMALL
@given(pool_shapes(2, stride=2, padding=1))
def test_pool_shapes_fit_max_pool2d(shape):
    y = F.max_pool2d(tn.zeros(shape), kernel_size=2, stride=2, padding=1)
    assert y.shape[:2] == shape[:2]
    assert y.shape[2] == conv_output_size(shape[2], 2, 2, 1) >= 1


# --- axes and index arrays ----------------------------------------------------------------------


@SMALL
@given(data=st.data())
def test_axes_and_reduction_kwargs_are_valid_for_numpy_and_tinynet(data):
    shape = data.draw(shapes(max_side=3))
    kw = data.draw(reduction_kwargs(len(shape)))
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    np.testing.assert_allclose(tn.sum(tn.tensor(a), **kw).numpy(), np.sum(a, **kw))


def test_axes_draws_none_ints_negative_axes_and_tuples():
    for wanted in (lambda a: a is None, lambda a: isinstance(a, int) and a < 0,
                   lambda a: isinstance(a, tuple) and len(a) >= 2):
        find(axes(3), wanted, settings=settings(database=None))


@SMALL
@given(axes(3, negative=False, allow_none=False))
def test_axes_without_negative_ones(axis):
    assert all(0 <= a < 3 for a in (axis if isinstance(axis, tuple) else (axis,)))


@settings(max_examples=40)
@given(data=st.data(), size=st.integers(1, 4))
def test_index_arrays_repeat_when_asked_and_stay_in_range(size, data):
    with_repeat = data.draw(index_arrays(size, repeats=True))
    normalised = with_repeat % size
    assert len(np.unique(normalised)) < normalised.size  # some element is indexed twice
    assert ((-size <= with_repeat) & (with_repeat < size)).all()
    distinct = data.draw(index_arrays(size, repeats=False, negative=False))
    assert len(np.unique(distinct)) == distinct.size and (distinct >= 0).all()
    np.zeros(size)[with_repeat]  # NumPy accepts them: no IndexError


def test_index_arrays_draw_negative_indices_and_gathers_accumulate_there():
    idx = find(index_arrays(3, repeats=True), lambda i: (i < 0).any() and (i >= 0).any(),
               settings=settings(database=None))
    x = tn.ones(3, dtype=tn.float64, requires_grad=True)
    x[tn.tensor(idx)].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.bincount(idx % 3, minlength=3))


# --- upstream gradients -------------------------------------------------------------------------


@SMALL
@given(data=st.data())
def test_grad_outputs_match_their_outputs(device, data):
    x = data.draw(tensors(shape=shapes(max_side=3), dtype=dtypes(), device=device))
    outs = (x.tanh(), x.sum())
    grads = data.draw(grad_outputs(outs))
    single = data.draw(grad_outputs(outs[0]))
    for o, g in zip(outs + (outs[0],), grads + (single,)):
        assert (g.shape, g.dtype, g.device) == (o.shape, o.dtype, o.device)
        assert not g.requires_grad
    tn.backward(list(outs), list(grads))  # accepted as upstream gradients


# --- the hypothesis profile ---------------------------------------------------------------------


def failing_property(profile_settings):
    @profile_settings
    @given(st.integers(0, 100))
    def prop(n):
        if n > 50:
            raise AssertionError(f"gradient wrong at {n}")

    with pytest.raises(AssertionError) as failure:
        prop()
    return "\n".join(getattr(failure.value, "__notes__", []))


def test_the_tinynet_profile_drops_the_explanation_noise():
    tinynet = settings(settings.get_profile(PROFILE), database=None)
    assert Phase.explain not in tinynet.phases
    assert "Explanation" not in failing_property(tinynet)
    # with every phase (hypothesis's default) one is printed here: the profile removes it
    assert "Explanation" in failing_property(settings(phases=list(Phase), database=None))
    assert Phase.explain not in settings.get_profile("ci").phases  # the suite's profiles use it
