"""Convolution and pooling: ``conv2d``/``Conv2d``, ``max_pool2d``, ``avg_pool2d``,
``adaptive_avg_pool2d`` and their modules, on every device.

Forward results are compared with direct-loop references written here in NumPy (loops over the
batch, the channels, every output pixel and every kernel element: slow, and obviously right) on
hypothesis-chosen shapes and hyper-parameters (stride, padding, dilation, groups, kernel sizes,
bias, ceil mode ...). Gradients are checked against central differences in float64, second order
included for conv2d. When PyTorch is installed, results and gradients are also compared with
``torch.nn.functional``. Max-pool ties follow PyTorch: the whole gradient of a window goes to its
first maximum in row-major order; tests draw values from a coarse grid so that ties are common.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.nn.functional as F
from tinynet.ops.conv import conv_plan
from tinynet.testing import arrays, check_gradients

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # CI has no torch: the comparisons are extras
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
FEWER = settings(max_examples=max(5, settings().max_examples * 2 // 5))
COARSE = "coarse"  # values on a 1/2 grid in [-1, 1]: max-pool windows tie often


def host(t):
    return t.detach().cpu().numpy()


def draw_array(data, shape, values="real", label="array"):
    if values == COARSE:
        return data.draw(arrays(shape, np.float64, tn.testing.Domain(-1.0, 1.0, grid=0.5)),
                         label=label)
    return data.draw(arrays(shape, np.float64, values), label=label)


# --- direct-loop references -----------------------------------------------------------------------


def out_size(size, k, s, pad_total, d):
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def loop_conv2d(x, w, b, stride, pads, dilation, groups):
    """out[n, o, r, q] = b[o] + sum_{c, i, j} x[n, g(o) C/G + c, r sH - top + i dH,
    q sW - left + j dW] * w[o, c, i, j], with x = 0 outside the image."""
    batch, _, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    (sh, sw), ((top, bottom), (left, right)), (dh, dw) = stride, pads, dilation
    oh, ow = out_size(h, kh, sh, top + bottom, dh), out_size(wd, kw, sw, left + right, dw)
    og = c_out // groups
    out = np.zeros((batch, c_out, oh, ow))
    for n in range(batch):
        for o in range(c_out):
            first = (o // og) * cg
            for r in range(oh):
                for q in range(ow):
                    acc = 0.0 if b is None else b[o]
                    for c in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                row, col = r * sh - top + i * dh, q * sw - left + j * dw
                                if 0 <= row < h and 0 <= col < wd:
                                    acc += x[n, first + c, row, col] * w[o, c, i, j]
                    out[n, o, r, q] = acc
    return out


def loop_max_pool2d(x, g, kernel, stride, pads, dilation, out_hw):
    """Max pooling and its gradient: each window scanned in row-major order, padding = -inf, the
    first strictly greatest element wins and receives the window's whole gradient."""
    batch, channels, h, w = x.shape
    (kh, kw), (sh, sw), ((top, _), (left, _)), (dh, dw) = kernel, stride, pads, dilation
    out = np.zeros((batch, channels) + out_hw)
    grad = np.zeros_like(x)
    for n in range(batch):
        for c in range(channels):
            for r in range(out_hw[0]):
                for q in range(out_hw[1]):
                    best, where = -np.inf, None
                    for i in range(kh):
                        for j in range(kw):
                            row, col = r * sh - top + i * dh, q * sw - left + j * dw
                            inside = 0 <= row < h and 0 <= col < w
                            value = x[n, c, row, col] if inside else -np.inf
                            if where is None or value > best:
                                best, where = value, (row, col) if inside else None
                    out[n, c, r, q] = best
                    if where is not None:
                        grad[n, c, where[0], where[1]] += g[n, c, r, q]
    return out, grad


