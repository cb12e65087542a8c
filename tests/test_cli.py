"""``tinynet train`` end to end (on quick settings) and ``tn.models``.

The command runs in-process through ``tinynet.cli.main(argv)`` (what the console script calls), and
in a fresh interpreter for ``python -m tinynet``. Every bad value must give exactly one line on
stderr and exit status 2, never a traceback.
"""

import csv
import importlib.util
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn
from tinynet import cli

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

ROOT = Path(__file__).resolve().parent.parent
QUICK = ("--augment", "none", "--quiet")  # the plain digits, no table: fastest


def train(tmp_path, *options, name="run", capsys=None):
    out = tmp_path / name
    status = cli.main(["train", "--out", str(out), *options])
    assert status == 0
    return out


def read_history(run_dir: Path) -> list:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# A normal run: table, test accuracy, run folder
# --------------------------------------------------------------------------------------------

def test_run_prints_a_table_and_writes_the_run_folder(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "3", "--augment", "none")
    stdout = capsys.readouterr().out
    rows = read_history(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]

    # The printed table has one row per epoch, with the numbers history.csv holds.
    assert re.search(r"^epoch\s+loss\s+accuracy\s+val_loss\s+val_acc\s+lr\s+time$", stdout, re.MULTILINE)
    table = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+s", stdout, re.MULTILINE)
    assert [int(t[0]) for t in table] == [1, 2, 3], stdout
    for printed, row in zip(table, rows):
        for value, key in zip(printed[1:5], ("loss", "accuracy", "val_loss", "val_accuracy")):
            assert float(value) == pytest.approx(float(row[key]), abs=6e-5)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])  # it learns

    config = json.loads((out / "config.json").read_text())
    assert config["args"]["model"] == "mlp" and config["args"]["dataset"] == "digits"
    assert config["args"]["epochs"] == 3 and config["args"]["seed"] == 0
    samples = config["samples"]
    assert samples["train"] + samples["val"] + samples["test"] == 1797  # a partition of digits
    assert abs(samples["val"] - 0.15 * 1797) <= 10 and abs(samples["test"] - 0.15 * 1797) <= 10

    # The test accuracy is that of the best checkpoint (lowest val_loss), recomputed here.
    result = config["result"]
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert result["best_epoch"] == int(best["epoch"])
    printed = re.search(r"^test accuracy (\S+) .*\(epoch (\d+)\)", stdout, re.MULTILINE)
    assert float(printed.group(1)) == pytest.approx(result["test_accuracy"], abs=5e-5)
    assert int(printed.group(2)) == result["best_epoch"]
    ckpt = tn.load(out / "best.npz")
    assert ckpt["epoch"] == result["best_epoch"]
    assert (out / "last.npz").is_file()
    assert f"run folder: {out}" in stdout

    if not HAS_MATPLOTLIB:
        assert "learning_curves.png not written: matplotlib is not installed" in stdout
    else:
        assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_accuracy_is_recomputable_from_the_best_checkpoint(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "2", *QUICK)
    config = json.loads((out / "config.json").read_text())
    # Rebuild the split and normalisation independently of the cli module's code path.
    x, y = (t.numpy() for t in tn.datasets.digits().tensors)
    test_idx = tn.data.stratified_split(y, cli.SPLIT, y, seed=0)[2].indices
    mean, std = config["normalise"]["mean"][0], config["normalise"]["std"][0]
    model = tn.models.mlp(hidden=(256, 128), dropout=0.2)
    model.load_state_dict(tn.load(out / "best.npz")["model"])
    model.eval()
    with tn.no_grad():
        logits = model(tn.tensor(((x[test_idx] - mean) / std).astype(np.float32)))
    accuracy = float((logits.numpy().argmax(1) == y[test_idx]).mean())
    assert accuracy == pytest.approx(config["result"]["test_accuracy"], abs=1e-9)


def test_quiet_prints_only_the_result(tmp_path, capsys):
    train(tmp_path, "--epochs", "1", *QUICK)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("test accuracy") and lines[1].startswith("run")
    assert captured.err == ""  # no progress bar either


