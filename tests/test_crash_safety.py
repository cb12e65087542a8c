"""``tinynet train`` killed at every write, and writes that fail: the run folder stays consistent
and ``--resume`` finishes it exactly as an uninterrupted run (tinynet/run_folder.py states the
guarantees).

A child process runs the command with ``os.replace`` wrapped so that it dies (``os._exit``: no
handler or ``finally`` runs) right after the k-th file replacement, for k = 1, 2, ... until a run
completes: every write of the run folder (config.json, best.npz, last.npz, history.csv,
learning_curves.png) is a kill point. The spirals with SGD at lr 0.5 give epochs that improve and
one that does not, so both checkpoint paths are crossed.
"""

import csv
import errno
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn
from tinynet import cli

OPTIONS = ["--dataset", "spirals", "--epochs", "4", "--batch-size", "32", "--schedule", "none",
           "--optimizer", "sgd", "--lr", "0.5", "--quiet"]
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
RECORDED = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")  # not the timings

CHILD = """
import os, sys
from tinynet import cli
kill_at, replaced = int(sys.argv[1]), []
real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    replaced.append(dst)
    if len(replaced) == kill_at:
        os._exit(17)  # killed right after this write: nothing else runs
os.replace = replace
sys.exit(cli.main(sys.argv[2:]))
"""


def run_child(kill_at: int, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(kill_at), "train", *argv],
                          capture_output=True, text=True, timeout=300, check=False)


def rows(path: Path) -> list:
    with open(path, newline="") as f:
        return [{k: r[k] for k in RECORDED} for r in csv.DictReader(f)]


def recorded(history: dict) -> list:
    return [{k: repr(r[k]) if isinstance(r[k], float) else str(r[k]) for k in RECORDED}
            for r in history["epochs"]]


def best_epoch(history: dict) -> int:
    finite = [r for r in history["epochs"] if not math.isnan(r["val_loss"])]
    return min(finite, key=lambda r: r["val_loss"])["epoch"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def assert_consistent_at_rest(run: Path) -> None:
    """What a kill at any instant may leave (run_folder.py's list), before any resume."""
    names = set(os.listdir(run))
    assert not [n for n in names if n.endswith(".tmp")], names  # killed after a rename
    checkpoints = {n: tn.load(run / n) for n in ("last.npz", "best.npz") if n in names}
    if not checkpoints:
        return
    newest = max(checkpoints.values(), key=lambda c: c["epoch"])
    if "best.npz" in checkpoints:  # the best epoch of the newest history, never an older one
        assert checkpoints["best.npz"]["epoch"] == best_epoch(newest["history"])
    if "last.npz" in checkpoints:  # the newest, or one behind best.npz
        assert checkpoints["last.npz"]["epoch"] in (newest["epoch"], newest["epoch"] - 1)
    if "history.csv" in names:  # the newest history, or one epoch less
        written = rows(run / "history.csv")
        assert written == recorded(newest["history"])[:len(written)]
        assert len(written) >= newest["epoch"] - 1
    config = json.loads((run / "config.json").read_text())
    if "result" in config:  # written last: everything else is final
        assert config["result"]["best_epoch"] == checkpoints["best.npz"]["epoch"]
        assert len(rows(run / "history.csv")) == newest["epoch"] == config["args"]["epochs"]


def assert_same_run(run: Path, straight: Path) -> None:
    assert rows(run / "history.csv") == rows(straight / "history.csv")
    for name in ("best.npz", "last.npz"):
        got, expected = tn.load(run / name), tn.load(straight / name)
        assert got["epoch"] == expected["epoch"], name
        assert same_weights(got["model"], expected["model"]), name
    result = json.loads((run / "config.json").read_text())["result"]
    reference = json.loads((straight / "config.json").read_text())["result"]
    for key in ("test_accuracy", "test_loss", "best_epoch", "epochs_run"):
        assert result[key] == reference[key], key
    assert result["best_epoch"] == best_epoch(tn.load(run / "last.npz")["history"])
    if HAS_MATPLOTLIB:
        assert (run / "learning_curves.png").stat().st_size > 0
    else:  # the run says it could not plot, and leaves no partial file
        assert not (run / "learning_curves.png").exists()


def test_a_run_killed_after_any_write_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    straight = tmp_path / "straight"
    assert cli.main(["train", "--out", str(straight), *OPTIONS]) == 0
    kill_at = 0
    while True:
        kill_at += 1
        run = tmp_path / f"killed-{kill_at}"
        child = run_child(kill_at, "--out", str(run), *OPTIONS)
        if child.returncode == 0:
            break  # fewer writes than kill_at: every write has been a kill point
        assert child.returncode == 17, child.stderr
        assert_consistent_at_rest(run)
        if not (run / "config.json").exists():
            continue  # killed before the run existed: nothing to resume
        assert cli.main(["train", "--resume", str(run), "--quiet"]) == 0, kill_at
        assert_same_run(run, straight)
    assert kill_at > 12  # config, 4 epochs of 2-3 writes, history, curves, result
    assert "nothing to train" in capsys.readouterr().out  # a kill after the last epoch


def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes(tmp_path, capsys):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert cli.main(["train", "--out", str(straight), *OPTIONS]) == 0
    full_after_epoch_2 = f"""
import errno, os, sys
from tinynet import cli
real_write = os.write
def write(fd, data):
    if os.path.exists({str(run / "history.csv")!r}) and len(open({str(run / "history.csv")!r}).readlines()) > 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_write(fd, data)
os.write = write
sys.exit(cli.main(sys.argv[1:]))
"""
    child = subprocess.run([sys.executable, "-c", full_after_epoch_2, "train", "--out", str(run),
                            *OPTIONS], capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 1, child.stderr
    assert child.stderr == (f"tinynet train: error: cannot write to {run}: "
                            f"{os.strerror(errno.ENOSPC)}; the folder keeps its last complete "
                            f"epoch (continue with --resume {run})\n")
    assert sorted(os.listdir(run)) == ["best.npz", "config.json", "history.csv", "last.npz"]
    assert tn.load(run / "last.npz")["epoch"] == 2 and len(rows(run / "history.csv")) == 2
    assert_consistent_at_rest(run)
    assert cli.main(["train", "--resume", str(run), "--quiet"]) == 0
    assert_same_run(run, straight)


def test_an_unwritable_out_folder_is_one_line_and_nothing_trains(tmp_path, capsys,
                                                                 monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # as a folder without write permission
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert cli.main(["train", "--out", str(out), *OPTIONS]) == 2
    err = capsys.readouterr().err
    assert err == f"tinynet train: error: --out: cannot write into {out}: Permission denied\n"
    assert os.listdir(out) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="file permissions do not bind root (or exist here)")
def test_a_read_only_out_folder_is_one_line(tmp_path, capsys):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert cli.main(["train", "--out", str(out), *OPTIONS]) == 2
    finally:
        out.chmod(0o755)
    assert capsys.readouterr().err.startswith("tinynet train: error: --out: cannot write into")
    assert os.listdir(out) == []