def loop_avg_pool2d(x, kernel, stride, pad, out_hw, count_include_pad, divisor_override):
    """PyTorch's average pooling: a window clipped to the padded image [-p, size + p) (ceil mode
    can run past it) is the divisor with count_include_pad, the input pixels in it otherwise."""
    batch, channels, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    out = np.zeros((batch, channels) + out_hw)
    for n in range(batch):
        for c in range(channels):
            for r in range(out_hw[0]):
                for q in range(out_hw[1]):
                    total, inside, in_padded = 0.0, 0, 0
                    for i in range(kh):
                        for j in range(kw):
                            row, col = r * sh - ph + i, q * sw - pw + j
                            if row < h + ph and col < w + pw:
                                in_padded += 1
                            if 0 <= row < h and 0 <= col < w:
                                total += x[n, c, row, col]
                                inside += 1
                    divisor = divisor_override or (in_padded if count_include_pad else inside)
                    out[n, c, r, q] = total / divisor
    return out


def loop_adaptive_avg_pool2d(x, out_hw):
    """Bin (r, q) averages rows floor(r H / OH) .. ceil((r + 1) H / OH) - 1, columns alike."""
    batch, channels, h, w = x.shape
    out = np.zeros((batch, channels) + out_hw)
    for n in range(batch):
        for c in range(channels):
            for r in range(out_hw[0]):
                for q in range(out_hw[1]):
                    r0, r1 = (r * h) // out_hw[0], math.ceil((r + 1) * h / out_hw[0])
                    q0, q1 = (q * w) // out_hw[1], math.ceil((q + 1) * w / out_hw[1])
                    out[n, c, r, q] = x[n, c, r0:r1, q0:q1].mean()
    return out


# --- hyper-parameter strategies -------------------------------------------------------------------


