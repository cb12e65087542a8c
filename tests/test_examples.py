"""Every example runs, as a user would run it, and prints what it promises (so examples never rot);
benchmarks write their records under ``runs/`` by default.

Each example is started in a fresh interpreter with the command its first line gives, from an
empty working folder; the tests read its output and check the numbers in it. An example writes
only under ``runs/`` (git-ignored) or where its options say: a stray file in the working folder,
or a new untracked file in the checkout, fails the tests.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tinynet as tn

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
# Runs an example with some modules made unimportable (as if not installed): argv[1] is a comma
# list of module names, argv[2] the example, the rest its arguments.
WITHOUT = ("import runpy, sys\n"
           "for name in sys.argv[1].split(','): sys.modules[name] = None\n"
           "sys.argv = sys.argv[2:]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")


def _untracked() -> set | None:
    """The checkout's untracked files (git status), or None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                           "--untracked-files=all"], capture_output=True, text=True, check=False)
    return {line[3:] for line in done.stdout.splitlines() if line.startswith("??")} \
        if done.returncode == 0 else None


@pytest.fixture(scope="module", autouse=True)
def checkout_stays_clean():
    before = _untracked()
    yield
    after = _untracked()
    if before is not None and after is not None:
        assert after <= before, f"examples left untracked files: {sorted(after - before)}"


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """An empty working folder for the example; afterwards it may hold files only in runs/."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder
    stray = [str(p.relative_to(folder)) for p in folder.rglob("*")
             if p.is_file() and p.relative_to(folder).parts[0] != "runs"]
    assert not stray, f"files written outside runs/: {stray}"


def run_example(name: str, *args: str, check: bool = True, without: tuple = ()):
    """Run ``examples/name`` in a fresh interpreter in the current (scratch) folder; ``without``
    names modules to hide (matplotlib: the run without the plot extra)."""
    path = str(ROOT / "examples" / name)
    command = [sys.executable, "-c", WITHOUT, ",".join(without), path] if without else \
        [sys.executable, path]
    # The timeout only stops a hung example; it is far above any normal run time.
    result = subprocess.run([*command, *args], cwd=os.getcwd(), capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode != 0:
        pytest.fail(f"{name} {' '.join(args)} exited with {result.returncode}:\n{result.stderr}")
    return result


def needs(extra: str) -> None:
    """Skip the with-``extra`` variant of a test where the module is not installed."""
    if importlib.util.find_spec(extra) is None:
        pytest.skip(f"{extra} is not installed")


def test_examples_are_numbered_and_say_how_to_run_them():
    assert [p.name[:2] for p in EXAMPLES] == [f"{i:02d}" for i in range(1, len(EXAMPLES) + 1)]
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        first = path.read_text().splitlines()[0]
        assert first.startswith(f"# Run: python examples/{path.name}"), (path.name, first)


def test_01_autograd_basics():
    out = run_example("01_autograd_basics.py").stdout
    checks = re.findall(r"matches by hand: (True|False)", out)
    assert checks == ["True"] * 6, out
    assert "inside no_grad, z.requires_grad = False" in out
    assert "outside,       (x * 2).requires_grad = True" in out
    assert re.search(r"^gradcheck\(.*\)\s*: True$", out, re.M)
    assert re.search(r"^gradgradcheck\(.*\)\s*: True$", out, re.M)
    assert "y = 19.0" in out  # sum(w x^2 + 3 w) at the example's values, by hand


def test_02_custom_op():
    out = run_example("02_custom_op.py").stdout
    assert "same as composing x * x.sigmoid(): True" in out
    assert re.search(r"gradcheck\(silu\)\s*: True", out)
    assert re.search(r"gradgradcheck\(silu\)\s*: True", out)
    assert "inside a bigger expression: True" in out
    assert re.search(r"gradcheck\(buggy\)\s*: False", out)  # the broken backward is caught
    assert re.search(r"GradcheckError: gradcheck: BuggySiLU.apply: the gradient with respect to "
                     r"'x' \(input 0.*\n  d out\[\d+, \d+\] / d x\[\d+, \d+\]: analytic", out)
    assert "gradcheck True but gradgradcheck False" in out
    assert "device standin gradient equal to the CPU one: True" in out


def _mlp_report(out: str) -> dict:
    losses = [float(v) for v in re.findall(r"^epoch\s+\d+\s+loss (\S+)", out, re.M)]
    train = re.search(r"^final train accuracy (\S+)", out, re.M)
    held_out = re.search(r"^final held-out accuracy (\S+)", out, re.M)
    assert train and held_out, out
    return {"losses": losses, "train": float(train.group(1)), "held_out": float(held_out.group(1))}


def test_03_train_mlp_reaches_95_percent_on_held_out_points():
    out = run_example("03_train_mlp.py").stdout
    report = _mlp_report(out)
    assert len(report["losses"]) == 60  # one line per epoch
    assert report["losses"][0] > 0.5  # starts near ln 3, a guess among three classes
    assert report["losses"][-1] < 0.2 * report["losses"][0]
    assert report["train"] >= 0.95
    assert report["held_out"] >= 0.95, out


def _without_timing(out: str) -> str:
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("device ", "trained ")))


def test_03_train_mlp_is_deterministic_and_device_independent():
    short = ("--epochs", "3")
    cpu = run_example("03_train_mlp.py", *short).stdout
    assert len(_mlp_report(cpu)["losses"]) == 3
    assert _without_timing(run_example("03_train_mlp.py", *short).stdout) == _without_timing(cpu)
    standin = run_example("03_train_mlp.py", *short, "--device", "standin").stdout
    assert "device standin" in standin
    assert _without_timing(standin) == _without_timing(cpu)  # same seed, same numbers
    other_seed = run_example("03_train_mlp.py", *short, "--seed", "1").stdout
    assert _without_timing(other_seed) != _without_timing(cpu)


@pytest.mark.skipif(tn.cuda.is_available(), reason="a GPU is usable here")
def test_03_train_mlp_on_cuda_without_a_gpu_says_what_to_install():
    result = run_example("03_train_mlp.py", "--epochs", "1", "--device", "cuda", check=False)
    assert result.returncode != 0
    if importlib.util.find_spec("cupy") is None:
        assert "tinynet[gpu]" in result.stderr, result.stderr
    else:
        assert "CUDA" in result.stderr, result.stderr


# --------------------------------------------------------------------------------------------
# docs/devices.md: every ```python block runs (and its asserts hold)
# --------------------------------------------------------------------------------------------

DEVICES_DOC = ROOT / "docs" / "devices.md"


def _devices_doc_snippets() -> list:
    """Each ```python block, padded with blank lines so tracebacks give its line in the file."""
    text = DEVICES_DOC.read_text()
    return [pytest.param("\n" * text.count("\n", 0, m.start(1)) + m.group(1), id=f"block{i}")
            for i, m in enumerate(re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL))]


def test_docs_devices_has_snippets():
    assert len(_devices_doc_snippets()) >= 6


@pytest.mark.parametrize("snippet", _devices_doc_snippets())
def test_docs_devices_snippet_runs(snippet):
    exec(compile(snippet, str(DEVICES_DOC), "exec"), {"__name__": "docs_devices"})  # noqa: S102


# --------------------------------------------------------------------------------------------
# 05-08: the training loop by hand, with fit, early stopping, batch size vs epochs
# --------------------------------------------------------------------------------------------

def test_05_textbook_loop_prints_epochs_iterations_and_shuffling():
    out = run_example("05_textbook_loop.py", "--epochs", "3").stdout
    sizes = re.search(r"N = (\d+) training samples, B = (\d+): iterations per epoch = "
                      r"ceil\(\d+/\d+\) = (\d+) = len\(train_loader\) = (\d+)", out)
    assert sizes, out
    n, b, by_formula, by_loader = map(int, sizes.groups())
    assert n == round(0.8 * 1797) and b == 64
    assert by_formula == by_loader == -(-n // b)
    epochs = re.findall(r"^epoch\s+\d+: (\d+) iterations, (\d+) samples seen, train loss (\S+), "
                        r"val accuracy (\S+)$", out, re.M)
    assert [(int(i), int(s)) for i, s, _, _ in epochs] == [(by_loader, n)] * 3
    losses = [float(e[2]) for e in epochs]
    assert losses[-1] < losses[0]
    firsts = re.findall(r"first batch starts with samples (\[.*\])", out)
    assert len(firsts) == 3 and len(set(firsts)) == 3  # reshuffled every epoch


def test_06_fit_reaches_95_percent_test_accuracy():
    out = run_example("06_fit.py").stdout
    rows = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+\s+\S+$", out, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 11)), out
    assert "the CSV log has 10 rows, one per epoch" in out
    best = re.search(r"^best epoch by val_loss: (\d+) \(val_loss (\S+)\)", out, re.M)
    val_losses = [float(r[3]) for r in rows]
    assert float(best.group(2)) == pytest.approx(min(val_losses), abs=1e-4)
    accuracy = float(re.search(r"^test accuracy (\S+) after 10 epochs$", out, re.M).group(1))
    assert accuracy >= 0.95, out


@pytest.mark.parametrize("matplotlib", ["with", "without"])
def test_07_early_stopping_stops_after_the_validation_minimum(matplotlib, workdir):
    if matplotlib == "with":
        needs("matplotlib")
    hidden = ("matplotlib",) if matplotlib == "without" else ()
    out = run_example("07_early_stopping.py", without=hidden).stdout
    best = re.search(r"^best epoch (\d+): val loss (\S+)$", out, re.M)
    stopped = re.search(r"^stopped after epoch (\d+) of at most 300 \(early stopping", out, re.M)
    assert best and stopped, out
    assert int(stopped.group(1)) == int(best.group(1)) + 15  # patience 15
    assert "over-fitting: the training loss kept falling while the validation loss rose" in out
    restored = re.search(r"^restored weights: val loss (\S+)", out, re.M).group(1)
    assert restored == best.group(2)
    plot = workdir / "runs" / "07_early_stopping" / "learning_curves.png"  # the default
    if matplotlib == "without":
        assert "learning curves not drawn" in out and not plot.exists()
    else:
        assert plot.read_bytes()[:4] == b"\x89PNG"


def test_08_batch_size_vs_epochs_table():
    out = run_example("08_batch_size_vs_epochs.py").stdout
    n = int(re.search(r"N = (\d+) training samples", out).group(1))
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(\S+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [8, 32, 128, 512], out
    for batch, per_epoch, epochs, updates, val_acc in rows:
        assert int(per_epoch) == -(-n // int(batch))
        assert int(updates) == int(epochs) * int(per_epoch)
        assert float(val_acc) >= 0.97  # every batch size reached the target
    epochs = [int(r[2]) for r in rows]
    updates = [int(r[3]) for r in rows]
    assert epochs[-1] > epochs[0]  # big batches need more epochs ...
    assert updates[-1] < updates[0]  # ... but fewer updates


@pytest.mark.parametrize("matplotlib", ["with", "without"])
def test_09_gradient_flow_vanishes_in_deep_sigmoid_not_in_relu(matplotlib, workdir):
    if matplotlib == "with":
        needs("matplotlib")
    hidden = ("matplotlib",) if matplotlib == "without" else ()
    done = run_example("09_gradient_flow.py", "--epochs", "1", without=hidden)
    out = done.stdout
    assert done.stderr == "", done.stderr  # no warnings leak
    rows = re.findall(r"^\s*(\d+)\s+(\S+e\S+)\s+(\S+e\S+)$", out, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 14)), out  # 12 hidden layers + output
    sigmoid = [float(r[1]) for r in rows]
    relu = [float(r[2]) for r in rows]
    assert sigmoid[0] < 1e-7 * sigmoid[-1]  # shrinks by orders of magnitude towards the input
    assert 1e-2 < relu[0] / relu[-1] < 1e2  # stays about the same size
    ratio = dict(re.findall(r"^(\w+): first-layer / last-layer gradient norm = (\S+)$", out, re.M))
    assert float(ratio["sigmoid"]) == pytest.approx(sigmoid[0] / sigmoid[-1], rel=1e-2)
    flagged = dict(re.findall(r"^(\w+): val accuracy \S+; vanishing gradients flagged in (\d+)",
                              out, re.M))
    assert int(flagged["sigmoid"]) > 0 and int(flagged["relu"]) == 0, out
    assert re.search(r"^first warning: vanishing gradient: 0\.weight", out, re.M)
    plots = [workdir / "runs" / "09_gradient_flow" / f"gradient_flow_{name}.png"
             for name in ("sigmoid", "relu")]  # the default names
    if matplotlib == "without":
        assert "plot not drawn" in out and not any(p.exists() for p in plots)
    else:
        assert all(p.read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_10_seeing_backprop_graph_trace_and_anomaly(tmp_path, workdir):
    dot_path = tmp_path / "graph.dot"
    done = run_example("10_seeing_backprop.py", "--dot", str(dot_path))
    out = done.stdout
    assert done.stderr == "", done.stderr  # no NumPy warning leaks (log(0) is reported instead)
    dot = dot_path.read_text()
    assert dot.startswith("digraph") and dot.count("{") == dot.count("}")
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert f'"{name}\\n' in dot  # parameters are labelled with their module names
    assert 'label="0 (Linear)"' in dot  # ops and parameters grouped by module
    # the trace's last step hands 0.weight exactly the gradient that lands in .grad
    sent, stored = re.search(r"gradient of norm (\S+); 0\.weight\.grad has norm (\S+)$", out,
                             re.M).groups()
    assert sent == stored
    table = out.split("\nthe last step")[0]
    assert table.count("finite differences: max error") == 7 and "MISMATCH" not in out
    assert re.search(r"^    -> input 1 from 0\.weight: J \(5, 3\)x\(3, 4\), sends \(3, 4\)", out,
                     re.M), out
    page = workdir / "runs" / "10_seeing_backprop" / "walkthrough.html"
    assert page.read_text().count('<section class="step"') == 4
    # the whole anomaly message: the op, the first bad element, the line, every input
    message = out.split("anomaly detection caught it:\n")[1].split("\n\n")[0].splitlines()
    assert message[0].startswith("detect_anomaly: Log produced Inf in its output (forward; "
                                 "0 NaN, 1 Inf of 3 elements; the first at output[1])")
    assert re.fullmatch(r"  created at: .*10_seeing_backprop\.py:\d+", message[1])
    assert message[2:] == ["  inputs:", ("    input 0: shape (3,) float32, min 0, max 0.5, "
                                         "mean 0.25, no NaN/Inf; at [1]: 0")]
    assert "under detect_anomaly(forward=False): no error; q.grad = [2.0, -0.0, 4.0]" in out


# --------------------------------------------------------------------------------------------
# benchmarks/: by default their records go under runs/ too
# --------------------------------------------------------------------------------------------

def test_a_benchmark_writes_its_records_under_runs(workdir):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv.py"), "--quick",
                           "--cases", "mnist1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    written = [p.relative_to(workdir) for p in workdir.rglob("*") if p.is_file()]
    assert len(written) == 1 and written[0].parts[:2] == ("runs", "benchmarks"), written
    records = json.loads((workdir / written[0]).read_text())
    assert [r["case"] for r in records if "case" in r][:1] == ["mnist1"], records


@pytest.mark.parametrize("script", ["conv", "op_overhead", "optim_step", "rnn_speed", "norm",
                                    "mnist1d_speed", "lstm_floor"])
def test_every_benchmark_defaults_to_runs(script):
    source = (ROOT / "benchmarks" / f"{script}.py").read_text()
    assert (f'args.json or _timing.default_results_path("{script}")' in source
            or f'_timing.save_records(records, args.json, "{script}")' in source)
    assert not re.search(r"join\([^)]*\"results\"", source)  # not benchmarks/results/ any more


def test_the_lstm_floor_benchmarks_numpy_lstm_gives_tinynets_gradients(monkeypatch):
    """benchmarks/lstm_floor.py times a hand-written NumPy LSTM as the floor of the NumPy
    approach: it must compute the same gradients as tinynet's LSTM (float64), or its time means
    nothing."""
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # for its `import _timing`
    spec = importlib.util.spec_from_file_location("lstm_floor", ROOT / "benchmarks" /
                                                  "lstm_floor.py")
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    monkeypatch.setattr(floor, "L", 7)
    monkeypatch.setattr(floor, "B", 3)
    monkeypatch.setattr(floor, "I", 5)
    monkeypatch.setattr(floor, "H", 4)
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((7, 3, 5)), rng.standard_normal((3, 4))
    tn.manual_seed(1)
    layer = tn.nn.LSTM(5, 4, dtype=tn.float64)
    out, _ = layer(tn.tensor(x))
    (out[-1] * tn.tensor(g)).sum().backward()
    p = {k: v.numpy() for k, v in layer.state_dict().items()}
    got = floor.numpy_lstm(np, x, p["weight_ih_l0"], p["weight_hh_l0"],
                           p["bias_ih_l0"] + p["bias_hh_l0"], g)
    for a, b in zip(got, (layer.weight_ih_l0.grad, layer.weight_hh_l0.grad,
                          layer.bias_ih_l0.grad)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)
