"""``tinynet bench``: the smoke runs, the NumPy ceiling's gradients, the FLOP counts, the width
sweep, the fixed cost per step, traced memory and BLAS threads as a lever.

No timing thresholds: the smoke tests check the shape of the output (table, JSON keys, bytes
counted, which records exist and what they carry), never how fast anything was.
"""

import importlib.util
import itertools
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import bench, runtime
from tinynet.bench import cli as bench_cli
from tinynet.bench import report, run, threads, workloads

RECORD_KEYS = {"model", "series", "width", "sizes", "impl", "device", "batch_size", "threads",
               "blas_threads", "samples", "iterations", "epoch_seconds", "samples_per_s",
               "iterations_per_s", "matmul_gflop_per_epoch", "gflop_per_s",
               "matmul_peak_gflop_per_s", "fraction_of_peak", "overhead_us_per_step", "peak_exceeded",
               "loss_first", "loss_last", "loss_decreased", "peak_rss_mib", "peak_traced_mib",
               "time_vs_tinynet"}
TABLE_PIPES = 16  # 15 columns


def _bench(*args, timeout=300):
    """Run ``python -m tinynet bench ARGS``; the finished process (its exit status is checked)."""
    cmd = [sys.executable, "-m", "tinynet", "bench", *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


def _tables(stdout: str) -> list:
    """The Markdown tables of the report, in order, each as its list of lines."""
    tables, current = [], []
    for line in stdout.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _png_size(path: Path) -> tuple:
    """(width, height) in pixels, from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def _positive_finite(x) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def test_quick_run_writes_table_json_and_plot(tmp_path):
    # --threads 1 exercises the pinned-thread path (a child process when threadpoolctl is
    # missing); "standin" runs tinynet through the device path with CuPy's rules.
    out = tmp_path / "bench"
    done = _bench("--quick", "--threads", "1", "--device", "cpu,standin", "--model",
                  "mlp,cnn", "--batch-sizes", "16,32", "--out", str(out))
    doc = json.loads((out / "bench.json").read_text())
    assert doc["quick"] and doc["epochs_measured"] == 1 and doc["threads"] == 1
    env = doc["environment"]
    assert env["numpy"] == np.__version__ and "blas" in env
    assert env["thread_env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert env["blas_threads"] in (None, 1)  # what the library reports, when it can be read

    records = doc["records"]
    for rec in records:
        assert RECORD_KEYS <= rec.keys(), RECORD_KEYS - rec.keys()
        assert rec["samples"] == rec["iterations"] * rec["batch_size"]
        assert np.isfinite(rec["loss_first"]) and np.isfinite(rec["loss_last"])
        assert rec["series"] == "batch" and rec["threads"] == 1
        assert rec["blas_threads"] in (None, 1)
        assert rec["width"] == (256 if rec["model"] == "mlp" else None)
    have = {(r["model"], r["impl"], r["device"], r["batch_size"]) for r in records}
    for model in ("mlp", "cnn"):
        for batch in (16, 32):
            assert (model, "tinynet", "cpu", batch) in have
            assert (model, "tinynet", "standin", batch) in have
            assert ((model, "numpy", "cpu", batch) in have) == (model == "mlp")
            if bench.torch_status("cpu") is None:
                assert (model, "torch", "cpu", batch) in have
    assert "needs a GPU" in done.stdout and "cuda" not in doc["missing"]  # cuda was not asked

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
        # traced host memory: NumPy (and so tinynet on cpu/standin) reports to tracemalloc;
        # PyTorch does not and the GPU's memory is not host memory
        if rec["impl"] == "torch" or rec["device"] == "cuda":
            assert rec["peak_traced_mib"] is None
        else:
            assert _positive_finite(rec["peak_traced_mib"]), rec

    # the fixed cost per step: one entry per implementation and device that ran
    fixed = {(row["impl"], row["device"]): row for row in doc["fixed_step_us"]}
    want = {(impl, dev) for _, impl, dev, _ in have}
    assert set(fixed) == want
    for row in fixed.values():
        us = row["us_per_step"]
        assert all(_positive_finite(us[k]) for k in ("median", "min", "max"))
        assert us["min"] <= us["median"] <= us["max"] and _positive_finite(row["mean_us_per_step"])
        assert row["sizes"] == list(workloads.FIXED_SIZES)
        assert row["batch_size"] == workloads.FIXED_BATCH
        assert (row["steps"], us["repeats"]) == run.FIXED_STEPS[True] and row["threads"] == 1

    main, fixed_table = _tables(done.stdout)[:2]
    assert "Epoch time by batch size (MLP 784-256-128-10, CNN):" in done.stdout
    assert main[0].startswith("| model | batch | samples | impl | device | threads | epoch s |")
    assert "peak MiB (traced)" in main[0] and "width sweep" not in done.stdout
    assert len(main) == 2 + len(records)  # header, rule, then one row per record
    assert all(line.count("|") == TABLE_PIPES for line in main)
    assert fixed_table[0].startswith("| impl | device | threads | us/step")
    assert len(fixed_table) == 2 + len(fixed)
    assert "Fixed cost per training step (MLP 16-16-16-10, batch 8" in done.stdout
    assert (out / "bench.md").read_text().startswith("Epoch time by batch size")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in done.stdout
    else:
        assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert _png_size(out / "bench.png") == (1000, 400)  # one panel per model, no sweep


# --- the width sweep and two thread counts, from one run -------------------------------------

SWEEP_WIDTHS, SWEEP_BATCH, SWEEP_SAMPLES = (256, 512), 64, 128


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """One quick run with a width sweep at two BLAS thread counts (one child process each)."""
    out = tmp_path_factory.mktemp("bench-sweep")
    done = _bench("--quick", "--model", "mlp", "--batch-sizes", "64",  # default devices
                  "--widths", ",".join(map(str, SWEEP_WIDTHS)), "--sweep-batch", str(SWEEP_BATCH),
                  "--sweep-samples", str(SWEEP_SAMPLES),
                  "--threads", "1,2", "--no-fixed", "--out", str(out))
    return done, json.loads((out / "bench.json").read_text()), out


def test_width_sweep_records_are_present_and_well_formed(sweep_run):
    done, doc, out = sweep_run
    if not tn.cuda.is_available():  # the default devices: cpu, and cuda only where it can run
        assert "cuda" in doc["missing"] and "- cuda: not run (device 'cuda' needs" in done.stdout
    impls = ["tinynet", "numpy"] + (["torch"] if bench.torch_status("cpu") is None else [])
    sweep = [r for r in doc["records"] if r["series"] == "width" and r["device"] == "cpu"]
    assert doc["widths"] == list(SWEEP_WIDTHS) and doc["sweep_batch_sizes"] == [SWEEP_BATCH]
    assert sorted((r["width"], r["impl"], r["threads"]) for r in sweep) == sorted(
        itertools.product(SWEEP_WIDTHS, impls, (1, 2)))
    # FLOPs of one step of 784-W-(W/2)-10 at batch 64, by hand: 2 per multiply-add; forward and
    # weight gradient for every layer, input gradient for all but the first
    hand = {256: 2 * 64 * (784 * 256 * 2 + 256 * 128 * 3 + 128 * 10 * 3),
            512: 2 * 64 * (784 * 512 * 2 + 512 * 256 * 3 + 256 * 10 * 3)}
    for rec in sweep:
        assert RECORD_KEYS <= rec.keys(), RECORD_KEYS - rec.keys()
        w = rec["width"]
        assert rec["model"] == "mlp" and rec["sizes"] == [784, w, w // 2, 10]
        assert rec["batch_size"] == SWEEP_BATCH
        assert rec["samples"] == rec["iterations"] * SWEEP_BATCH == SWEEP_SAMPLES
        assert rec["matmul_gflop_per_epoch"] == pytest.approx(hand[w] * rec["iterations"] / 1e9)
        assert np.isfinite(rec["loss_first"]) and np.isfinite(rec["loss_last"])
    # the batch-size runs carry their width too: the standard network is the W=256 one
    assert {r["width"] for r in doc["records"] if r["series"] == "batch"} == {256}

    by_batch, by_width = _tables(done.stdout)[:2]
    assert all(line.count("|") == TABLE_PIPES for line in by_batch + by_width)
    assert len(by_batch) + len(by_width) == 4 + len(doc["records"])
    heading = f"MLP width sweep (784-W-(W/2)-10, {SWEEP_SAMPLES} samples per epoch):"
    assert heading in done.stdout
    assert done.stdout.index("Epoch time by batch size") < done.stdout.index(heading)
    assert by_width[0].startswith("| width | batch | samples |")
    widths_in_table = {line.split("|")[1].strip() for line in by_width[2:]}
    assert widths_in_table == {str(w) for w in SWEEP_WIDTHS}
    assert "over batch sizes and widths): needs a GPU" in done.stdout
    if (out / "bench.png").exists():  # matplotlib: a batch-size panel and a width panel
        assert _png_size(out / "bench.png") == (1000, 400)


def test_two_thread_counts_give_records_for_both(sweep_run):
    done, doc, _ = sweep_run
    assert doc["threads"] == [1, 2]
    by_threads = {t: {(r["series"], r["width"], r["batch_size"], r["impl"])
                      for r in doc["records"] if r["threads"] == t} for t in (1, 2)}
    assert by_threads[1] and by_threads[1] == by_threads[2]
    for rec in doc["records"]:
        # OpenBLAS caps the count it starts with at the number of CPUs
        assert rec["blas_threads"] in (None, rec["threads"], min(rec["threads"], os.cpu_count()))
    runs = {r["threads"]: r["environment"]["thread_env"] for r in doc["runs"]}
    assert runs == {1: {k: "1" for k in threads.THREAD_ENV_VARS},
                    2: {k: "2" for k in threads.THREAD_ENV_VARS}}
    for rec in doc["records"]:  # the ratio compares within one thread count
        if rec["impl"] == "tinynet":
            assert rec["time_vs_tinynet"] == 1.0
    assert doc["fixed_step_us"] == [] and "Fixed cost per training step" not in done.stdout
    threads_column = {line.split("|")[6].strip() for line in _tables(done.stdout)[0][2:]}
    assert {c.split()[0] for c in threads_column} == {"1", "2"}


# --- BLAS threads at run time -----------------------------------------------------------------

def _library_threads():
    """The BLAS thread count read through benchmarks/_timing.py (threadpoolctl, else OpenBLAS's
    C API): code independent of tinynet.bench's."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_timing.py"
    spec = importlib.util.spec_from_file_location("_bench_timing", path)
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    info = timing.blas_threads()
    if info is None:
        return None
    if info["source"] == "ctypes":
        return info["threads"]
    pools = [p for p in info["pools"] if p["user_api"] == "blas"]
    return pools[0]["num_threads"] if pools else None


def test_set_blas_threads_changes_the_count_the_library_reports():
    before = _library_threads()
    if before is None:
        pytest.skip("no way to read the BLAS thread count here: neither threadpoolctl nor an "
                    "OpenBLAS C API (another BLAS, or not Linux)")
    try:
        for n in (2, 1, 2):  # each step changes the count, whatever it was before
            assert runtime.set_blas_threads(n) is True
            assert _library_threads() == n
            assert runtime.blas_thread_count() == n
    finally:
        runtime.set_blas_threads(before)
    assert _library_threads() == before


def test_auto_threads_runs_each_tinynet_record_with_the_chosen_count(tmp_path):
    # in a child process: PyTorch's thread pool, once started, would slow the tests after this
    _bench("--quick", "--device", "cpu", "--model", "mlp", "--batch-sizes", "32", "--widths",
           "512", "--sweep-batch", "64", "--threads", "auto", "--no-fixed", "--out",
           str(tmp_path))
    doc = json.loads((tmp_path / "bench.json").read_text())
    default = doc["environment"]["blas_threads"]  # read at the end, after the last record
    tinynet = [r for r in doc["records"] if r["impl"] == "tinynet"]
    assert len(tinynet) == 2 and all(r["threads"] == "auto" for r in doc["records"])
    if default is None:  # no way to switch: said so, and ran with the default
        assert "threads-auto" in doc["missing"]
        assert all("threads_chosen" not in r for r in tinynet)
        return
    assert "threads-auto" not in doc["missing"]
    counts = sorted({1, os.cpu_count()})
    for rec in tinynet:
        trial = rec["threads_trial_us_per_step"]
        assert sorted(trial) == sorted(map(str, counts))
        assert all(_positive_finite(us) for us in trial.values())
        # one thread unless all CPUs were at least AUTO_MARGIN faster in the trial
        faster = trial[str(counts[-1])] < (1 - threads.AUTO_MARGIN) * trial[str(counts[0])]
        assert rec["threads_chosen"] == (counts[-1] if faster else counts[0])
        assert rec["blas_threads"] == rec["threads_chosen"]
    for rec in doc["records"]:  # the others run with the process's own count, put back
        if rec["impl"] != "tinynet":
            assert rec["blas_threads"] == default and "threads_chosen" not in rec


# --- the report -------------------------------------------------------------------------------

def _record(series, width, batch, device, seconds, threads=1):
    """The fields of a record that the crossover table reads."""
    return {"series": series, "model": "mlp", "width": width, "batch_size": batch,
            "device": device, "impl": "tinynet", "threads": threads,
            "epoch_seconds": {"median": seconds}}


def test_crossover_table_finds_the_first_batch_and_width_where_the_gpu_wins():
    # the report reads records only; these are made up to place the crossover
    records = [_record("batch", 256, b, "cpu", 1.0) for b in (32, 128, 512)]
    records += [_record("batch", 256, 32, "cuda", 2.0), _record("batch", 256, 128, "cuda", 0.5),
                _record("batch", 256, 512, "cuda", 0.2)]
    records += [_record("width", w, 512, "cpu", w / 512) for w in (256, 1024, 4096)]
    records += [_record("width", w, 512, "cuda", 2.0) for w in (256, 1024, 4096)]
    table = report.crossover_table({"records": records, "missing": {}})
    assert "| batch | mlp | 1 | crossover batch: 128 |" in table
    assert "| width | mlp | 1 | crossover width: 4096 |" in table
    assert "| width | mlp | 1 | 1024 | 512 | 2.000 | 2.000 | cpu |" in table  # a tie: not faster
    no_gpu = report.crossover_table(
        {"records": [r for r in records if r["device"] == "cpu"],
         "missing": {"cuda": "CuPy is not installed"}})
    assert no_gpu.endswith("needs a GPU run on both devices (CuPy is not installed).")


# --- command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--model", "rnn"], "unknown model 'rnn'"),
    (["--threads", "0"], "expected positive thread counts or auto, got '0'"),
    (["--threads", "1,many"], "got 'many'"),
    (["--widths", "1"], "at least 2"),
    (["--sweep-samples", "0"], "--sweep-samples must be positive"),
    (["--device", "tpu"], "unknown device 'tpu': use cpu, cuda, standin"),
])
def test_bad_options_are_usage_errors(args, message, capsys):
    from tinynet import cli

    assert cli.main(["bench", "--quick", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(tn.cuda.is_available(), reason="CUDA is usable here")
@pytest.mark.parametrize("devices", ["cuda", "cpu,cuda"])
def test_asking_for_cuda_without_it_exits_2_with_the_install_hint(devices, tmp_path, capsys):
    from tinynet import cli

    assert cli.main(["bench", "--quick", "--device", devices, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinynet bench: error: --device cuda: device 'cuda' needs")
    assert ('pip install "tinynet[gpu-cuda12]"' in err) == (importlib.util.find_spec("cupy")
                                                            is None)
    assert not (tmp_path / "bench.json").exists()  # nothing ran, nothing was written


def test_thread_settings_parse_counts_and_auto():
    assert bench_cli.thread_settings("1,2,auto,2") == [1, 2, "auto"]


# --- FLOP counts and the NumPy ceiling --------------------------------------------------------

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
    opt = tn.optim.SGD(model.parameters(), lr=workloads.LR, momentum=workloads.MOMENTUM)
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
    assert workloads.linear_flops(b, i, o, input_grad=False) == 2 * (b * o * i + o * i * b)
    assert workloads.linear_flops(b, i, o) == 2 * (b * o * i + o * i * b + b * i * o)


@settings(max_examples=25)
@given(sizes=st.lists(st.integers(1, 48), min_size=2, max_size=5), batch=st.integers(1, 1024))
def test_step_flops_of_any_mlp_is_the_sum_over_the_built_networks_layers(sizes, batch):
    # counted from the weight shapes of the network build_tinynet really makes: a layer with an
    # (O, I) weight does B*O dot products of length I forward, O*I of length B for its weight
    # gradient and, unless it is the first layer, B*I of length O for its input gradient
    net = bench.build_tinynet("mlp", tuple(sizes))
    shapes = [m.weight.shape for m in net.modules() if isinstance(m, tn.nn.Linear)]
    assert len(shapes) == len(sizes) - 1
    want = 0
    for k, (fan_out, fan_in) in enumerate(shapes):
        forward, weight_grad = batch * fan_out * fan_in, fan_out * fan_in * batch
        input_grad = batch * fan_in * fan_out if k else 0
        want += 2 * (forward + weight_grad + input_grad)
    assert bench.step_flops("mlp", batch, tuple(sizes)) == want


def test_swept_mlp_at_width_256_is_the_standard_network():
    assert workloads.mlp_sizes(256) == workloads.MLP_SIZES
    assert workloads.mlp_sizes(4096) == (784, 4096, 2048, 10)


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


def test_mnist1d_cnn_workload_is_the_papers_cnn_in_both_libraries():
    batch = 3
    tn.manual_seed(0)  # the weights build_torch copies
    net = bench.build_tinynet("mnist1d-cnn")
    x_np, y = bench.synthetic_data("mnist1d-cnn", batch)
    assert x_np.shape == (batch, 1, 40) and y.shape == (batch,)
    assert sum(p.numel() for p in net.parameters()) == 5_210
    x, want = tn.tensor(x_np), 0
    for k, layer in enumerate(net):  # each output element is a dot of C_in * k terms
        out = layer(x)
        if isinstance(layer, (tn.nn.Conv1d, tn.nn.Linear)):
            per_out = x.numel() // batch if isinstance(layer, tn.nn.Linear) else \
                layer.weight.shape[1] * layer.weight.shape[2]
            want += 2 * out.numel() * per_out * (2 if k == 0 else 3)
        x = out
    assert bench.step_flops("mnist1d-cnn", batch) == want
    torch = pytest.importorskip("torch")
    from tinynet.bench.references import build_torch

    with torch.no_grad():
        theirs = build_torch("mnist1d-cnn")(torch.from_numpy(x_np)).numpy()
    np.testing.assert_allclose(x.numpy(), theirs, rtol=1e-5, atol=1e-6)  # same seed, weights


# --- derived figures and their formatting (no timing: made-up records) ---------------------------

@given(flops=st.floats(1e6, 1e12), seconds=st.floats(1e-4, 1e2), iterations=st.integers(1, 2000),
       peak=st.floats(0.1, 1e5))
def test_figures_from_the_matmul_peak_are_derived_only_where_they_can_be_true(
        flops, seconds, iterations, peak):
    got = run.peak_figures(flops, seconds, iterations, peak)
    rate = flops / seconds / 1e9
    assert got["gflop_per_s"] == pytest.approx(rate)
    assert got["fraction_of_peak"] == pytest.approx(rate / peak)
    if rate > peak:  # faster than the peak: the peak measurement was low, not the run fast
        assert got["peak_exceeded"] and got["overhead_us_per_step"] is None
    else:  # the time beyond the products at peak speed: never negative
        assert not got["peak_exceeded"]
        want = (seconds - flops / (peak * 1e9)) / iterations * 1e6
        assert got["overhead_us_per_step"] == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert got["overhead_us_per_step"] >= -1e-9
    assert run.peak_figures(flops, seconds, iterations, None)["fraction_of_peak"] is None


def test_a_spread_is_shown_only_for_several_repeats():
    assert report.spread({"median": 1.5, "min": 1.5, "max": 1.5, "repeats": 1}) == "1.500"
    assert report.spread({"median": 2, "min": 1, "max": 3, "repeats": 3}, ".0f") == "2 (1-3)"


def _full_record(series, width, batch, impl, seconds, peak=50.0, repeats=1):
    epochs = [{"seconds": seconds, "losses": [2.0, 1.5], "warmup_loss": 2.3}] * repeats
    sizes = workloads.mlp_sizes(width)
    rec = run.make_record("mlp", impl, "cpu", batch, 2 * batch, epochs, peak, sizes, series,
                          threads=1, blas_threads=1)
    rec["time_vs_tinynet"] = 1.0
    return rec


def test_the_report_puts_the_width_sweep_under_its_own_heading_and_flags_a_low_peak():
    fast = 2 * 8 * (784 * 256 * 2 + 256 * 128 * 3 + 128 * 10 * 3) * 2 / 1e9 / 100  # 100 GFLOP/s
    records = [_full_record("batch", 256, 8, "tinynet", 0.5),
               _full_record("batch", 256, 8, "numpy", fast),  # faster than the 50 GFLOP/s peak
               _full_record("width", 512, 8, "tinynet", 0.7, repeats=3)]
    assert [r["peak_exceeded"] for r in records] == [False, True, False]
    doc = {"records": records, "missing": {"cuda": "CuPy is not installed"},
           "epochs_measured": 1}
    text = report.markdown_table(doc)
    lines = text.splitlines()
    by_batch = lines.index("Epoch time by batch size (MLP 784-256-128-10):")
    by_width = lines.index("MLP width sweep (784-W-(W/2)-10, 16 samples per epoch):")
    assert by_batch < by_width
    batch_rows = [line for line in lines[by_batch:by_width] if line.startswith("| mlp |")]
    width_rows = [line for line in lines[by_width:] if line.startswith("| 512 |")]
    assert len(batch_rows) == 2 and len(width_rows) == 1
    numpy_cells = [c.strip() for c in batch_rows[1].split("|")]
    assert numpy_cells[11:13] == ["100.0 (-*)", "-*"]  # no 200% of peak, no negative overhead
    assert "Rows marked *: faster than the float32 matmul peak measured in the same run " \
           "(cpu 50.0 GFLOP/s)" in text
    tinynet_cells = [c.strip() for c in batch_rows[0].split("|")]
    assert tinynet_cells[7] == "0.500"  # one epoch: a value, not a range "0.500 (0.500-0.500)"
    assert "-" not in tinynet_cells[12] and not tinynet_cells[11].endswith("*)")
    assert [c.strip() for c in width_rows[0].split("|")][7] == "0.700 (0.700-0.700)"
    assert text.endswith("- cuda: not run (CuPy is not installed)")


def test_fixed_cost_rows_show_a_range_only_for_several_repeats():
    rows = [{"impl": impl, "device": "cpu", "threads": 1, "blas_threads": 1, "sizes": [16, 10],
             "batch_size": 8, "steps": 50, "mean_us_per_step": 120.0,
             "us_per_step": {"median": 100.0, "min": 90.0, "max": 110.0, "repeats": repeats}}
            for impl, repeats in (("tinynet", 1), ("numpy", 3))]
    table = report.fixed_cost_table({"fixed_step_us": rows})
    assert "| tinynet | cpu | 1 | 100 | 120 | 1 x 50 |" in table
    assert "| numpy | cpu | 1 | 100 (90-110) | 120 | 3 x 50 |" in table


# --- the recurrent workloads (gru, lstm) ------------------------------------------------------

def test_recurrent_rows_train_the_same_network_as_pytorch():
    doc = run.run_bench(["gru", "lstm"], ["cpu"], [16], epochs=1, quick=True,
                        say=lambda *a: None, fixed=False)
    recs = {(r["model"], r["impl"]): r for r in doc["records"]}
    assert {model for model, _ in recs} == {"gru", "lstm"}
    assert ("gru", "numpy") not in recs  # the hand-written NumPy reference is an MLP
    for model in ("gru", "lstm"):
        mine = recs[(model, "tinynet")]
        assert mine["iterations"] == 256 // 16
        assert mine["matmul_gflop_per_epoch"] == pytest.approx(
            workloads.recurrent_flops(model, 16) * mine["iterations"] / 1e9)
        theirs = recs.get((model, "torch"))
        if theirs is not None:  # same weights, data and batch order: the same losses
            assert theirs["loss_first"] == pytest.approx(mine["loss_first"], rel=1e-4)
            assert theirs["loss_last"] == pytest.approx(mine["loss_last"], rel=1e-3)


def test_recurrent_workloads_are_the_models_and_shapes_they_name():
    gru = bench.build_tinynet("gru")
    assert type(gru) is type(tn.models.mnist1d_gru())
    assert list(gru.state_dict()) == list(tn.models.mnist1d_gru().state_dict())
    x, y = bench.synthetic_data("gru", 5)
    assert x.shape == (5, 40) and gru(tn.tensor(x)).shape == (5, 10) and y.shape == (5,)
    lstm = bench.build_tinynet("lstm")
    x, _ = bench.synthetic_data("lstm", 3)
    assert x.shape == (3, 50, 64) and lstm(tn.tensor(x)).shape == (3, 10)
    assert lstm.lstm.weight_hh_l0.shape == (512, 128)
    # per direction: projection (no input gradient) + 3 products per step; plus the head
    B = 4
    assert bench.step_flops("lstm", B) == (2 * 2 * B * 50 * 64 * 512 + 3 * 2 * B * 50 * 128 * 512
                                           + 3 * 2 * B * 128 * 10)
    assert bench.step_flops("gru", B) == 2 * (2 * 2 * B * 40 * 1 * 18 + 3 * 2 * B * 40 * 6 * 18) \
        + 3 * 2 * B * 480 * 10