@st.composite
def conv_geometry(draw, max_batch=2, max_cg=2, max_groups=3, max_extra=3, max_kernel=3):
    """Shapes and hyper-parameters of one conv2d call, in the forms users pass them."""
    groups = draw(st.integers(1, max_groups), label="groups")
    cg, og = draw(st.integers(1, max_cg)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kinds = ["int", "pair", "valid"] + (["same"] if stride == (1, 1) else [])
    kind = draw(st.sampled_from(kinds), label="padding kind")
    if kind in ("valid", "same"):
        padding = kind
        totals = [0, 0] if kind == "valid" else [d * (k - 1) for d, k in zip(dilation, kernel)]
        pads = tuple((t // 2, t - t // 2) for t in totals)
    else:
        p = (draw(st.integers(0, 2)),) * 2 if kind == "int" else \
            (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        padding = p[0] if kind == "int" else p
        pads = ((p[0], p[0]), (p[1], p[1]))
    sizes = []
    for k, d, (a, b) in zip(kernel, dilation, pads):
        low = max(1, d * (k - 1) + 1 - a - b)
        sizes.append(draw(st.integers(low, low + max_extra)))
    return {"batch": draw(st.integers(1, max_batch)), "c_in": cg * groups, "c_out": og * groups,
            "hw": tuple(sizes), "kernel": kernel, "stride": stride, "padding": padding,
            "pads": pads, "dilation": dilation, "groups": groups,
            "bias": draw(st.booleans(), label="bias")}


def conv_inputs(data, geo, device, dtype=np.float64, requires_grad=False):
    x = draw_array(data, (geo["batch"], geo["c_in"]) + geo["hw"], label="x")
    w = draw_array(data, (geo["c_out"], geo["c_in"] // geo["groups"]) + geo["kernel"], label="w")
    b = draw_array(data, (geo["c_out"],), label="b") if geo["bias"] else None
    tensors = [None if a is None else tn.tensor(a, dtype=dtype, device=device,
                                                requires_grad=requires_grad) for a in (x, w, b)]
    return (x, w, b), tensors


def call_conv2d(geo, x, w, b):
    return F.conv2d(x, w, b, geo["stride"], geo["padding"], geo["dilation"], geo["groups"])


# --- conv2d ---------------------------------------------------------------------------------------


@given(data=st.data())
def test_conv2d_matches_direct_loop(device, data):
    geo = data.draw(conv_geometry(), label="geometry")
    (x, w, b), _ = conv_inputs(data, geo, device)
    expected = loop_conv2d(x, w, b, geo["stride"], geo["pads"], geo["dilation"], geo["groups"])
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-4)):
        tensors = [None if a is None else tn.tensor(a, dtype=dtype, device=device)
                   for a in (x, w, b)]
        out = call_conv2d(geo, *tensors)
        assert out.dtype == dtype and out.device == device
        np.testing.assert_allclose(host(out), expected, rtol=tol, atol=tol)


@given(data=st.data())
def test_conv2d_gradients_match_central_differences(device, data):
    geo = data.draw(conv_geometry(max_batch=1, max_cg=2, max_groups=2, max_extra=2),
                    label="geometry")
    _, tensors = conv_inputs(data, geo, device, requires_grad=True)
    check_gradients(lambda *t: call_conv2d(geo, *t) if geo["bias"] else
                    call_conv2d(geo, *t, None), *[t for t in tensors if t is not None])


@FEWER
@given(data=st.data())
def test_conv2d_second_derivatives(device, data):
    geo = data.draw(conv_geometry(max_batch=1, max_cg=1, max_groups=2, max_extra=1,
                                  max_kernel=2), label="geometry")
    _, tensors = conv_inputs(data, geo, device, requires_grad=True)
    check_gradients(lambda *t: call_conv2d(geo, *t) if geo["bias"] else
                    call_conv2d(geo, *t, None), *[t for t in tensors if t is not None],
                    second_order=True)


@needs_torch
@given(data=st.data())
def test_conv2d_matches_torch(data):
    geo = data.draw(conv_geometry(), label="geometry")
    arrays_, tensors = conv_inputs(data, geo, "cpu", requires_grad=True)
    refs = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays_]
    out = call_conv2d(geo, *tensors)
    expected = TF.conv2d(refs[0], refs[1], refs[2], geo["stride"], geo["padding"],
                         geo["dilation"], geo["groups"])
    np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = draw_array(data, tuple(expected.shape), label="grad_out")
    out.backward(tn.tensor(g, dtype=tn.float64))
    expected.backward(torch.tensor(g))
    for mine, theirs in zip(tensors, refs):
        if mine is not None:
            np.testing.assert_allclose(host(mine.grad), theirs.grad.numpy(), rtol=1e-10,
                                       atol=1e-12)


# Both layouts of tinynet/ops/conv.py: plain columns, and wrap-around columns on the buffer's row
# pitch (OWe > OW extra columns); and a pitch narrower than the padded width (a row's right padding
# is the next row's left padding). Each geometry says which it takes, so none goes untested.
LAYOUTS = [
    # (H, W, kernel, stride, padding, dilation, extra columns expected)
    ((4, 4), (3, 3), (1, 1), 0, (1, 1), False),  # OWe would be 4 > 1.5 * OW = 3
    ((5, 6), (3, 2), (2, 1), 1, (1, 1), False),  # unequal strides, shared padding column
    ((5, 5), (3, 3), (1, 1), 1, (1, 1), True),
    ((7, 9), (3, 3), (2, 2), 1, (1, 2), True),
    ((5, 7), (2, 2), (1, 1), 0, (1, 1), True),
    ((6, 6), (2, 3), (1, 1), 2, (2, 1), False),  # rows run on, with no extra column
    ((6, 6), (1, 1), (1, 1), 2, (1, 1), False),  # padding wider than the kernel reaches
]


@pytest.mark.parametrize("hw,kernel,stride,padding,dilation,extra", LAYOUTS)
def test_conv2d_layouts(device, hw, kernel, stride, padding, dilation, extra):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 4) + hw), rng.normal(size=(4, 2) + kernel), rng.normal(size=4)
    pads = ((padding, padding),) * 2
    plan = conv_plan((2, 4) + hw, kernel, stride, pads, dilation, 2)
    assert (plan.out_we > plan.out_hw[1]) == extra
    tx, tw, tb = (tn.tensor(a, device=device, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(tx, tw, tb, stride, padding, dilation, groups=2)
    np.testing.assert_allclose(host(out), loop_conv2d(x, w, b, stride, pads, dilation, 2),
                               rtol=1e-12, atol=1e-12)
    check_gradients(lambda *t: F.conv2d(*t, stride, padding, dilation, 2), tx, tw, tb,
                    fast_mode=True)


def test_conv2d_accepts_a_single_image_and_noncontiguous_input(device):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, 6, 5)), rng.normal(size=(2, 3, 2, 2))
    tx, tw = tn.tensor(x, device=device), tn.tensor(w, device=device)
    out = F.conv2d(tx, tw, padding=1)
    assert out.shape == (2, 7, 6)
    np.testing.assert_allclose(host(out), loop_conv2d(x[None], w, None, (1, 1), ((1, 1),) * 2,
                                                      (1, 1), 1)[0], rtol=1e-12, atol=1e-12)
    transposed = tn.tensor(x.transpose(0, 2, 1).copy(), device=device).permute(0, 2, 1)
    np.testing.assert_allclose(host(F.conv2d(transposed[None], tw)),
                               host(F.conv2d(tx[None], tw)), rtol=1e-12, atol=1e-12)


# --- max pooling ----------------------------------------------------------------------------------


@st.composite
def pool_geometry(draw, dilation=True, max_extra=3):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)  # PyTorch's limit
    sizes = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p),
                                   max(1, d * (k - 1) + 1 - 2 * p) + max_extra))
                  for k, d, p in zip(kernel, dil, pad))
    return {"batch": draw(st.integers(1, 2)), "channels": draw(st.integers(1, 2)), "hw": sizes,
            "kernel": kernel, "stride": stride, "padding": pad, "dilation": dil,
            "ceil_mode": draw(st.booleans(), label="ceil_mode")}


