"""``tinynet train`` as a newcomer reads it: the printed model, the table's legend and ``*``, the
files of the run folder, the learning curves with and without matplotlib; ``--threads`` and its
default; ``--download`` for MNIST. (The run itself, resume and bad values: test_cli.py.)
"""

import csv
import gzip
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn
from tinynet import cli
from tinynet.runtime import blas_thread_count, set_blas_threads
from tinynet.bench.threads import AUTO_MARGIN, THREAD_ENV_VARS

QUICK = ("--augment", "none", "--epochs", "2")


def run(tmp_path, *options, name="run") -> tuple:
    out = tmp_path / name
    assert cli.main(["train", "--out", str(out), *QUICK, *options]) == 0
    return out, json.loads((out / "config.json").read_text())


def read_history(run_dir: Path) -> list:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def restore_threads(monkeypatch):
    """BLAS threads and thread variables as they were: tests here change both."""
    for name in THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    before = blas_thread_count()
    yield
    if before is not None:
        set_blas_threads(before)


def hide_matplotlib(monkeypatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed


# --------------------------------------------------------------------------------------------
# What is printed
# --------------------------------------------------------------------------------------------

def test_output_shows_the_model_explains_the_table_and_lists_the_files(tmp_path, capsys,
                                                                        restore_threads):
    out, config = run(tmp_path, "--epochs", "4")
    captured = capsys.readouterr()
    stdout = captured.out
    unwrapped = stdout.replace("\n    ", " ")  # long lines continue indented

    # The architecture in one line, dropout included, with the parameter count of the weights.
    weights = tn.load(out / "best.npz")["model"]
    parameters = sum(int(np.prod(w.shape)) for w in weights.values())
    assert (f"mlp, {parameters:,} parameters on cpu: Flatten -> Linear(64, 256) -> ReLU -> "
            "Dropout(0.2) -> Linear(256, 128) -> ReLU -> Dropout(0.2) -> Linear(128, 10)"
            in unwrapped), stdout
    assert all(len(line) <= 100 for line in stdout.splitlines()[:8])

    # The legend says what the columns and the * are, before the table.
    legend = unwrapped[:unwrapped.index("\nepoch ")].replace("\n", " ")
    assert "*: the lowest val_loss so far" in legend and "best.npz" in legend
    assert "mean over the epoch's batches (dropout and augmentation on)" in legend

    # * marks exactly the epochs whose val_loss beat every earlier one.
    rows = re.findall(r"^\s+(\d+)\s.*?s(  \*)?$", stdout, re.MULTILINE)
    val = [float(r["val_loss"]) for r in read_history(out)]
    assert [star == "  *" for _, star in rows] == [v < min(val[:i], default=np.inf)
                                                  for i, v in enumerate(val)]
    best = int(np.argmin(val)) + 1
    assert re.search(rf"with the best checkpoint, lowest val_loss \(epoch {best}\)", stdout)

    # stderr is not a terminal here (a log): no progress bar is drawn into it, tqdm or not.
    assert captured.err == ""

    # Every file of the run folder is listed, with what it holds.
    listed = re.findall(r"^  (\S+) +(\S.*)$", stdout[stdout.index("run folder:"):], re.M)
    assert sorted(name for name, _ in listed) == sorted(p.name for p in out.iterdir())
    assert {"config.json", "history.csv", "best.npz", "last.npz"} <= {name for name, _ in listed}


def test_without_matplotlib_the_run_says_so_and_lists_no_plot(tmp_path, capsys, monkeypatch,
                                                              restore_threads):
    hide_matplotlib(monkeypatch)
    out, _ = run(tmp_path)
    stdout = capsys.readouterr().out
    assert 'learning_curves.png not written: matplotlib is not installed' in stdout
    assert not (out / "learning_curves.png").exists()
    assert not re.search(r"^  learning_curves\.png", stdout, re.M)  # not in the file list


def test_with_matplotlib_the_learning_curves_are_written(tmp_path, capsys, restore_threads):
    pytest.importorskip("matplotlib", reason="the plot extra")
    out, _ = run(tmp_path)
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"^  learning_curves\.png +loss", capsys.readouterr().out, re.M)


# --------------------------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------------------------

