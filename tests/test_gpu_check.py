"""benchmarks/gpu_check.py, the one command for a GPU machine, dry-run end to end on the stand-in
device in quick mode: every stage runs (in its own process, as on the GPU), passes, and writes
the files a GPU run commits. So the check works the first time it meets a GPU."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tinynet as tn

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
FILES = ("summary.json", "summary.md", "pytest.log", "pytest.xml", "train.log", "bench.json",
         "bench.md") + (("bench.png",) if HAS_MATPLOTLIB else ())


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_on_the_standin_passes_every_stage(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "standin", "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["env", "probes", "parity", "tests", "train", "bench"]
    assert all(s["status"] == "ok" for s in stages.values()), stages
    assert stages["env"]["results"]["versions"]["numpy"]
    probes = stages["probes"]["results"]
    assert probes["bad_label"]["raised"].startswith("cross_entropy: target labels")
    assert probes["launches_per_step"]["MLP 784-256-128-10 adam"]["syncs"] == 0
    parity = stages["parity"]["results"]["mlp_epoch"]
    assert parity["initial_weights_equal"] and parity["max_rel_diff"] < 1e-5
    assert len(parity["params"]) == 6
    counts = stages["tests"]["counts"]
    assert counts["passed"] > 20 and counts["failures"] == counts["errors"] == 0
    assert "epoch" in stages["train"]["history_csv"]
    bench = json.loads((out / "bench.json").read_text())
    assert {(r["device"], r["series"]) for r in bench["records"]} >= {
        ("cpu", "batch"), ("standin", "batch"), ("standin", "width")}
    assert "| parity | ok |" in (out / "summary.md").read_text()
    if not HAS_MATPLOTLIB:  # the report says why there is no plot
        assert "plot not written: matplotlib is not installed" in (out / "bench.md").read_text()


def test_cuda_without_a_gpu_is_a_usage_error(tmp_path):
    if tn.cuda.is_available():
        pytest.skip("a CUDA device is present")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "the cuda device cannot be used" in done.stderr


def test_a_command_past_its_limit_is_interrupted_and_reported(tmp_path):
    check = _module()
    log = tmp_path / "log"
    result = check.run_command([sys.executable, "-c", "import time; print('started', flush=True);"
                                " time.sleep(30)"], 1.0, log)
    assert result["status"] == "timeout" and result["seconds"] < 25
    assert "ran past its 1.0 s limit" in result["error"] and "started" in log.read_text()
    failed = check.run_command([sys.executable, "-c", "raise SystemExit('boom')"], 30)
    assert failed["status"] == "failed" and failed["error"].endswith("boom")


def test_bench_runs_merge_without_duplicates():
    check = _module()
    record = {"series": "batch", "model": "mlp", "width": 256, "impl": "tinynet",
              "device": "cpu", "batch_size": 32}
    docs = [{"records": [record], "widths": [], "sweep_batch_sizes": [], "missing": {"a": 1}},
            {"records": [record, {**record, "batch_size": 64}], "widths": [256],
             "sweep_batch_sizes": [32], "missing": {"b": 2}}]
    merged = check.merge_bench(docs)
    assert len(merged["records"]) == 2 and merged["widths"] == [256]
    assert merged["missing"] == {"a": 1, "b": 2}
    assert check.merge_bench([])["records"] == []