def test_default_run_folder_is_new_under_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--epochs", "1", *QUICK]) == 0
    assert cli.main(["train", "--epochs", "1", *QUICK]) == 0
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2  # two runs in the same second still get their own folders
    for folder in folders:
        assert re.fullmatch(r"\d{8}-\d{6}-mlp-digits(-\d+)?", folder.name)
        assert {"config.json", "history.csv", "best.npz"} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("options", [
    ("--model", "cnn", "--augment", "none"),
    ("--dataset", "spirals", "--optimizer", "sgd", "--schedule", "onecycle"),
    ("--optimizer", "rmsprop", "--schedule", "plateau", "--patience", "1", "--augment", "shift"),
    ("--optimizer", "adagrad", "--schedule", "step", "--augment", "none"),
    ("--optimizer", "adamw", "--batch-size", "128", "--lr", "0.01"),
], ids=["cnn", "spirals-sgd-onecycle", "rmsprop-plateau-shift", "adagrad-step", "adamw"])
def test_other_models_datasets_optimizers_and_schedules(tmp_path, options, capsys):
    out = train(tmp_path, "--epochs", "2", "--quiet", *options)
    config = json.loads((out / "config.json").read_text())
    assert 0.0 <= config["result"]["test_accuracy"] <= 1.0
    assert len(read_history(out)) == config["result"]["epochs_run"] <= 2
    assert config["args"][options[0].lstrip("-")] == options[1]


def test_standin_device_gives_the_cpu_numbers(tmp_path, capsys):
    """A seed gives the same weights and batch order on every device, so a model without dropout
    trains to the CPU's numbers on the stand-in: equal to float32 rounding (cross entropy runs as
    NumPy calls on the CPU and as the GPU's fused kernels on the stand-in, which round
    differently). Dropout masks are drawn on the host on the CPU and on the device elsewhere
    (docs/devices.md): with dropout a seed reproduces each device exactly."""
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")
    spirals = ("--dataset", "spirals", "--epochs", "2", "--quiet")  # its MLP has no dropout
    cpu = read_history(train(tmp_path, *spirals, name="cpu"))
    standin = read_history(train(tmp_path, *spirals, "--device", "standin", name="standin"))
    np.testing.assert_allclose([[float(r[k]) for k in keys] for r in standin],
                               [[float(r[k]) for k in keys] for r in cpu], rtol=1e-5)
    digits = ("--epochs", "2", *QUICK, "--device", "standin")  # dropout 0.2
    first = read_history(train(tmp_path, *digits, name="digits1"))
    again = read_history(train(tmp_path, *digits, name="digits2"))
    assert [[r[k] for k in keys] for r in first] == [[r[k] for k in keys] for r in again]


def _write_idx(path: Path, array: np.ndarray) -> None:
    # IDX: two zero bytes, dtype code 0x08 (uint8), number of dimensions, big-endian sizes, data.
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_a_folder_of_idx_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 30)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        images[np.arange(n), 2 * labels + 4, 4:24] = 255  # a bright row that gives the class away
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    out = train(tmp_path, "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "3",
                "--batch-size", "16", "--quiet")
    config = json.loads((out / "config.json").read_text())
    assert config["samples"] == {"train": 110, "val": 10, "test": 30}
    assert config["result"]["test_accuracy"] >= 0.5  # learnable: far above chance (0.1)


# --------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------

def test_resume_continues_exactly_where_the_run_stopped(tmp_path, capsys):
    options = ("--schedule", "none", *QUICK)
    straight = train(tmp_path, "--epochs", "4", *options, name="straight")
    part = train(tmp_path, "--epochs", "2", *options, name="part")
    first_two = read_history(part)
    assert cli.main(["train", "--resume", str(part / "last.npz"), "--epochs", "4",
                     "--quiet"]) == 0  # the rest of the options come from part/config.json
    assert "test accuracy" in capsys.readouterr().out

    assert read_history(part)[:2] == first_two  # history kept, then extended
    resumed_rows, straight_rows = read_history(part), read_history(straight)
    keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
    assert [[r[k] for k in keys] for r in resumed_rows] == \
        [[r[k] for k in keys] for r in straight_rows]
    resumed = tn.load(part / "last.npz")["model"]
    reference = tn.load(straight / "last.npz")["model"]
    assert resumed.keys() == reference.keys()
    for key in reference:  # bit-identical weights
        np.testing.assert_array_equal(resumed[key].numpy(), reference[key].numpy())
    config = json.loads((part / "config.json").read_text())
    assert config["args"]["epochs"] == 4 and config["result"]["epochs_run"] == 4


