"""Conv1d and the 1-D / adaptive pools against PyTorch (values and gradients on hypothesis-drawn
shapes and arguments), float64 gradcheck and gradgradcheck, the errors of bad arguments, and
BatchNorm1d on (N, C, L).

The op-table entries (``conv1d``, its two gradients, ``max_pool1d``) check the primitives against
NumPy references; this file checks the layers and functions users call against ``torch.nn``.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.ops.im2col import conv1d_plan

F = tn.nn.functional
torch = pytest.importorskip("torch")
T = torch.nn.functional

SETTINGS = settings(max_examples=25, deadline=None)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")


def both(array, requires_grad=True):
    """The same float64 array as a tinynet and a torch tensor."""
    return (tn.tensor(array, requires_grad=requires_grad),
            torch.tensor(array, requires_grad=requires_grad))


def assert_same(ours, theirs, inputs, seed=0):
    """Equal outputs, and equal gradients of <output, g> for a random g, for each input pair."""
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(seed).normal(size=tuple(theirs.shape))
    ours.backward(tn.tensor(g))
    theirs.backward(torch.tensor(g))
    for a, b in inputs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


@st.composite
def conv1d_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kernel, dilation = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    padding = draw(st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])))
    stride = 1 if padding == "same" else draw(st.integers(1, 3))
    pad = 0 if isinstance(padding, str) else padding
    low = max(1, dilation * (kernel - 1) + 1 - 2 * pad)
    length = draw(st.integers(low, low + 8))
    return dict(n=draw(st.integers(1, 3)), c_in=c_in, c_out=c_out, length=length, kernel=kernel,
                stride=stride, padding=padding, dilation=dilation, groups=groups,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@SETTINGS
@given(conv1d_cases())
def test_conv1d_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(case["n"], case["c_in"], case["length"]))
    w = rng.normal(size=(case["c_out"], case["c_in"] // case["groups"], case["kernel"]))
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                groups=case["groups"])
    (xa, xb), (wa, wb) = both(x), both(w)
    pairs = [(xa, xb), (wa, wb)]
    ba = bb = None
    if case["bias"]:
        ba, bb = both(rng.normal(size=case["c_out"]))
        pairs.append((ba, bb))
    assert_same(F.conv1d(xa, wa, ba, **args), T.conv1d(xb, wb, bb, **args), pairs)


@SETTINGS
@given(conv1d_cases(), st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv1d_layer_matches_torch_in_every_padding_mode(case, mode):
    pad = 0 if isinstance(case["padding"], str) else case["padding"]
    if mode != "zeros" and (case["padding"] == "same" or pad >= case["length"]):
        return  # reflect needs padding < length; keep the modes to what both accept
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  groups=case["groups"], bias=case["bias"], padding_mode=mode)
    ours = tn.nn.Conv1d(case["c_in"], case["c_out"], case["kernel"], dtype=tn.float64, **kwargs)
    theirs = torch.nn.Conv1d(case["c_in"], case["c_out"], case["kernel"], **kwargs).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(case["seed"]).normal(size=(case["n"], case["c_in"],
                                                         case["length"]))
    (xa, xb) = both(x)
    pairs = [(xa, xb), (ours.weight, theirs.weight)]
    if case["bias"]:
        pairs.append((ours.bias, theirs.bias))
    assert_same(ours(xa), theirs(xb), pairs)
    assert repr(ours) == repr(theirs)


@settings(max_examples=12, deadline=None)
@given(conv1d_cases())
def test_conv1d_gradcheck_and_gradgradcheck(case):
    case = {**case, "n": min(case["n"], 2)}  # full Jacobians: keep the batch small
    rng = np.random.default_rng(case["seed"])
    x = tn.tensor(rng.normal(size=(case["n"], case["c_in"], case["length"])), requires_grad=True)
    w = tn.tensor(rng.normal(size=(case["c_out"], case["c_in"] // case["groups"],
                                   case["kernel"])), requires_grad=True)
    b = tn.tensor(rng.normal(size=case["c_out"]), requires_grad=True)
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                groups=case["groups"])

    def fn(x, w, b):
        return F.conv1d(x, w, b, **args)
    assert tn.gradcheck(fn, (x, w, b))
    assert tn.gradgradcheck(fn, (x, w, b))


def test_conv1d_records_1d_nodes_to_any_order():
    x = tn.randn(2, 3, 9, dtype=tn.float64, requires_grad=True)
    w = tn.randn(4, 3, 3, dtype=tn.float64, requires_grad=True)
    y = F.conv1d(x, w, stride=2, padding=1)
    assert y.grad_fn.name == "Conv1d"
    gx, gw = tn.grad((y * y).sum(), [x, w], create_graph=True)
    names = {n.name for n in (gx.grad_fn, gw.grad_fn)}
    assert names == {"Conv1dInputGrad", "Conv1dWeightGrad"}
    assert F.max_pool1d(x, 2).grad_fn.name == "MaxPool1d"


def test_conv1d_is_conv2d_of_the_height_one_view():
    """The 1-D plan is the 2-D plan of (N, C, 1, L): the same numbers as conv2d on that view."""
    x = tn.randn(3, 4, 17, dtype=tn.float64)
    w = tn.randn(6, 2, 3, dtype=tn.float64)
    one = F.conv1d(x, w, stride=2, padding=2, dilation=2, groups=2)
    two = F.conv2d(x.unsqueeze(2), w.unsqueeze(2), stride=(1, 2), padding=(0, 2),
                   dilation=(1, 2), groups=2).squeeze(2)
    np.testing.assert_array_equal(one.numpy(), two.numpy())
    plan = conv1d_plan((3, 4, 17), 3, 2, (2, 2), 2, 2)
    assert plan.spatial == 1 and plan.out_shape == (3, 9) and plan.out_we == plan.out_hw[1]


@st.composite
def pool1d_cases(draw, dilation=True):
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel // 2))
    d = draw(st.integers(1, 2)) if dilation else 1
    low = max(1, d * (kernel - 1) + 1 - 2 * padding)
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)),
                       draw(st.integers(low, low + 9))),
                kernel=kernel, stride=stride, padding=padding, dilation=d,
                ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def distinct(shape, seed):
    """Distinct values, so that every window has one maximum (ties have their own tests)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.prod(shape)).reshape(shape) / 7.0 - 1.0