def test_threads_default_to_one_and_a_count_is_set(tmp_path, capsys, restore_threads):
    if not set_blas_threads(2):
        pytest.skip("NumPy's BLAS thread count cannot be changed at run time here")
    _, config = run(tmp_path, name="default")  # starts from 2 threads
    assert config["blas_threads"] == 1 and blas_thread_count() == 1
    assert "BLAS threads: 1 (the default" in capsys.readouterr().out
    _, config = run(tmp_path, "--threads", "2", name="two")
    assert config["blas_threads"] == 2 and config["args"]["threads"] == 2


def test_a_thread_variable_set_before_start_is_left_alone(tmp_path, capsys, monkeypatch,
                                                         restore_threads):
    if not set_blas_threads(2):
        pytest.skip("NumPy's BLAS thread count cannot be changed at run time here")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    _, config = run(tmp_path)
    assert config["blas_threads"] == 2
    assert "BLAS threads: 2 (from OPENBLAS_NUM_THREADS)" in capsys.readouterr().out


def test_threads_auto_follows_the_bench_rule(tmp_path, capsys, restore_threads):
    out, config = run(tmp_path, "--threads", "auto")
    line = re.search(r"^BLAS threads: (\d+) \(auto: per step (.*)\)$", capsys.readouterr().out,
                     re.M)
    trial = {int(n): float(us.replace(",", "")) for n, us in re.findall(r"(\d+): ([\d,]+) us",
                                                                        line.group(2))}
    assert 1 in trial and set(trial) <= {1, os.cpu_count()}
    many = max(trial)  # all CPUs: chosen only when at least AUTO_MARGIN faster than one
    expected = many if trial[many] < (1 - AUTO_MARGIN) * trial[1] else 1
    assert int(line.group(1)) == config["blas_threads"] == expected
    # The trial steps ran on a copy: the run is the one the chosen count gives without a trial.
    run(tmp_path, "--threads", str(expected), name="same")
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")
    assert [[r[k] for k in keys] for r in read_history(out)] == \
        [[r[k] for k in keys] for r in read_history(tmp_path / "same")]


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_bad_thread_count_is_one_line(value, capsys):
    assert cli.main(["train", "--threads", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads: must be a positive integer or auto" in err


def test_the_default_holds_in_a_fresh_process(tmp_path):
    """What a user gets from the console: one BLAS thread, set before the first step."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    done = subprocess.run([sys.executable, "-m", "tinynet", "train", *QUICK, "--epochs", "1",
                           "--quiet", "--out", "run"], cwd=tmp_path, env=env, timeout=300,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["blas_threads"] in (1, None)  # None: a BLAS that cannot report it


# --------------------------------------------------------------------------------------------
# --download
# --------------------------------------------------------------------------------------------

def _idx_gz(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as a gzipped IDX file; return its MD5."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                         *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mnist_mirror(tmp_path, monkeypatch):
    """A local mirror (file:// URLs) of a small learnable MNIST lookalike, as the default."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    rng = np.random.default_rng(0)
    md5 = {}
    for prefix, n in (("train", 120), ("t10k", 30)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        images[np.arange(n), 2 * labels + 4, 4:24] = 255  # a bright row gives the class away
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            md5[name] = _idx_gz(mirror / name, array)
    module = sys.modules["tinynet.datasets.mnist"]
    monkeypatch.setattr(module, "MNIST_MD5", md5)
    monkeypatch.setitem(tn.datasets.mnist.__kwdefaults__, "mirrors", (mirror.as_uri() + "/",))
    return mirror


def test_download_fetches_mnist_into_the_data_dir(tmp_path, capsys, mnist_mirror,
                                                  restore_threads):
    data_dir = tmp_path / "data" / "mnist"  # does not exist yet
    out, config = run(tmp_path, "--dataset", "mnist", "--data-dir", str(data_dir), "--download",
                      "--batch-size", "16", "--quiet")
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(p.name
                                                               for p in mnist_mirror.iterdir())
    assert config["samples"] == {"train": 110, "val": 10, "test": 30}
    assert config["result"]["test_accuracy"] >= 0.5  # learnable: far above chance (0.1)


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_missing_mnist_files_suggest_the_flag(where, tmp_path, capsys):
    data_dir = tmp_path / "mnist"
    if where == "empty":
        data_dir.mkdir()
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --download" in err and "download=True" not in err, err


def test_every_train_option_is_in_the_readme():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    train = cli.build_parser().train_parser
    options = [o for a in train._actions for o in a.option_strings if o.startswith("--")]
    assert "--threads" in options and "--download" in options
    missing = [o for o in options if o != "--help" and not re.search(rf"{o}(?![\w-])", readme)]
    assert not missing, f"README.md does not mention {missing}"