def test_resume_accepts_the_run_folder(tmp_path, capsys):
    part = train(tmp_path, "--epochs", "1", "--schedule", "plateau", *QUICK)
    assert cli.main(["train", "--resume", str(part), "--epochs", "2", "--quiet"]) == 0
    assert len(read_history(part)) == 2


# Quick runs whose validation loss does not improve every epoch (SGD at lr 0.5).
SPIRALS = ("--dataset", "spirals", "--batch-size", "32", "--schedule", "none", "--optimizer", "sgd",
           "--lr", "0.5", "--quiet")


def test_resuming_a_run_with_nothing_left_to_train_finishes_it(tmp_path, capsys):
    run = train(tmp_path, "--epochs", "2", *SPIRALS)
    history = read_history(run)
    # as a kill after the last checkpoint leaves it (no plot at all without matplotlib)
    (run / "learning_curves.png").unlink(missing_ok=True)
    config = json.loads((run / "config.json").read_text())
    del config["result"]
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "1"]) == 2
    assert capsys.readouterr().err == ("tinynet train: error: --resume: --epochs 1 is below the "
                                       "2 epochs the checkpoint has done; pass --epochs 2 or "
                                       "more\n")
    assert cli.main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing to train: the run has done its 2 epochs; pass --epochs above "
                          "2 to train on\ntest accuracy ")
    assert read_history(run) == history
    assert (run / "learning_curves.png").is_file() == HAS_MATPLOTLIB
    assert json.loads((run / "config.json").read_text())["result"]["epochs_run"] == 2


def test_a_run_that_stopped_early_says_so_when_resumed_and_trains_on_without_the_rule(tmp_path,
                                                                                    capsys):
    epochs = 8
    straight = train(tmp_path, "--epochs", str(epochs), *SPIRALS, name="straight")
    val = [float(r["val_loss"]) for r in read_history(straight)]
    # patience 1 stops at the first epoch whose val_loss is no better than the best before it
    stop = next(e for e in range(2, epochs + 1) if val[e - 1] >= min(val[:e - 1]))
    assert stop < epochs, "the run improved every epoch: the test needs a stop to resume from"
    run = train(tmp_path, "--epochs", str(epochs), "--patience", "1", *SPIRALS)
    assert len(read_history(run)) == stop
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run)]) == 0  # with the table: no header either
    out = capsys.readouterr().out
    assert f"\nnothing to train: early stopping at epoch {stop}: val_loss has not improved for 1 " \
           "epoch (best " in out, out
    assert "the run had already stopped there, so no epoch was trained; a larger --patience, or " \
           "--patience 0, trains on\n" in out
    assert len(read_history(run)) == stop and tn.load(run / "last.npz")["epoch"] == stop
    assert cli.main(["train", "--resume", str(run), "--patience", "0", "--quiet"]) == 0
    keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
    assert [[r[k] for k in keys] for r in read_history(run)] == \
        [[r[k] for k in keys] for r in read_history(straight)]  # on as if never stopped


def test_resuming_into_another_folder_copies_the_run_and_leaves_it_alone(tmp_path, capsys):
    run = train(tmp_path, "--epochs", "2", *SPIRALS)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    other = tmp_path / "longer"
    assert cli.main(["train", "--resume", str(run), "--epochs", "3", "--out", str(other)]) == 0
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert len(read_history(other)) == 3 and read_history(other)[:2] == read_history(run)
    assert tn.load(other / "best.npz")["epoch"] == json.loads(
        (other / "config.json").read_text())["result"]["best_epoch"]


# --------------------------------------------------------------------------------------------
# Bad values: one line on stderr, exit status 2, no traceback
# --------------------------------------------------------------------------------------------