@SETTINGS
@given(pool1d_cases())
def test_max_pool1d_matches_torch(case):
    xa, xb = both(distinct(case["shape"], case["seed"]))
    args = [case[k] for k in ("kernel", "stride", "padding", "dilation", "ceil_mode")]
    assert_same(F.max_pool1d(xa, *args), T.max_pool1d(xb, *args), [(xa, xb)])
    layer = tn.nn.MaxPool1d(*args[:4], ceil_mode=args[4])
    np.testing.assert_array_equal(layer(xa).numpy(), T.max_pool1d(xb, *args).detach().numpy())


@SETTINGS
@given(pool1d_cases(dilation=False), st.booleans())
def test_avg_pool1d_matches_torch(case, count_include_pad):
    xa, xb = both(np.random.default_rng(case["seed"]).normal(size=case["shape"]))
    args = [case[k] for k in ("kernel", "stride", "padding", "ceil_mode")] + [count_include_pad]
    assert_same(F.avg_pool1d(xa, *args), T.avg_pool1d(xb, *args), [(xa, xb)])
    layer, theirs = tn.nn.AvgPool1d(*args), torch.nn.AvgPool1d(*args)
    np.testing.assert_allclose(layer(xa).numpy(), theirs(xb).detach().numpy(), rtol=1e-12)
    assert repr(layer) == repr(theirs)


adaptive_cases = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 12),
                           st.integers(1, 12), st.integers(0, 2**16))