def pool_out_hw(geo):
    out = []
    for size, k, s, p, d in zip(geo["hw"], geo["kernel"], geo["stride"], geo["padding"],
                                geo["dilation"]):
        n = out_size(size, k, s, 2 * p, d)
        if geo["ceil_mode"]:
            n = math.ceil((size + 2 * p - d * (k - 1) - 1) / s) + 1
            n -= (n - 1) * s >= size + p  # PyTorch: the last window starts inside
        out.append(n)
    return tuple(out)


def int_if_square(pair):
    """PyTorch accepts an int for equal sides: pass one when the sides are equal."""
    return pair[0] if pair[0] == pair[1] else pair


def call_max_pool(geo, x):
    return F.max_pool2d(x, int_if_square(geo["kernel"]), geo["stride"], geo["padding"],
                        geo["dilation"], geo["ceil_mode"])


@given(data=st.data())
def test_max_pool2d_matches_direct_loop_with_ties(device, data):
    geo = data.draw(pool_geometry(), label="geometry")
    out_hw = pool_out_hw(geo)
    x = draw_array(data, (geo["batch"], geo["channels"]) + geo["hw"], COARSE, "x")
    g = draw_array(data, (geo["batch"], geo["channels"]) + out_hw, label="grad_out")
    pads = tuple((p, p) for p in geo["padding"])
    expected, expected_grad = loop_max_pool2d(x, g, geo["kernel"], geo["stride"], pads,
                                              geo["dilation"], out_hw)
    tx = tn.tensor(x, device=device, requires_grad=True)
    out = call_max_pool(geo, tx)
    np.testing.assert_array_equal(host(out), expected)
    out.backward(tn.tensor(g, device=device))
    np.testing.assert_allclose(host(tx.grad), expected_grad, rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_max_pool2d_gradients_match_central_differences(device, data):
    geo = data.draw(pool_geometry(max_extra=2), label="geometry")
    shape = (1, geo["channels"]) + geo["hw"]
    x = draw_array(data, shape, tn.testing.Domain(-2.0, 2.0, grid=1 / 64, unique=True), "x")
    tx = tn.tensor(x, device=device, requires_grad=True)
    # With dilation a window can lie entirely in the padding: its output is -inf, as in PyTorch,
    # and has no derivative to check.
    assume(np.isfinite(host(call_max_pool(geo, tx))).all())
    check_gradients(lambda t: call_max_pool(geo, t), tx, second_order=True)


def test_max_pool2d_ties_go_to_the_first_maximum(device):
    x = tn.tensor([[[[1.0, 3.0, 3.0],
                     [3.0, 0.0, 3.0],
                     [2.0, 3.0, 1.0]]]], device=device, requires_grad=True)
    out = F.max_pool2d(x, 2, stride=1)  # four overlapping windows, each holding tied 3s
    out.sum().backward()
    np.testing.assert_array_equal(host(out), [[[[3.0, 3.0], [3.0, 3.0]]]])
    # Windows at (0,0) and (0,1) pick (0,1) and (0,1); at (1,0) and (1,1): (1,0) and (1,2).
    np.testing.assert_array_equal(host(x.grad), [[[[0, 2, 0], [1, 0, 1], [0, 0, 0]]]])


@needs_torch
@given(data=st.data())
def test_max_pool2d_matches_torch_with_ties(data):
    geo = data.draw(pool_geometry(), label="geometry")
    x = draw_array(data, (geo["batch"], geo["channels"]) + geo["hw"], COARSE, "x")
    tx, rx = tn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = call_max_pool(geo, tx)
    expected = TF.max_pool2d(rx, geo["kernel"], geo["stride"], geo["padding"], geo["dilation"],
                             geo["ceil_mode"])
    # A window entirely in the padding (possible with dilation) is -inf in both, but PyTorch's
    # CPU kernel then sends its gradient to an index outside the image (into the next channel).
    assume(np.isfinite(expected.detach().numpy()).all())
    np.testing.assert_array_equal(host(out), expected.detach().numpy())
    g = draw_array(data, tuple(expected.shape), label="grad_out")
    out.backward(tn.tensor(g, dtype=tn.float64))
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(host(tx.grad), rx.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- average pooling ------------------------------------------------------------------------------


def avg_options(data):
    return {"count_include_pad": data.draw(st.booleans(), label="count_include_pad"),
            "divisor_override": data.draw(st.sampled_from([None, None, 2, 5]), label="divisor")}


def call_avg_pool(geo, opts, x):
    return F.avg_pool2d(x, int_if_square(geo["kernel"]), geo["stride"], geo["padding"],
                        geo["ceil_mode"], opts["count_include_pad"], opts["divisor_override"])


@given(data=st.data())
def test_avg_pool2d_matches_direct_loop(device, data):
    geo = data.draw(pool_geometry(dilation=False), label="geometry")
    opts = avg_options(data)
    x = draw_array(data, (geo["batch"], geo["channels"]) + geo["hw"], label="x")
    expected = loop_avg_pool2d(x, geo["kernel"], geo["stride"], geo["padding"], pool_out_hw(geo),
                               opts["count_include_pad"], opts["divisor_override"])
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        out = call_avg_pool(geo, opts, tn.tensor(x, dtype=dtype, device=device))
        assert out.dtype == dtype
        np.testing.assert_allclose(host(out), expected, rtol=tol, atol=tol)


@given(data=st.data())
def test_avg_pool2d_gradients_match_central_differences(device, data):
    geo = data.draw(pool_geometry(dilation=False, max_extra=2), label="geometry")
    opts = avg_options(data)
    x = draw_array(data, (1, geo["channels"]) + geo["hw"], label="x")
    check_gradients(lambda t: call_avg_pool(geo, opts, t),
                    tn.tensor(x, device=device, requires_grad=True))


@needs_torch
@given(data=st.data())
def test_avg_pool2d_matches_torch(data):
    geo = data.draw(pool_geometry(dilation=False), label="geometry")
    opts = avg_options(data)
    x = draw_array(data, (geo["batch"], geo["channels"]) + geo["hw"], label="x")
    tx, rx = tn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = call_avg_pool(geo, opts, tx)
    expected = TF.avg_pool2d(rx, geo["kernel"], geo["stride"], geo["padding"], geo["ceil_mode"],
                             **opts)
    np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = draw_array(data, tuple(expected.shape), label="grad_out")
    out.backward(tn.tensor(g, dtype=tn.float64))
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(host(tx.grad), rx.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- adaptive average pooling ---------------------------------------------------------------------


@st.composite
def adaptive_case(draw, max_side=6):
    hw = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    out_hw = tuple(draw(st.integers(1, s + 1)) for s in hw)  # larger than the input works too
    form = draw(st.sampled_from(["pair", "int", "none"]))
    if form == "int":
        out_hw = (out_hw[0], out_hw[0])
        arg = out_hw[0]
    elif form == "none":
        out_hw = (hw[0], out_hw[1])
        arg = (None, out_hw[1])
    else:
        arg = out_hw
    return hw, out_hw, arg


@given(data=st.data())
def test_adaptive_avg_pool2d_matches_direct_loop(device, data):
    hw, out_hw, arg = data.draw(adaptive_case(), label="sizes")
    x = draw_array(data, (2, 2) + hw, label="x")
    out = F.adaptive_avg_pool2d(tn.tensor(x, device=device), arg)
    np.testing.assert_allclose(host(out), loop_adaptive_avg_pool2d(x, out_hw), rtol=1e-12,
                               atol=1e-12)


@given(data=st.data())
def test_adaptive_avg_pool2d_gradients_match_central_differences(device, data):
    hw, _, arg = data.draw(adaptive_case(max_side=4), label="sizes")
    x = draw_array(data, (1, 2) + hw, label="x")
    check_gradients(lambda t: F.adaptive_avg_pool2d(t, arg),
                    tn.tensor(x, device=device, requires_grad=True), second_order=True)


@needs_torch
@given(data=st.data())
def test_adaptive_avg_pool2d_matches_torch(data):
    hw, _, arg = data.draw(adaptive_case(), label="sizes")
    x = draw_array(data, (2, 3) + hw, label="x")
    tx, rx = tn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = F.adaptive_avg_pool2d(tx, arg), TF.adaptive_avg_pool2d(rx, arg)
    np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = draw_array(data, tuple(expected.shape), label="grad_out")
    out.backward(tn.tensor(g, dtype=tn.float64))
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(host(tx.grad), rx.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- modules --------------------------------------------------------------------------------------


def test_conv2d_module_parameters_and_default_init(device):
    tn.manual_seed(0)
    conv = tn.nn.Conv2d(6, 8, (3, 2), stride=2, padding=1, groups=2, device=device)
    assert conv.weight.shape == (8, 3, 3, 2) and conv.bias.shape == (8,)
    assert conv.weight.device == device and conv.weight.dtype == tn.float32
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert conv.num_parameters() == 8 * 3 * 3 * 2 + 8
    bound = 1 / math.sqrt(3 * 3 * 2)  # fan_in = in_channels / groups * kH * kW
    for p in (conv.weight, conv.bias):
        values = host(p)
        assert np.all(np.abs(values) <= bound)
    # U(-bound, bound): 144 weights reach beyond 0.8 * bound on both sides (P(miss) < 1e-13).
    w = host(conv.weight)
    assert w.max() > 0.8 * bound and w.min() < -0.8 * bound
    tn.manual_seed(0)
    again = tn.nn.Conv2d(6, 8, (3, 2), stride=2, padding=1, groups=2, device=device)
    np.testing.assert_array_equal(host(again.weight), w)
    assert tn.nn.Conv2d(2, 4, 3, bias=False).bias is None
    assert list(tn.nn.Conv2d(2, 4, 3, bias=False).state_dict()) == ["weight"]


def test_conv2d_module_forward_is_the_function(device):
    conv = tn.nn.Conv2d(4, 6, 3, stride=(1, 2), padding=1, dilation=1,
                        groups=2, device=device, dtype=tn.float64)
    x = tn.randn(2, 4, 5, 7, dtype=tn.float64, device=device)
    expected = F.conv2d(x, conv.weight, conv.bias, (1, 2), 1, 1, 2)
    np.testing.assert_array_equal(host(conv(x)), host(expected))
    assert conv(x[0]).shape == expected.shape[1:]  # a single image (C, H, W)


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                          ("circular", "wrap")])
def test_conv2d_padding_modes(device, mode, np_mode):
    conv = tn.nn.Conv2d(2, 3, (3, 2), padding=(2, 1), padding_mode=mode, device=device,
                        dtype=tn.float64)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 2, 4, 5))
    padded = np.pad(x, [(0, 0), (0, 0), (2, 2), (1, 1)], mode=np_mode)
    expected = loop_conv2d(padded, host(conv.weight), host(conv.bias), (1, 1), ((0, 0),) * 2,
                           (1, 1), 1)
    tx = tn.tensor(x, device=device, requires_grad=True)
    np.testing.assert_allclose(host(conv(tx)), expected, rtol=1e-12, atol=1e-12)
    check_gradients(conv, tx)