def _bad_value_cases(tmp_path: Path) -> list:
    empty = tmp_path / "empty"
    empty.mkdir()
    finished = tmp_path / "finished"
    assert cli.main(["train", "--epochs", "1", "--out", str(finished), *QUICK]) == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text((finished / "config.json").read_text())
    tn.save({"weights": tn.zeros(3)}, foreign / "last.npz")  # a checkpoint, but not fit's
    config = json.loads((finished / "config.json").read_text())

    def resumable(name, config_text, checkpoint=None):
        """A run folder: finished's last.npz (or ``checkpoint``) and this config.json."""
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(config_text)
        tn.save(checkpoint or tn.load(finished / "last.npz"), folder / "last.npz")
        return str(folder)

    cnn_checkpoint = tn.load(finished / "last.npz")  # an MLP run's config, a CNN's weights
    cnn_checkpoint["model"] = tn.models.cnn(in_channels=1, num_classes=10,
                                            image_size=8).state_dict()
    cases = [
        (["--epochs", "-3"], "--epochs: must be a positive integer"),
        (["--epochs", "0"], "--epochs: must be a positive integer"),
        (["--epochs", "ten"], "--epochs: must be an integer"),
        (["--batch-size", "0"], "--batch-size: must be a positive integer"),
        (["--batch-size", "5000"], "--batch-size 5000 is larger than the training set"),
        (["--lr", "-0.1"], "--lr: must be a positive number"),
        (["--lr", "nan"], "--lr: must be a positive number"),
        (["--patience", "-1"], "--patience: must be 0 or more"),
        (["--model", "resnet"], "--model: invalid choice: 'resnet'"),
        (["--dataset", "cifar"], "--dataset: invalid choice: 'cifar'"),
        (["--optimizer", "lbfgs"], "--optimizer: invalid choice: 'lbfgs'"),
        (["--schedule", "linear"], "--schedule: invalid choice: 'linear'"),
        (["--augment", "rotate"], "--augment: invalid choice: 'rotate'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--dataset", "mnist"], "--dataset mnist needs --data-dir"),
        (["--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere")],
         "--data-dir: no such folder"),
        (["--dataset", "mnist", "--data-dir", str(empty)], "lacks train-images-idx3-ubyte"),
        (["--model", "cnn", "--dataset", "spirals"], "--model cnn needs images"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--resume", str(tmp_path / "nowhere.npz")], "--resume: no checkpoint at"),
        (["--resume", str(finished), "--epochs", "3"], "cosine schedule was laid out for 1"),
        (["--resume", str(finished), "--model", "cnn"], "--resume: --model cnn differs"),
        (["--resume", str(foreign)], "is not a training checkpoint"),
        (["--resume", resumable("broken", "{not json")], "is not a tinynet train config"),
        (["--resume", resumable("no-args", '{"args": {}}')],
         ("lacks the options model, dataset, optimizer, schedule, batch_size, augment, seed, lr, "
          "epochs of the run")),
        (["--resume", resumable("list-args", '{"args": [1, 2]}')],
         'its "args" is list, not an object of options'),
        (["--resume", resumable("lbfgs", json.dumps({**config, "args": {
            **config["args"], "optimizer": "lbfgs"}}))],  # quietly built Adagrad before
         "records --optimizer 'lbfgs', which is not a valid value (not one of sgd, adam"),
        (["--resume", resumable("text-epochs", json.dumps({**config, "args": {
            **config["args"], "epochs": "1"}}))], "records --epochs '1', which is not a valid"),
        (["--resume", resumable("cnn-weights", json.dumps(config), cnn_checkpoint)],
         ("the checkpoint's model state does not fit the model given: Error(s) in loading "
          "state_dict for Sequential: missing keys: 1.weight")),
        (["--out", str(finished)], (f"--out: {finished} already holds a run (config.json, "
                                    f"last.npz, best.npz); continue it with --resume {finished}")),
        (["--out", ""], "--out: must be a path, got an empty string"),  # trained into . before
        (["--resume", ""], "--resume: must be a path, got an empty string"),
        (["--data-dir", str(empty)], "--data-dir is only read with --dataset mnist"),
    ]
    if not tn.cuda.is_available():
        no_cupy = importlib.util.find_spec("cupy") is None
        cases.append((["--device", "cuda"], "tinynet[gpu]" if no_cupy else "--device cuda"))
    return cases