@SETTINGS
@given(adaptive_cases)
def test_adaptive_pools_1d_match_torch(case):
    n, c, length, out, seed = case
    x = distinct((n, c, length), seed)
    for ours, theirs, layer in ((F.adaptive_avg_pool1d, T.adaptive_avg_pool1d,
                                 tn.nn.AdaptiveAvgPool1d),
                                (F.adaptive_max_pool1d, T.adaptive_max_pool1d,
                                 tn.nn.AdaptiveMaxPool1d)):
        xa, xb = both(x)
        assert_same(ours(xa, out), theirs(xb, out), [(xa, xb)], seed)
        np.testing.assert_allclose(layer(out)(xa[0]).numpy(),
                                   theirs(xb[0], out).detach().numpy(), rtol=1e-12)


@SETTINGS
@given(st.integers(1, 9), st.integers(1, 9), st.one_of(st.none(), st.integers(1, 6)),
       st.integers(1, 6), st.integers(0, 2**16))
def test_adaptive_max_pool2d_matches_torch(h, w, oh, ow, seed):
    xa, xb = both(distinct((2, 2, h, w), seed))
    size = (oh, ow)
    assert_same(F.adaptive_max_pool2d(xa, size), T.adaptive_max_pool2d(xb, size), [(xa, xb)],
                seed)
    np.testing.assert_array_equal(tn.nn.AdaptiveMaxPool2d(size)(xa.detach()).numpy(),
                                  torch.nn.AdaptiveMaxPool2d(size)(xb.detach()).numpy())


def test_adaptive_max_pool_ties_give_the_whole_gradient_to_one_element():
    """Equal values in a bin: torch gives the gradient to one element of it (the first); the
    repeats tinynet pads short bins with must not take any."""
    x = np.array([[[1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0]]])
    for out in (1, 2, 3, 5):
        xa, xb = both(x)
        assert_same(F.adaptive_max_pool1d(xa, out), T.adaptive_max_pool1d(xb, out), [(xa, xb)])


def test_pools_gradcheck_and_gradgradcheck():
    x = tn.tensor(distinct((2, 2, 11), 3), requires_grad=True)
    x2 = tn.tensor(distinct((1, 2, 5, 7), 4), requires_grad=True)
    for fn, arg in ((lambda t: F.max_pool1d(t, 3, 2, 1, ceil_mode=True), x),
                    (lambda t: F.avg_pool1d(t, 3, 2, 1, ceil_mode=True,
                                            count_include_pad=False), x),
                    (lambda t: F.adaptive_avg_pool1d(t, 4), x),
                    (lambda t: F.adaptive_max_pool1d(t, 4), x),
                    (lambda t: F.adaptive_max_pool2d(t, (2, 3)), x2)):
        assert tn.gradcheck(fn, (arg,), eps=1e-6)
        assert tn.gradgradcheck(fn, (arg,), eps=1e-6)