def test_conv2d_repr_follows_pytorch():
    assert repr(tn.nn.Conv2d(1, 8, 3)) == "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1))"
    assert repr(tn.nn.Conv2d(4, 8, (3, 5), stride=2, padding=1, dilation=2, groups=2, bias=False,
                             padding_mode="reflect")) == (
        "Conv2d(4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "groups=2, bias=False, padding_mode=reflect)")
    assert repr(tn.nn.MaxPool2d(2)) == ("MaxPool2d(kernel_size=2, stride=2, padding=0, "
                                        "dilation=1, ceil_mode=False)")
    assert repr(tn.nn.AvgPool2d(3, 1)) == "AvgPool2d(kernel_size=3, stride=1, padding=0)"
    assert repr(tn.nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"


@needs_torch
def test_conv2d_module_matches_torch_module():
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2).double()
    conv = tn.nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2, dtype=tn.float64)
    conv.load_state_dict({k: tn.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(3).normal(size=(2, 4, 6, 5))
    np.testing.assert_allclose(host(conv(tn.tensor(x))), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    assert repr(conv) == repr(ref)


def test_pooling_modules_are_their_functions(device):
    x = tn.randn(2, 3, 7, 6, dtype=tn.float64, device=device)
    np.testing.assert_array_equal(host(tn.nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x)),
                                  host(F.max_pool2d(x, 3, 2, 1, ceil_mode=True)))
    np.testing.assert_array_equal(host(tn.nn.AvgPool2d(2, count_include_pad=False, padding=1)(x)),
                                  host(F.avg_pool2d(x, 2, padding=1, count_include_pad=False)))
    np.testing.assert_array_equal(host(tn.nn.AdaptiveAvgPool2d((2, None))(x)),
                                  host(F.adaptive_avg_pool2d(x, (2, None))))
    assert tn.nn.AdaptiveAvgPool2d(1)(x).shape == (2, 3, 1, 1)
    assert tn.nn.MaxPool2d(2)(x[0]).shape == (3, 3, 3)


def test_small_cnn_trains_on_every_device(device):
    """Conv -> ReLU -> MaxPool -> AvgPool -> Flatten -> Linear: the loss falls with plain SGD
    steps written here (the optimizers live elsewhere), and the run is deterministic by seed."""
    def run():
        tn.manual_seed(0)
        model = tn.nn.Sequential(tn.nn.Conv2d(1, 4, 3, padding=1), tn.nn.ReLU(),
                                 tn.nn.MaxPool2d(2), tn.nn.Conv2d(4, 4, 3, groups=2),
                                 tn.nn.AdaptiveAvgPool2d(1), tn.nn.Flatten(),
                                 tn.nn.Linear(4, 2)).to(device)
        x = tn.randn(8, 1, 8, 8, device=device)
        target = (x.sum(axis=(1, 2, 3)) > 0).float()  # a learnable rule
        losses = []
        for _ in range(30):
            out = model(x)
            loss = ((out[:, 1] - out[:, 0] - (2 * target - 1)) ** 2).mean()
            model.zero_grad()
            loss.backward()
            with tn.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
            losses.append(loss.item())
        return losses
    losses = run()
    assert losses[-1] < 0.5 * losses[0]
    assert run() == losses


# --- errors ---------------------------------------------------------------------------------------


ERRORS = [
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 2, 3, 3)), ValueError,
     r"conv2d: input of shape \(1, 3, 5, 5\).*weight of shape \(4, 2, 3, 3\)"),
    (lambda: F.conv2d(tn.zeros(1, 4, 5, 5), tn.zeros(4, 2, 3, 3), groups=3), ValueError,
     r"conv2d: .*\(1, 4, 5, 5\).*groups=3"),
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3)), ValueError,
     r"conv2d: expected a 4-D weight .*\(4, 3, 3\).*\(1, 3, 5, 5\)"),
    (lambda: F.conv2d(tn.zeros(5, 5), tn.zeros(4, 3, 3, 3)), ValueError,
     r"conv2d: expected a 3-D .* or 4-D .* input, got shape \(5, 5\)"),
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3, 3), tn.zeros(3)), ValueError,
     r"conv2d: bias of shape \(3,\) does not match weight of shape \(4, 3, 3, 3\)"),
    (lambda: F.conv2d(tn.zeros(1, 3, 2, 5), tn.zeros(4, 3, 3, 3)), ValueError,
     r"conv2d: input of shape \(1, 3, 2, 5\) .* smaller than the dilated kernel \(3 x 3\)"),
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3, 3), stride=2, padding="same"),
     ValueError, "padding='same' is not supported for strided convolutions"),
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3, 3, dtype=tn.float64)), TypeError,
     r"conv2d: input \(float32\), weight \(float64\)"),
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3, 3), stride=0), ValueError,
     "conv2d: stride must be an int or a pair of ints, each positive, got 0"),
    (lambda: F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3, 3), padding="full"), ValueError,
     "conv2d: invalid padding string 'full'"),
    (lambda: tn.nn.Conv2d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
    (lambda: tn.nn.Conv2d(3, 4, 3, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda: F.max_pool2d(tn.zeros(1, 1, 4, 4), 2, padding=2), ValueError,
     "max_pool2d: pad should be at most half of kernel size"),
    (lambda: F.max_pool2d(tn.zeros(1, 1, 1, 4), 3), ValueError,
     r"max_pool2d: input of shape \(1, 1, 1, 4\) is too small"),
    (lambda: F.avg_pool2d(tn.zeros(1, 1, 4, 4), 3, divisor_override=0), ValueError,
     "avg_pool2d: divisor_override must be an int >= 1, got 0"),
    (lambda: F.adaptive_avg_pool2d(tn.zeros(1, 1, 4, 4), 0), ValueError,
     "adaptive_avg_pool2d: output_size must be an int or a pair of ints, each positive, got 0"),
    (lambda: F.max_pool2d(tn.zeros(1, 1, 4, 4), 2, return_indices=True), NotImplementedError,
     "return_indices"),
    (lambda: F.avg_pool2d(tn.zeros(1, 1, 4, 4, dtype=tn.int64), 2), TypeError,
     "avg_pool2d: expected a floating-point input, got int64"),
    (lambda: F.max_pool2d(tn.zeros(1, 1, 4, 4, dtype=tn.int64), 2), TypeError,
     "max_pool2d: expected a floating-point input, got int64"),
]


@pytest.mark.parametrize("call,error,message", ERRORS)
def test_errors_name_the_op_and_the_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_mixed_devices_are_refused():
    with pytest.raises(RuntimeError, match="same device"):
        F.conv2d(tn.zeros(1, 3, 5, 5), tn.zeros(4, 3, 3, 3, device="standin"))


def test_docs_convolution_snippets_run():
    text = (Path(__file__).parent.parent / "docs" / "nn.md").read_text()
    section = re.search(r"^## Convolution and pooling\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/nn.md has no '## Convolution and pooling' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/nn.md (Convolution and pooling)", "exec"), {})  # noqa: S102