def _files(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_bad_value_gets_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a case that wrongly trained would write runs/ here
    cases = _bad_value_cases(tmp_path)
    capsys.readouterr()
    before = _files(tmp_path)
    for options, message in cases:
        status = cli.main(["train", *options])
        err = capsys.readouterr().err
        assert status == 2, (options, err)
        assert err.count("\n") == 1 and err.endswith("\n"), (options, err)
        assert "Traceback" not in err
        assert err.startswith("tinynet"), (options, err)
        assert message in err, (options, err)
        assert _files(tmp_path) == before, options  # nothing written, no run folder touched


def test_a_diverging_run_fails_with_one_line_and_exit_status_1(tmp_path, capsys):
    status = cli.main(["train", "--lr", "1e30", "--epochs", "2", "--out", str(tmp_path / "run"),
                       *QUICK])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" not in err and "RuntimeWarning" not in err
    assert err.count("\n") == 2, err  # NaNGuard's line (epoch, iteration), then the verdict
    assert re.search(r"NaNGuard: the loss became nan at epoch 1, iteration \d+/40", err), err
    assert err.splitlines()[-1].startswith("tinynet train: training failed: no epoch ended")


def test_python_dash_m_tinynet_reports_a_bad_value_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinynet", "train", "--epochs", "-1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--epochs" in result.stderr, result.stderr
    assert result.stdout == ""
    helped = subprocess.run([sys.executable, "-m", "tinynet", "train", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert helped.returncode == 0 and "--resume" in helped.stdout


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^\[project\.scripts\]\ntinynet = "tinynet\.cli:main"$', text, re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Helpers: shift augmentation
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flat", [True, False])
def test_shift_augment_adds_four_one_pixel_shifts(flat):
    x = np.arange(2 * 9, dtype=np.float32).reshape(2, 1, 3, 3) + 1
    y = np.array([4, 7])
    out, labels = cli.shift_augment(x.reshape(2, 9) if flat else x, y, background=-1.0)
    out = out.reshape(10, 3, 3)
    assert labels.tolist() == [4, 7] * 5
    img = x[1, 0]
    np.testing.assert_array_equal(out[1], img)
    up = np.full((3, 3), -1.0)
    up[:2] = img[1:]  # content moved up by one pixel; the bottom row is background
    np.testing.assert_array_equal(out[3], up)
    right = np.full((3, 3), -1.0)
    right[:, 1:] = img[:, :2]  # moved right: the left column is background
    np.testing.assert_array_equal(out[9], right)
    # Every copy is one of the four one-pixel moves of its image.
    for k in range(5):
        shifted = out[2 * k + 1]
        assert np.count_nonzero(shifted == -1.0) == (0 if k == 0 else 3)


# --------------------------------------------------------------------------------------------
# tn.models
# --------------------------------------------------------------------------------------------

def test_mlp_layers_and_parameter_count():
    model = tn.models.mlp(in_features=64, hidden=(32, 16), num_classes=10, dropout=0.1)
    assert model(tn.randn(5, 64)).shape == (5, 10)
    assert model(tn.randn(5, 1, 8, 8)).shape == (5, 10)  # images are flattened
    assert model.num_parameters() == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout",
                     "Linear"]
    assert "Dropout" not in [type(m).__name__ for m in tn.models.mlp(dropout=0.0)]
    assert tn.models.mlp(hidden=())(tn.randn(2, 64)).shape == (2, 10)


@pytest.mark.parametrize("image_size, features", [(8, 64 * 2 * 2), (28, 64 * 7 * 7)])
def test_cnn_shapes_for_digits_and_mnist(image_size, features):
    model = tn.models.cnn(in_channels=1, num_classes=10, image_size=image_size)
    assert model(tn.randn(3, 1, image_size, image_size)).shape == (3, 10)
    linear = [m for m in model if isinstance(m, tn.nn.Linear)]
    assert linear[0].in_features == features
    kinds = [type(m).__name__ for m in model][:4]
    assert kinds == ["Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d"]
    no_bn = tn.models.cnn(batch_norm=False, hidden=0, dropout=0.0, channels=(4,))
    assert [type(m).__name__ for m in no_bn] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten",
                                                "Linear"]
    assert no_bn.num_parameters() == (9 * 4 + 4) + (4 * 4 * 4 * 10 + 10)


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="dropout"):
        tn.models.mlp(dropout=1.0)
    with pytest.raises(ValueError, match="hidden width"):
        tn.models.mlp(hidden=(0,))
    with pytest.raises(ValueError, match="too small"):
        tn.models.cnn(image_size=2, channels=(8, 8))


