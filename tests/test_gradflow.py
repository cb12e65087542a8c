"""Gradient-flow diagnostics: the norms are NumPy's norms of the real gradients and updates, a deep
sigmoid network is flagged as vanishing and a Kaiming-initialised ReLU network is not."""

import importlib.util
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import nn
from tinynet.train import (
    GradientFlow,
    check_flow,
    gradient_flow,
    plot_gradient_flow,
    snapshot_parameters,
)


def host(t) -> np.ndarray:
    return t.cpu().numpy().astype(np.float64)


def mlp(act, depth: int, width: int = 16, d_in: int = 4, kaiming: bool = False,
        device: str = "cpu") -> nn.Module:
    layers, d = [], d_in
    for _ in range(depth):
        linear = nn.Linear(d, width)
        if kaiming:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, act()]
        d = width
    layers.append(nn.Linear(d, 3))
    return nn.Sequential(*layers).to(device)


def one_step(model, device, seed=0, lr=0.1, batch=8):
    """Forward, backward, snapshot, SGD step: returns the snapshot and host copies before."""
    gen = np.random.default_rng(seed)
    x = tn.tensor(gen.normal(size=(batch, 4)).astype(np.float32), device=device)
    y = tn.tensor(gen.integers(0, 3, size=batch), device=device)
    nn.CrossEntropyLoss()(model(x), y).backward()
    before = snapshot_parameters(model)
    host_before = {name: host(p) for name, p in model.named_parameters()}
    tn.optim.SGD(model.parameters(), lr=lr, momentum=0.5).step()
    return before, host_before


@settings(max_examples=10)
@given(depth=st.integers(1, 3), width=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_norms_and_ratios_equal_numpy_on_every_parameter(device, depth, width, seed):
    tn.manual_seed(seed)
    model = mlp(nn.Tanh, depth, width, device=device)
    before, host_before = one_step(model, device, seed)
    layers = gradient_flow(model, before)
    params = dict(model.named_parameters())
    assert [layer["name"] for layer in layers] == list(params)
    for layer in layers:
        p = params[layer["name"]]
        w_before, w_after = host_before[layer["name"]], host(p)
        assert layer["shape"] == tuple(p.shape)
        assert layer["grad_norm"] == pytest.approx(np.linalg.norm(host(p.grad)), rel=1e-6)
        assert layer["weight_norm"] == pytest.approx(np.linalg.norm(w_after), rel=1e-6)
        expected = np.linalg.norm(w_after - w_before) / np.linalg.norm(w_before)
        assert layer["update_ratio"] == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_no_gradient_no_snapshot_and_zero_weights_give_none():
    model = mlp(nn.ReLU, 1)
    assert all(layer["grad_norm"] is None and layer["update_ratio"] is None
               for layer in gradient_flow(model))  # before any backward
    nn.init.zeros_(model[0].bias)
    before, _ = one_step(model, "cpu")
    bias = next(layer for layer in gradient_flow(model, before) if layer["name"] == "0.bias")
    assert bias["update_ratio"] is None  # ||w_before|| = 0: the ratio is undefined
    model[2].weight.requires_grad_(False)  # frozen parameters are not measured
    assert "2.weight" not in [layer["name"] for layer in gradient_flow(model)]


def test_gradient_norms_do_not_underflow_in_float32():
    w = nn.Parameter(tn.ones(100))
    (w * 1e-20).sum().backward()  # each element's gradient 1e-20: its square underflows float32
    assert gradient_flow([("w", w)])[0]["grad_norm"] == pytest.approx(1e-19, rel=1e-5)


def _digits_like(seed=0, n=96):
    gen = np.random.default_rng(seed)
    x = gen.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return tn.data.DataLoader(tn.data.TensorDataset(tn.tensor(x), tn.tensor(y)), batch_size=32,
                              shuffle=True, seed=seed)


def _train(model, every="epoch", epochs=2, lr=0.05, **kwargs):
    stream = io.StringIO()
    flow = GradientFlow(every=every, stream=stream, **kwargs)
    tn.train.fit(model, nn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=lr),
                 _digits_like(), epochs, callbacks=[flow], progress=False)
    return flow, stream.getvalue()


