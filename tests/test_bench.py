"""``tinynet bench``: the smoke run, the NumPy ceiling's gradients and the FLOP counts.

No timing thresholds: the smoke test checks the shape of the output (table, JSON keys, bytes
counted), never how fast anything was.
"""

import itertools
import json
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import bench

RECORD_KEYS = {"model", "impl", "device", "batch_size", "samples", "iterations", "epoch_seconds",
               "samples_per_s", "iterations_per_s", "matmul_gflop_per_epoch", "gflop_per_s",
               "matmul_peak_gflop_per_s", "fraction_of_peak", "overhead_us_per_step",
               "loss_first", "loss_last", "loss_decreased", "peak_rss_mib", "time_vs_tinynet"}


def test_quick_run_writes_table_json_and_plot(tmp_path):
    # --threads 1 exercises the pinned-thread path (a child process when threadpoolctl is
    # missing); "standin" runs tinynet through the device path with CuPy's rules.
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "tinynet", "bench", "--quick", "--threads", "1",
           "--device", "cpu,standin,cuda", "--model", "mlp,cnn", "--batch-sizes", "16,32",
           "--out", str(out)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "bench.json").read_text())
    assert doc["quick"] and doc["epochs_measured"] == 1 and doc["threads"] == 1
    env = doc["environment"]
    assert env["numpy"] == np.__version__ and "blas" in env
    assert env["thread_env"]["OPENBLAS_NUM_THREADS"] == "1"

    records = doc["records"]
    for rec in records:
        assert RECORD_KEYS <= rec.keys(), RECORD_KEYS - rec.keys()
        assert rec["samples"] == rec["iterations"] * rec["batch_size"]
        assert np.isfinite(rec["loss_first"]) and np.isfinite(rec["loss_last"])
    have = {(r["model"], r["impl"], r["device"], r["batch_size"]) for r in records}
    for model in ("mlp", "cnn"):
        for batch in (16, 32):
            assert (model, "tinynet", "cpu", batch) in have
            assert (model, "tinynet", "standin", batch) in have
            assert ((model, "numpy", "cpu", batch) in have) == (model == "mlp")
            if bench.torch_status("cpu") is None:
                assert (model, "torch", "cpu", batch) in have
    if tn.cuda.is_available():
        assert any(r["device"] == "cuda" for r in records)
    else:
        assert "cuda" in doc["missing"] and "cuda: not run" in done.stdout
        assert "needs a GPU" in done.stdout

    for rec in records:
        if rec["impl"] == "tinynet":
            assert rec["time_vs_tinynet"] == 1.0
            assert set(rec["phases_seconds"]) == {"data", "forward", "backward", "optimizer"}
        if rec["device"] == "standin":  # every batch and every loss read crosses over
            per_batch = rec["batch_size"] * (784 * 4 + 8)
            assert rec["host_to_device_bytes"] == rec["iterations"] * per_batch
            assert rec["device_to_host_bytes"] == rec["iterations"] * 4
        elif rec["device"] == "cpu" and rec["impl"] == "tinynet":
            assert rec["host_to_device_bytes"] == rec["device_to_host_bytes"] == 0

    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| model | batch | impl |")
    assert len(table) == 1 + len(records)  # header, then one row per record
    assert all(line.count("|") == 13 for line in table)
    assert (out / "bench.md").read_text().startswith(table[0])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in done.stdout
    else:
        assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_model_is_a_usage_error(capsys):
    from tinynet import cli

    assert cli.main(["bench", "--model", "rnn", "--quick"]) == 2
    assert "unknown model 'rnn'" in capsys.readouterr().err


def _tiny_mlp(sizes):
    layers = []
    for k, (i, o) in enumerate(itertools.pairwise(sizes)):
        layers += [tn.nn.Linear(i, o)] + ([tn.nn.ReLU()] if k < len(sizes) - 2 else [])
    return tn.nn.Sequential(*layers)


@settings(max_examples=15)
@given(sizes=st.lists(st.integers(2, 6), min_size=2, max_size=4),
       batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_numpy_mlp_gradients_equal_tinynet(sizes, batch, seed):
    tn.manual_seed(seed)
    model = _tiny_mlp(sizes)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    linears = [m for m in model.modules() if isinstance(m, tn.nn.Linear)]
    ref = bench.NumpyMLP([m.weight.numpy() for m in linears], [m.bias.numpy() for m in linears])

    loss = tn.nn.CrossEntropyLoss()(model(tn.tensor(x)), tn.tensor(y))
    loss.backward()
    ref_loss, grads = ref.loss_and_grads(x, y)
    np.testing.assert_allclose(ref_loss, loss.item(), rtol=1e-5, atol=1e-6)
    expected = [g for m in linears for g in (m.weight.grad.numpy(), m.bias.grad.numpy())]
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_numpy_mlp_step_follows_tinynet_sgd():
    tn.manual_seed(3)
    model = _tiny_mlp([5, 4, 3])
    linears = [m for m in model.modules() if isinstance(m, tn.nn.Linear)]
    ref = bench.NumpyMLP([m.weight.numpy() for m in linears], [m.bias.numpy() for m in linears])
    opt = tn.optim.SGD(model.parameters(), lr=bench.LR, momentum=bench.MOMENTUM)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 5)).astype(np.float32)
        y = rng.integers(0, 3, 4)
        opt.zero_grad()
        tn.nn.CrossEntropyLoss()(model(tn.tensor(x)), tn.tensor(y)).backward()
        opt.step()
        ref.step(ref.loss_and_grads(x, y)[1])
    params = [p.numpy() for p in model.parameters()]
    for got, want in zip(ref.params, params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_linear_flops_count_every_multiply_add():
    # forward x @ W.T: B*O dot products of length I; weight grad: O*I of length B; input grad:
    # B*I of length O. Two FLOPs per multiply-add.
    b, i, o = 3, 5, 7
    assert bench.linear_flops(b, i, o, input_grad=False) == 2 * (b * o * i + o * i * b)
    assert bench.linear_flops(b, i, o) == 2 * (b * o * i + o * i * b + b * i * o)


def test_step_flops_match_the_networks_shapes():
    batch = 2
    mlp = bench.build_tinynet("mlp")
    weights = [m.weight.shape for m in mlp.modules() if isinstance(m, tn.nn.Linear)]
    want = sum(2 * batch * o * i * (2 if k == 0 else 3) for k, (o, i) in enumerate(weights))
    assert bench.step_flops("mlp", batch) == want

    cnn = bench.build_tinynet("cnn")
    x = tn.tensor(bench.synthetic_data("cnn", batch)[0])
    want = 0
    for k, layer in enumerate(cnn):  # im2col: each output element is a dot of C_in*k*k terms
        out = layer(x)
        if isinstance(layer, (tn.nn.Conv2d, tn.nn.Linear)):
            per_out = x.numel() // batch if isinstance(layer, tn.nn.Linear) else \
                layer.weight.shape[1] * layer.weight.shape[2] * layer.weight.shape[3]
            want += 2 * out.numel() * per_out * (2 if k == 0 else 3)
        x = out
    assert bench.step_flops("cnn", batch) == want