def test_models_learn_digits_in_a_few_epochs():
    x, y = tn.datasets.digits().tensors
    model = tn.models.mlp()
    opt = tn.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = tn.nn.CrossEntropyLoss()
    tn.manual_seed(0)
    for _ in range(30):  # full-batch steps: enough to beat chance by far
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * math.log(10)


# --------------------------------------------------------------------------------------------
# MNIST-1D: the paper's four models, its recipe as the dataset's defaults
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, parameters", [("linear", 410), ("mlp", 78_858), ("cnn", 5_210),
                                               ("gru", 5_134)])
def test_mnist1d_trains_the_papers_models_with_its_recipe(tmp_path, model, parameters, capsys):
    out = train(tmp_path, "--dataset", "mnist1d", "--model", model, "--epochs", "1", "--quiet")
    config = json.loads((out / "config.json").read_text())
    args = config["args"]
    assert (args["optimizer"], args["lr"], args["batch_size"], args["schedule"],
            args["augment"]) == ("adam", 0.01, 100, "none", "none")
    assert config["parameters"] == parameters
    samples = config["samples"]
    assert samples["train"] + samples["val"] == 4000 and samples["test"] == 1000
    assert abs(samples["val"] - 400) <= 5  # a stratified tenth of the training signals
    assert config["normalise"] == {"mean": [0.0], "std": [1.0]}  # fed as the recipe feeds it
    assert 0.1 < config["result"]["test_accuracy"] <= 1.0  # above chance after one epoch


def test_mnist1d_default_epochs_are_the_recipes_6000_steps():
    args = cli.parse_train_args(["train", "--dataset", "mnist1d"])
    cli._fill_defaults(args)
    steps = args.epochs * math.ceil(4000 * (1 - cli.MNIST1D_VAL) / args.batch_size)
    assert abs(steps - 6000) <= 36  # within one epoch of the recipe
    ours = cli.parse_train_args(["train", "--dataset", "mnist1d", "--lr", "0.001", "--batch-size",
                                 "50", "--schedule", "cosine", "--epochs", "3"])
    cli._fill_defaults(ours)  # options given still win over the recipe
    assert (ours.lr, ours.batch_size, ours.schedule, ours.epochs) == (0.001, 50, "cosine", 3)
    other = cli.parse_train_args(["train"])
    cli._fill_defaults(other)  # the other datasets keep their defaults
    assert (other.lr, other.batch_size, other.schedule, other.epochs) == (2e-3, 32, "cosine", 30)


def test_mnist1d_learning_curves_show_the_mlps_overfitting_gap(tmp_path, capsys):
    """Ten epochs: the MLP's training accuracy runs away from its validation accuracy, the CNN's
    stays close and ends higher on the validation set (its inductive bias)."""
    mlp = read_history(train(tmp_path, "--dataset", "mnist1d", "--model", "mlp", "--epochs",
                             "10", "--quiet", name="mlp"))
    cnn = read_history(train(tmp_path, "--dataset", "mnist1d", "--model", "cnn", "--epochs",
                             "10", "--quiet", name="cnn"))

    def gap(rows):
        return float(rows[-1]["accuracy"]) - float(rows[-1]["val_accuracy"])
    assert gap(mlp) > 0.15
    assert gap(mlp) > gap(cnn) + 0.1
    assert float(cnn[-1]["val_accuracy"]) > float(mlp[-1]["val_accuracy"]) + 0.1


@pytest.mark.parametrize("options, message", [
    (["--model", "gru"], "--model gru reads a signal as a sequence: use --dataset mnist1d"),
    (["--dataset", "mnist1d", "--augment", "shift"], "--augment shift needs images"),
])
def test_mnist1d_bad_combinations_get_one_line(tmp_path, capsys, options, message):
    status = cli.main(["train", "--out", str(tmp_path / "run"), *options])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()
