"""tn.train: fit, evaluate, metrics, History (and its plot), scheduler stepping, exact resume,
hyper-parameter search, and the snippets of docs/training.md. Callbacks: test_callbacks.py."""

import json
import math
import pathlib
import re
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.train import History, evaluate, fit, metrics, resume
from tinynet.train.callbacks import Callback, ModelCheckpoint


# --- small problems -----------------------------------------------------------------------------
def blobs(n_per_class=40, n_classes=3, seed=0, spread=0.35):
    """Well separated Gaussian blobs in 2-D (host arrays)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[np.cos(a), np.sin(a)] for a in 2 * np.pi * np.arange(n_classes)
                        / n_classes]) * 2.0
    x = np.concatenate([c + spread * rng.standard_normal((n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y.astype(np.int64)


def dataset(x, y):
    return tn.data.TensorDataset(tn.tensor(x), tn.tensor(y))


def mlp(hidden=16, n_classes=3, dropout=0.0):
    layers = [tn.nn.Linear(2, hidden), tn.nn.ReLU()]
    if dropout:
        layers.append(tn.nn.Dropout(dropout))
    return tn.nn.Sequential(*layers, tn.nn.Linear(hidden, n_classes))


def weights(model):
    return {k: v.cpu().numpy().copy() for k, v in model.state_dict().items()}


class Recorder(Callback):
    """Records every event with the epoch and iteration, and the lr each batch ran with."""

    def __init__(self):
        self.events, self.batch_lrs, self.batch_losses, self.batch_sizes = [], [], [], []

    def on_train_begin(self, state):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, state):
        self.events.append(("epoch_begin", state.epoch))

    def on_batch_begin(self, state):
        self.batch_lrs.append(state.optimizer.param_groups[0]["lr"])

    def on_batch_end(self, state):
        self.events.append(("batch", state.epoch, state.iteration))
        self.batch_losses.append(state.batch_logs["loss"])
        self.batch_sizes.append(state.batch_logs["batch_size"])

    def on_epoch_end(self, state):
        self.events.append(("epoch_end", state.epoch))

    def on_train_end(self, state):
        self.events.append(("train_end",))


# --- fit ----------------------------------------------------------------------------------------
def test_fit_learns_a_separable_problem(device):
    x, y = blobs()
    xv, yv = blobs(seed=1)
    tn.manual_seed(0)
    model = mlp()
    opt = tn.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    train = tn.data.DataLoader(dataset(x, y), batch_size=16, shuffle=True, seed=0)
    val = tn.data.DataLoader(dataset(xv, yv), batch_size=50)
    history = fit(model, tn.nn.CrossEntropyLoss(), opt, train, epochs=8, val_loader=val,
                  device=device, progress=False)
    assert all(p.device == tn.Device(device) for p in model.parameters())
    assert len(history) == 8 and history["epoch"] == list(range(1, 9))
    assert history.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                              "time", "samples_per_s"]
    assert history["val_accuracy"][-1] >= 0.95 and history["accuracy"][-1] >= 0.95
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["lr"] == [0.3] * 8
    assert all(t > 0 for t in history["time"]) and all(s > 0 for s in history["samples_per_s"])
    assert history.stopped_epoch is None and history.stop_reason is None


def test_history_values_are_the_sample_means(device):
    """Train loss = batch losses weighted by batch size; validation values = a NumPy
    recomputation from the final model (nothing changes the weights after validation)."""
    x, y = blobs(n_per_class=15, spread=1.0)  # overlapping classes: losses well above zero
    xv, yv = blobs(n_per_class=11, seed=3, spread=1.0)
    tn.manual_seed(1)
    model = mlp()
    rec = Recorder()
    train = tn.data.DataLoader(dataset(x, y), batch_size=7, shuffle=True, seed=2)  # 45 = 6*7+3
    val = tn.data.DataLoader(dataset(xv, yv), batch_size=10)  # 33 = 3*10 + 3
    history = fit(model, tn.nn.CrossEntropyLoss(), tn.optim.Adam(model.parameters(), lr=0.05),
                  train, epochs=3, val_loader=val, callbacks=[rec], device=device,
                  progress=False)
    per_epoch = len(train)
    assert rec.batch_sizes[:per_epoch] == [7] * 6 + [3]
    for e in range(3):
        losses = np.array(rec.batch_losses[e * per_epoch:(e + 1) * per_epoch])
        sizes = np.array(rec.batch_sizes[e * per_epoch:(e + 1) * per_epoch])
        assert history.epochs[e]["loss"] == pytest.approx((losses * sizes).sum() / 45, rel=1e-12)
    model.eval()
    with tn.no_grad():
        logits = model(tn.tensor(xv, device=device)).cpu().numpy().astype(np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    assert history["val_loss"][-1] == pytest.approx(-log_p[np.arange(33), yv].mean(), rel=1e-5,
                                                    abs=1e-7)
    assert history["val_accuracy"][-1] == pytest.approx((logits.argmax(1) == yv).mean(),
                                                        abs=1e-12)
    # Events in textbook order: begin, (epoch_begin, batches 1..M, epoch_end) x 3, end.
    expected = [("train_begin",)]
    for e in range(1, 4):
        expected += [("epoch_begin", e)] + [("batch", e, i) for i in range(1, per_epoch + 1)]
        expected += [("epoch_end", e)]
    assert rec.events == expected + [("train_end",)]


def test_fit_without_validation_or_metrics():
    x, y = blobs(n_per_class=10)
    tn.manual_seed(0)
    model = mlp()
    history = fit(model, tn.nn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
                  tn.data.DataLoader(dataset(x, y), batch_size=8), epochs=2, metrics=(),
                  progress=False)
    assert history.keys() == ["epoch", "loss", "lr", "time", "samples_per_s"]


def test_fit_rejects_bad_arguments():
    x, y = blobs(n_per_class=4)
    model = mlp()
    opt = tn.optim.SGD(model.parameters(), lr=0.1)
    loader = tn.data.DataLoader(dataset(x, y), batch_size=4)
    loss = tn.nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="step_per"):
        fit(model, loss, opt, loader, 1, step_per="batch", progress=False)
    plateau = tn.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        fit(model, loss, opt, loader, 1, scheduler=plateau, step_per="iteration", progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        fit(model, loss, opt, loader, 1, metrics=("f1",), progress=False)
    with pytest.raises(ValueError, match="start_epoch"):
        fit(model, loss, opt, loader, 2, start_epoch=3, progress=False)
    for bad in (2.5, "3", True, -1):  # range()'s TypeError, or a silent empty run, before
        with pytest.raises(ValueError, match=f"fit: epochs must be an integer >= 0, got "
                                             f"{re.escape(repr(bad))}"):
            fit(model, loss, opt, loader, bad, progress=False)
    with pytest.raises(ValueError, match="fit: start_epoch must be an integer >= 0, got None"):
        fit(model, loss, opt, loader, 2, start_epoch=None, progress=False)
    triples = [(tn.tensor(x), tn.tensor(y), tn.tensor(y))]
    with pytest.raises(ValueError, match=r"\(inputs, targets\) batches, got 3 items"):
        fit(model, loss, opt, triples, 1, progress=False)


def hide_module(monkeypatch, name: str) -> None:
    """Make ``import name`` (and its submodules) fail for this test, as if it were not installed."""
    for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")] + [name]:
        monkeypatch.setitem(sys.modules, loaded, None)


@pytest.mark.parametrize("bar", ["plain", "tqdm"])
def test_fit_shows_a_progress_bar_by_default(bar, capsys, monkeypatch):
    """Without tqdm the plain bar, with tqdm (the progress extra) tqdm's: both run wherever tqdm
    is installed, so the outcome does not depend on which extras the venv has."""
    if bar == "tqdm":
        pytest.importorskip("tqdm", reason="tqdm is optional (the progress extra)")
    else:
        hide_module(monkeypatch, "tqdm")
    x, y = blobs(n_per_class=4)
    model = mlp()
    fit(model, tn.nn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
        tn.data.DataLoader(dataset(x, y), batch_size=4), epochs=2)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err
    if bar == "tqdm":
        assert re.search(r"epoch 2/2: 100%\S* 3/3", err), err  # tqdm's own counter
    else:
        assert "iteration 3/3" in err and "%|" not in err, err


# --- evaluate -----------------------------------------------------------------------------------
def test_evaluate_matches_numpy_in_eval_mode(device):
    x, y = blobs(n_per_class=9, n_classes=4)
    tn.manual_seed(3)
    model = tn.nn.Sequential(tn.nn.Linear(2, 8), tn.nn.Dropout(0.5), tn.nn.Linear(8, 4))
    model.to(device)
    loader = tn.data.DataLoader(dataset(x, y), batch_size=5)  # 36 = 7*5 + 1
    result = evaluate(model, loader, tn.nn.CrossEntropyLoss(),
                      metrics=("accuracy", "top2_accuracy"))
    assert model.training  # the mode is restored
    w1, b1, w2, b2 = (v.cpu().numpy().astype(np.float64) for v in model.state_dict().values())
    logits = (x @ w1.T + b1) @ w2.T + b2  # dropout off: eval mode
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    ranks = (-logits).argsort(1)
    assert set(result) == {"loss", "accuracy", "top2_accuracy"}
    assert result["loss"] == pytest.approx(-log_p[np.arange(36), y].mean(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y).mean(), abs=1e-12)
    assert result["top2_accuracy"] == pytest.approx((ranks[:, :2] == y[:, None]).any(1).mean(),
                                                    abs=1e-12)
    assert evaluate(model, loader, metrics=("accuracy",)) == {"accuracy": result["accuracy"]}


# --- metrics ------------------------------------------------------------------------------------
@given(b=st.integers(1, 6), c=st.integers(2, 6), k=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_top_k_accuracy_matches_numpy(device, b, c, k, seed):
    rng = np.random.default_rng(seed)
    scores = np.stack([rng.permutation(c) for _ in range(b)]).astype(np.float32)  # no ties
    target = rng.integers(0, c, b)
    top_k = (-scores).argsort(1)[:, :k]
    expected = (top_k == target[:, None]).any(1).mean()
    out = tn.tensor(scores, device=device)
    t = tn.tensor(target, device=device)
    assert metrics.top_k_accuracy(out, t, k).item() == pytest.approx(expected, abs=1e-6)
    assert metrics.accuracy(out, t).item() == pytest.approx((scores.argmax(1) == target).mean(),
                                                            abs=1e-6)
    assert metrics.get_metric(f"top{k}_accuracy")(out, t).item() == pytest.approx(expected,
                                                                                   abs=1e-6)


def test_binary_accuracy_and_metric_names(device):
    logits = tn.tensor([[2.0], [-1.0], [0.5], [-3.0]], device=device)
    target = tn.tensor([1, 1, 0, 0], device=device)
    assert metrics.accuracy(logits, target).item() == pytest.approx(0.5)
    assert metrics.accuracy(logits.reshape(-1), target).item() == pytest.approx(0.5)
    assert metrics.metric_name("top3_accuracy") == "top3_accuracy"
    assert metrics.metric_name("acc") == "accuracy"
    with pytest.raises(ValueError, match="k >= 1"):
        metrics.top_k_accuracy(tn.zeros(2, 3), tn.tensor([0, 1]), k=0)


# --- scheduler stepping -------------------------------------------------------------------------
def _lr_run(step_per, make_scheduler, epochs=4, n=20, batch_size=6):
    x, y = blobs(n_per_class=n // 2, n_classes=2)
    tn.manual_seed(0)
    model = mlp(n_classes=2)
    opt = tn.optim.SGD(model.parameters(), lr=0.8)
    rec = Recorder()
    loader = tn.data.DataLoader(dataset(x, y), batch_size=batch_size)
    history = fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs,
                  scheduler=make_scheduler(opt), step_per=step_per, callbacks=[rec],
                  progress=False)
    return history, rec, len(loader)


def test_scheduler_stepped_per_epoch():
    history, rec, m = _lr_run("epoch", lambda o: tn.optim.lr_scheduler.StepLR(o, 2, gamma=0.5))
    expected = [0.8 * 0.5 ** (e // 2) for e in range(4)]
    assert history["lr"] == pytest.approx(expected, rel=1e-12)
    assert rec.batch_lrs == pytest.approx([lr for lr in expected for _ in range(m)], rel=1e-12)


def test_scheduler_stepped_per_iteration():
    history, rec, m = _lr_run("iteration",
                              lambda o: tn.optim.lr_scheduler.ExponentialLR(o, gamma=0.9))
    assert m == 4
    expected = [0.8 * 0.9 ** t for t in range(4 * m)]  # one step after every batch
    assert rec.batch_lrs == pytest.approx(expected, rel=1e-12)
    assert history["lr"] == pytest.approx(expected[::m], rel=1e-12)  # each epoch's first rate


def _scripted_metric(script):
    """A metric whose value in epoch e is script[e - 1] (for train and validation alike), and
    the callback that advances it: a known sequence of monitored values."""
    current = {}

    def scripted(output, target):
        return tn.tensor(current["value"], dtype=tn.float64, device=output.device)

    class Advance(Callback):
        def on_epoch_begin(self, state):
            current["value"] = script[state.epoch - 1]

    return scripted, Advance()


def test_reduce_lr_on_plateau_follows_the_validation_metric():
    script = [5.0, 4.0, 4.5, 4.2, 3.0, 3.5, 3.6, 3.7]
    scripted, advance = _scripted_metric(script)
    x, y = blobs(n_per_class=4)
    model = mlp()
    opt = tn.optim.SGD(model.parameters(), lr=1.0)
    plateau = tn.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0)
    loader = tn.data.DataLoader(dataset(x, y), batch_size=6)
    history = fit(model, tn.nn.CrossEntropyLoss(), opt, loader, len(script), val_loader=loader,
                  scheduler=plateau, metrics=(scripted,), callbacks=[advance],
                  scheduler_monitor="val_scripted", progress=False)
    assert history["val_scripted"] == pytest.approx(script)
    # patience 1: the second epoch in a row without a new best (epochs 4 and 7) halves the rate.
    assert history["lr"] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    t_opt = torch.optim.SGD([p], lr=1.0)
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, factor=0.5, patience=1,
                                                         threshold=0)
    lrs = []
    for value in script:
        lrs.append(t_opt.param_groups[0]["lr"])
        t_sched.step(value)
    assert history["lr"] == lrs


# --- resume -------------------------------------------------------------------------------------
def _resume_setup(device, seed_loader=5, step_per="epoch"):
    x, y = blobs(n_per_class=14)  # 42 samples, batch 8: a partial last batch
    model = mlp(hidden=12, dropout=0.3)  # dropout: the default random stream matters
    opt = tn.optim.Adam(model.parameters(), lr=0.02)
    if step_per == "epoch":
        sched = tn.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loader = tn.data.DataLoader(dataset(x, y), batch_size=8, shuffle=True, seed=seed_loader)
    if step_per == "iteration":  # a schedule whose rate depends on its step count, not on lr
        sched = tn.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=5 * len(loader))
    val = tn.data.DataLoader(dataset(*blobs(n_per_class=5, seed=9)), batch_size=16)
    return model, opt, sched, loader, val


@pytest.mark.parametrize("step_per", ["epoch", "iteration"])
def test_resume_is_bit_identical(device, tmp_path, step_per):
    k, m = 3, 2  # k odd: a StepLR(step_size=2) restarted from scratch would be off by one
    loss = tn.nn.CrossEntropyLoss()
    tn.manual_seed(7)
    model, opt, sched, loader, val = _resume_setup(device, step_per=step_per)
    straight = fit(model, loss, opt, loader, k + m, val_loader=val, scheduler=sched,
                   device=device, step_per=step_per, progress=False)
    expected = weights(model)

    tn.manual_seed(7)
    model, opt, sched, loader, val = _resume_setup(device, step_per=step_per)
    ckpt = ModelCheckpoint(tmp_path, monitor="val_loss")
    fit(model, loss, opt, loader, k, val_loader=val, scheduler=sched, callbacks=[ckpt],
        device=device, step_per=step_per, progress=False)
    assert not np.array_equal(weights(model)["0.weight"], expected["0.weight"])

    # A new process: other initial weights, another loader seed, the default stream elsewhere.
    tn.manual_seed(1234)
    model, opt, sched, loader, val = _resume_setup(device, seed_loader=99, step_per=step_per)
    model.to(device)
    tn.randn(17)
    start, history = resume(ckpt.last_path, model, opt, sched, loader)
    assert start == k and len(history) == k
    resumed = fit(model, loss, opt, loader, k + m, val_loader=val, scheduler=sched,
                  device=device, step_per=step_per, start_epoch=start, history=history,
                  progress=False)
    got = weights(model)
    assert got.keys() == expected.keys()
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name
    assert resumed is history and len(resumed) == k + m
    for a, b in zip(straight.epochs, resumed.epochs):
        for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert a[key] == b[key], (a["epoch"], key)


def _saved_run(tmp_path):
    model, opt, sched, loader, val = _resume_setup("cpu")
    fit(model, tn.nn.CrossEntropyLoss(), opt, loader, 1, val_loader=val, scheduler=sched,
        callbacks=[ModelCheckpoint(tmp_path)], progress=False)
    return tmp_path / "last.npz"


@pytest.mark.parametrize("build, part", [
    (lambda m, o, s, l: (mlp(hidden=5), o, s, l), "model"),  # another architecture
    (lambda m, o, s, l: (m, tn.optim.SGD(m.parameters(), lr=0.1), s, l), "optimizer"),
    (lambda m, o, s, l: (m, o, s, tn.data.DataLoader(l.dataset, batch_size=3)), "train_loader"),
])
def test_resume_names_the_state_that_does_not_fit(tmp_path, build, part):
    path = _saved_run(tmp_path)
    model, opt, sched, loader = build(*_resume_setup("cpu")[:4])
    with pytest.raises(ValueError, match=rf"resume: .*last\.npz: the checkpoint's {part} state "
                                         rf"does not fit the {part} given: "):
        resume(path, model, opt, sched, loader)


@pytest.mark.parametrize("edit, message", [
    (lambda c: {k: v for k, v in c.items() if k != "history"}, "'history' is NoneType"),
    (lambda c: {**c, "epoch": "3"}, "'epoch' is str"),
    (lambda c: {**c, "rng": {"seed": 1}}, "the checkpoint's rng state does not fit"),
    (lambda c: {**c, "history": {"epochs": [{"loss": 1.0}]}}, "epoch or history is malformed"),
])
def test_resume_refuses_a_malformed_training_checkpoint(tmp_path, edit, message):
    path = _saved_run(tmp_path)
    tn.save(edit(tn.load(path)), path)
    model, opt, sched, loader, _ = _resume_setup("cpu")
    with pytest.raises(ValueError, match=message):  # a bare KeyError or NumPy's message before
        resume(path, model, opt, sched, loader)


def test_resume_from_a_folder_without_checkpoints(tmp_path):
    model, opt, sched, loader, _ = _resume_setup("cpu")
    with pytest.raises(FileNotFoundError, match="holds no last.npz or best.npz"):
        resume(tmp_path, model, opt, sched, loader)


def test_resume_refuses_a_bare_state_dict(tmp_path):
    model = mlp()
    tn.save(model.state_dict(), tmp_path / "weights.npz")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        resume(tmp_path / "weights.npz", model, tn.optim.SGD(model.parameters(), lr=0.1))


# --- History --------------------------------------------------------------------------------------
def _history():
    h = History()
    for e, (loss, val, acc) in enumerate([(1.0, 1.2, 0.5), (0.6, 0.9, 0.7), (0.4, 0.95, 0.8)], 1):
        h.append({"epoch": e, "loss": loss, "accuracy": acc, "val_loss": val,
                  "val_accuracy": acc - 0.1, "lr": 0.1, "time": 0.5, "samples_per_s": 100.0})
    return h


def test_history_best_keys_csv_and_state_dict(tmp_path):
    h = _history()
    assert h.best("val_loss")["epoch"] == 2
    assert h.best("val_accuracy")["epoch"] == 3  # auto: max for accuracies
    assert h.best("val_accuracy", mode="min")["epoch"] == 1
    assert h["loss"] == [1.0, 0.6, 0.4]
    with pytest.raises(KeyError, match="val_top5"):
        h["val_top5"]
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].split(",") == h.keys()
    assert [float(v) for v in lines[2].split(",")[1:4]] == [0.6, 0.7, 0.9]
    h.stopped_epoch, h.stop_reason = 3, "early stopping"
    tn.save({"history": h.state_dict()}, tmp_path / "h.npz")
    back = History.from_state_dict(tn.load(tmp_path / "h.npz")["history"])
    assert back.epochs == h.epochs and back.stopped_epoch == 3 and back.stop_reason == h.stop_reason


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="History.plot needs matplotlib (the plot extra)")
    h = _history()
    h.stopped_epoch = 3
    h.plot(tmp_path / "curves.png")
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1350, 440)  # three panels: loss, accuracy, lr; 4.5x4.4 in each
    only_loss = History([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}])
    only_loss.plot(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        History().plot(tmp_path / "none.png")


def test_history_figure_reads_at_every_epoch():
    """Log-scale loss, the learning rate in its own panel, a title, a note on how the training
    curves were measured, and the best and stopping epochs inside every panel's frame."""
    pytest.importorskip("matplotlib", reason="History.figure needs matplotlib (the plot extra)")
    h = _history()
    h.append({"epoch": 4, "loss": 0.01, "accuracy": 0.99, "val_loss": 0.5, "val_accuracy": 0.9,
              "lr": 0.01})  # the best epoch is the last: its marker must not sit on the frame
    h.stopped_epoch = 4
    fig = h.figure(title="mlp on digits: test accuracy 0.97")
    loss_ax, acc_ax, lr_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    assert (loss_ax.get_yscale(), acc_ax.get_yscale()) == ("log", "linear")
    assert [list(line.get_ydata()) for line in lr_ax.get_lines()][0] == h["lr"]
    assert fig.get_suptitle() == "mlp on digits: test accuracy 0.97"
    note = " ".join(t.get_text() for t in fig.texts)
    assert "mean over each epoch's batches" in note and "dropout" in note
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert low <= 0.5 and high >= 4.5  # epochs 1 and 4 are half an epoch from the frame
    dots = [line for line in loss_ax.get_lines() if len(line.get_xdata()) == 1]
    assert [(d.get_xdata()[0], d.get_ydata()[0]) for d in dots] == [(4, 0.5)]  # best val_loss
    low, high = loss_ax.get_ylim()
    assert low < 0.5 < high
    assert History([{"epoch": 1, "loss": 0.0}]).figure().axes[0].get_yscale() == "linear"