def test_deep_sigmoid_network_is_flagged_as_vanishing():
    tn.manual_seed(0)
    flow, printed = _train(mlp(nn.Sigmoid, depth=16))
    vanishing = flow.flagged("vanishing")
    assert "0.weight" in vanishing  # the first layer, furthest from the loss
    assert "32.weight" not in vanishing  # the output layer gets the full gradient
    assert "vanishing gradient: 0.weight (parameter 1 of 34)" in printed
    assert printed.count(": 0.weight (") == 1  # each warning is printed once, not every record
    first = flow.records[-1]["layers"][0]["grad_norm"]
    last = flow.records[-1]["layers"][-2]["grad_norm"]
    assert first < 1e-7 * last


def test_relu_network_with_kaiming_init_is_not_flagged():
    tn.manual_seed(0)
    flow, printed = _train(mlp(nn.ReLU, depth=16, kaiming=True))
    assert flow.flagged() == [] and printed == ""
    norms = [layer["grad_norm"] for layer in flow.records[-1]["layers"][::2]]  # weights
    assert max(norms) / min(norms) < 1e3  # the gradient reaches the first layer


def test_records_per_epoch_and_per_iteration():
    tn.manual_seed(0)
    by_epoch, _ = _train(mlp(nn.ReLU, 2), every="epoch", epochs=3)
    assert [(r["epoch"], r["iteration"], r["step"]) for r in by_epoch.records] == [
        (1, 3, 3), (2, 3, 6), (3, 3, 9)]  # 96 samples / 32 = 3 batches per epoch
    by_batch, _ = _train(mlp(nn.ReLU, 2), every="iteration", epochs=2)
    assert [r["step"] for r in by_batch.records] == list(range(1, 7))
    for flow in (by_epoch, by_batch):  # every record knows the update of its own step
        assert all(layer["update_ratio"] > 0 for r in flow.records for layer in r["layers"])
    with pytest.raises(ValueError, match="every must be"):
        GradientFlow(every="batch")


def test_huge_gradients_are_flagged_as_exploding():
    tn.manual_seed(0)
    model = mlp(nn.ReLU, 4, kaiming=True)
    for p in model.parameters():
        p.data[...] *= 30.0  # in place on the raw array: activations and gradients grow ~30x
    flow, printed = _train(model, epochs=1, lr=1e-9)
    assert "0.weight" in flow.flagged("exploding")
    assert "exploding gradient: 0.weight" in printed and "clip" in printed


def test_total_norm_growing_fast_is_exploding_and_nan_is_exploding():
    def layers(*norms):
        return [{"name": f"p{i}", "grad_norm": g} for i, g in enumerate(norms)]
    assert check_flow(layers(1.0, 2.0), previous=layers(0.5, 0.5)) == []
    grown = check_flow(layers(60.0, 80.0), previous=layers(0.3, 0.4))  # total 0.5 -> 100
    assert [f["kind"] for f in grown] == ["exploding"] and "grew 200x" in grown[0]["message"]
    nan = check_flow(layers(float("nan"), 1.0))
    assert [(f["kind"], f["name"]) for f in nan] == [("exploding", "p0")]
    assert check_flow(layers(1e-6, 1.0), vanishing=1e-7) == []
    assert [f["name"] for f in check_flow(layers(1e-6, 1.0), vanishing=1e-5)] == ["p0"]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_plot_gradient_flow_writes_a_png(tmp_path):
    tn.manual_seed(0)
    flow, _ = _train(mlp(nn.Sigmoid, 3), every="iteration")
    plot_gradient_flow(flow.records, tmp_path / "flow.png")
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    plot_gradient_flow(flow.records[-1]["layers"], tmp_path / "one.png")  # one measurement
    assert (tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_gradient_flow([], tmp_path / "none.png")