@pytest.mark.parametrize("call, error, message", [
    (lambda: tn.nn.Conv1d(3, 4, 0), ValueError, "Conv1d: kernel_size must be an int"),
    (lambda: tn.nn.Conv1d(3, 4, (3, 3)), TypeError,
     "Conv1d: kernel_size must be an int or a 1-tuple"),
    (lambda: tn.nn.Conv1d(3, 4, 3, groups=2), ValueError,
     "Conv1d: in_channels (3) and out_channels (4) must be divisible"),
    (lambda: tn.nn.Conv1d(2, 4, 3, padding_mode="edge"), ValueError, "Conv1d: padding_mode"),
    (lambda: tn.nn.Conv1d(2, 4, 3, stride=2, padding="same"), ValueError,
     "Conv1d: padding='same' is not supported for strided"),
    (lambda: tn.nn.Conv1d(2, 4, 3, padding="full"), ValueError, "Conv1d: invalid padding string"),
    (lambda: tn.nn.Conv1d(2, 4, 3)(tn.randn(2, 3, 8)), ValueError,
     "conv1d: input of shape (2, 3, 8) (3 channels) and weight of shape (4, 2, 3)"),
    (lambda: tn.nn.Conv1d(2, 4, 5)(tn.randn(2, 2, 3)), ValueError,
     "conv1d: input of shape (2, 2, 3) padded to (3) is smaller than the dilated kernel (5)"),
    (lambda: tn.nn.Conv1d(2, 4, 3)(tn.randn(1, 2, 3, 8)), ValueError,
     "conv1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape (1, 2, 3, 8)"),
    (lambda: F.conv1d(tn.randn(1, 2, 8), tn.randn(4, 2, 3, 3)), ValueError,
     "conv1d: expected a 3-D weight (C_out, C_in/groups, k)"),
    (lambda: tn.nn.Conv1d(2, 2, 3, padding=2, padding_mode="reflect")(tn.randn(1, 2, 2)),
     ValueError, "conv1d: padding ((2, 2),) with padding_mode='reflect' must be smaller"),
    (lambda: F.max_pool1d(tn.randn(1, 2, 8), 2, padding=2), ValueError,
     "max_pool1d: pad should be at most half of kernel size"),
    (lambda: tn.nn.MaxPool1d(2, return_indices=True), NotImplementedError,
     "MaxPool1d: return_indices=True is not supported"),
    (lambda: F.adaptive_max_pool2d(tn.randn(1, 2, 4, 4), 2, return_indices=True),
     NotImplementedError, "adaptive_max_pool2d: return_indices=True is not supported"),
    (lambda: tn.nn.AdaptiveMaxPool1d(0), ValueError, "AdaptiveMaxPool1d: output_size must be"),
    (lambda: tn.nn.AdaptiveAvgPool1d((2, 2)), TypeError,
     "AdaptiveAvgPool1d: output_size must be an int or a tuple of 1"),
    (lambda: tn.nn.AvgPool1d(0), ValueError, "AvgPool1d: kernel_size must be an int"),
    (lambda: F.avg_pool1d(tn.randn(2, 8, 3, 3), 2), ValueError,
     "avg_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input"),
])
def test_bad_arguments_name_the_layer_and_the_argument(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_conv1d_default_init_has_torchs_bounds():
    tn.manual_seed(0)
    conv = tn.nn.Conv1d(25, 25, 3)
    bound = 1 / np.sqrt(25 * 3)
    for p in (conv.weight, conv.bias):
        values = p.numpy()
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.8 * bound  # spread over the whole range, not a corner


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm1d_on_ncl_matches_torch_in_train_and_eval(affine):
    rng = np.random.default_rng(1)
    ours = tn.nn.BatchNorm1d(4, affine=affine, momentum=0.2, dtype=tn.float64)
    theirs = torch.nn.BatchNorm1d(4, affine=affine, momentum=0.2).double()
    if affine:
        ours.weight.data = tn.tensor(rng.normal(size=4))
        ours.bias.data = tn.tensor(rng.normal(size=4))
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    for _ in range(2):  # train: batch statistics over (N, L), running statistics updated
        xa, xb = both(rng.normal(2.0, 3.0, size=(5, 4, 7)))
        pairs = [(xa, xb)] + ([(ours.weight, theirs.weight), (ours.bias, theirs.bias)]
                              if affine else [])
        for p in ours.parameters():
            p.grad = None
        theirs.zero_grad()
        assert_same(ours(xa), theirs(xb), pairs)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(ours.state_dict()[name].numpy(),
                                   theirs.state_dict()[name].numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    xa, xb = both(rng.normal(size=(3, 4, 6)))
    pairs = [(xa, xb)] + ([(ours.weight, theirs.weight), (ours.bias, theirs.bias)]
                          if affine else [])
    for p in ours.parameters():
        p.grad = None
    theirs.zero_grad()
    assert_same(ours(xa), theirs(xb), pairs)


def test_batchnorm1d_on_ncl_gradcheck():
    bn = tn.nn.BatchNorm1d(3, dtype=tn.float64)
    x = tn.randn(4, 3, 5, dtype=tn.float64, requires_grad=True)
    assert tn.gradcheck(lambda t: bn(t), (x,))