# --- search ---------------------------------------------------------------------------------------
def _build(params):
    model = mlp(hidden=8)
    return model, tn.optim.SGD(model.parameters(), lr=params["lr"])


def test_grid_search_ranks_settings():
    ds = dataset(*blobs(n_per_class=20))
    rows = tn.train.grid_search(_build, ds, {"lr": [1e-4, 0.5], "epochs": [1, 4]},
                                loss_fn=tn.nn.CrossEntropyLoss(), seed=0)
    assert len(rows) == 4
    assert (rows[0]["lr"], rows[0]["epochs"]) == (0.5, 4)
    assert [r["val_loss"] for r in rows] == sorted(r["val_loss"] for r in rows)
    assert all(r["folds"] == 1 and r["batch_size"] == 32 for r in rows)
    assert all(1 <= r["best_epoch"] <= r["epochs"] for r in rows)
    table = tn.train.format_table(rows, ["lr", "epochs", "val_loss", "val_accuracy"])
    lines = table.splitlines()
    assert lines[0].split() == ["lr", "epochs", "val_loss", "val_accuracy"]
    assert len(lines) == 5 and lines[1].split()[:2] == ["0.5", "4"]


def test_grid_search_with_k_folds_and_random_search():
    ds = dataset(*blobs(n_per_class=10))
    rows = tn.train.grid_search(_build, ds, {"lr": [0.3]}, loss_fn=tn.nn.CrossEntropyLoss(),
                                k_folds=3, monitor="val_accuracy")
    assert len(rows) == 1 and rows[0]["folds"] == 3 and "val_accuracy_std" in rows[0]
    space = {"lr": lambda g: float(10 ** g.uniform((), "float64", -2, 0)),
             "batch_size": [8, 16], "epochs": [1]}
    first = tn.train.random_search(_build, ds, space, 3, loss_fn=tn.nn.CrossEntropyLoss(),
                                   seed=4)
    again = tn.train.random_search(_build, ds, space, 3, loss_fn=tn.nn.CrossEntropyLoss(),
                                   seed=4)
    assert [(r["lr"], r["batch_size"]) for r in first] == [(r["lr"], r["batch_size"])
                                                            for r in again]
    assert all(0.01 <= r["lr"] <= 1 and r["batch_size"] in (8, 16) for r in first)
    with pytest.raises(ValueError, match="either val_dataset or k_folds"):
        tn.train.grid_search(_build, ds, {"lr": [0.1]}, loss_fn=tn.nn.CrossEntropyLoss(),
                             val_dataset=ds, k_folds=2)


# --- docs/training.md: every ```python block runs -------------------------------------------------
DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "training.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL) if DOC.exists() \
    else []


def test_docs_training_has_snippets():
    assert len(SNIPPETS) >= 5


def test_docs_training_snippets_run(tmp_path, monkeypatch, capsys):
    """The blocks build on each other (one guide), so they run in order in one namespace."""
    monkeypatch.chdir(tmp_path)  # they write checkpoints, CSV files and plots
    namespace = {"__name__": "docs_training"}
    for i, code in enumerate(SNIPPETS):
        if "import matplotlib" in code or ".plot(" in code:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                continue
        exec(compile(code, f"docs/training.md block {i}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs").exists()
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert records and all(math.isfinite(r["loss"]) for r in records)
