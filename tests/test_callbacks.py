"""tn.train.callbacks: EarlyStopping, ModelCheckpoint, CSVLogger, JSONLogger, NaNGuard and
ProgressBar, driven by fit on small problems (monitored values scripted where the test needs a
known sequence)."""

import csv
import io
import json
import math
import os
import sys

import numpy as np
import pytest

import tinynet as tn
from tinynet.train import fit
from tinynet.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    ModelCheckpoint,
    NaNGuard,
    ProgressBar,
)


def problem(n=24, batch_size=8, seed=0):
    """A 2-class toy problem, a small model with dropout, its optimizer and loaders."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    data = tn.data.TensorDataset(tn.tensor(x), tn.tensor(y))
    tn.manual_seed(seed)
    model = tn.nn.Sequential(tn.nn.Linear(3, 8), tn.nn.Tanh(), tn.nn.Dropout(0.2),
                             tn.nn.Linear(8, 2))
    opt = tn.optim.SGD(model.parameters(), lr=0.2)
    train = tn.data.DataLoader(data, batch_size=batch_size, shuffle=True, seed=seed)
    val = tn.data.DataLoader(data, batch_size=n)
    return model, opt, train, val


def scripted(script):
    """A metric whose value in epoch e is script[e - 1] (train and validation alike), and the
    callback that advances it: a known sequence of monitored values for the callbacks."""
    current = {}

    def score(output, target):
        return tn.tensor(current["value"], dtype=tn.float64, device=output.device)

    class Advance(Callback):
        def on_epoch_begin(self, state):
            current["value"] = script[state.epoch - 1]

    return score, Advance()


class Snapshots(Callback):
    """The model's weights at the end of every epoch (host copies)."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, state):
        self.by_epoch[state.epoch] = {k: v.cpu().numpy().copy()
                                      for k, v in state.model.state_dict().items()}


def weights(model):
    return {k: v.cpu().numpy().copy() for k, v in model.state_dict().items()}


def run(callbacks, epochs, metrics=("accuracy",), device="cpu", batch_size=8, n=24, loss=None):
    model, opt, train, val = problem(n=n, batch_size=batch_size)
    history = fit(model, loss or tn.nn.CrossEntropyLoss(), opt, train, epochs, val_loader=val,
                  metrics=metrics, callbacks=callbacks, device=device, progress=False)
    return model, history


# --- EarlyStopping --------------------------------------------------------------------------------
@pytest.mark.parametrize("script, patience, min_delta, mode, stop_at, best_at", [
    # min: best 1.0 at epoch 4, two epochs without improvement -> stop after epoch 6
    ([3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.5, 0.4], 2, 0.0, "min", 6, 4),
    # nothing beats the best (1.0) by more than min_delta 0.15 until epoch 6: stop after epoch 4
    ([1.0, 0.9, 0.95, 0.88, 0.86, 0.7], 3, 0.15, "min", 4, 1),
    # max (auto: the name holds "acc"): best 0.9 at epoch 3
    ([0.5, 0.8, 0.9, 0.9, 0.85, 0.95], 2, 0.0, "auto", 5, 3),
    # patience 0: stop at the first epoch without improvement
    ([2.0, 1.0, 1.0, 0.5], 0, 0.0, "min", 3, 2),
])
def test_early_stopping_on_a_scripted_sequence(device, script, patience, min_delta, mode,
                                               stop_at, best_at):
    score, advance = scripted(script)
    name = "val_score_acc" if mode == "auto" else "val_score"
    score.__name__ = name[4:]
    snaps = Snapshots()
    stop = EarlyStopping(name, patience=patience, min_delta=min_delta, mode=mode,
                         restore_best_weights=True)
    model, history = run([advance, snaps, stop], len(script), metrics=(score,), device=device)
    assert len(history) == stop_at and history.stopped_epoch == stop_at == stop.stopped_epoch
    assert stop.best_epoch == best_at and stop.best == script[best_at - 1]
    assert f"early stopping at epoch {stop_at}" in history.stop_reason
    final = weights(model)
    for key, value in snaps.by_epoch[best_at].items():
        assert np.array_equal(final[key], value), key  # restored exactly
    if best_at != stop_at:
        assert not np.array_equal(final["0.weight"], snaps.by_epoch[stop_at]["0.weight"])


def test_early_stopping_without_restore_keeps_the_last_weights():
    score, advance = scripted([1.0, 2.0, 3.0, 4.0])
    snaps = Snapshots()
    stop = EarlyStopping("val_score", patience=1)
    model, history = run([advance, snaps, stop], 4, metrics=(score,))
    assert len(history) == 2
    final = weights(model)
    assert all(np.array_equal(final[k], v) for k, v in snaps.by_epoch[2].items())


def test_early_stopping_names_a_missing_monitor():
    with pytest.raises(KeyError, match="val_f1"):
        run([EarlyStopping("val_f1")], 2)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


# --- ModelCheckpoint -----------------------------------------------------------------------------
def test_model_checkpoint_best_and_last(tmp_path, device):
    script = [2.0, 1.0, 1.5, 0.5, 0.7]
    score, advance = scripted(script)
    ckpt = ModelCheckpoint(tmp_path / "run", monitor="val_score")
    seen = []

    class ReadBack(Callback):
        """After each checkpoint: the files load and hold this epoch's (or the best) state."""

        def on_epoch_end(self, state):
            last = tn.load(ckpt.last_path)
            seen.append((last["epoch"], tn.load(ckpt.best_path)["epoch"]))
            for k, v in state.model.state_dict().items():
                assert np.array_equal(last["model"][k].cpu().numpy(), v.cpu().numpy())
            assert last["optimizer"]["param_groups"] == state.optimizer.state_dict()[
                "param_groups"]
            assert last["train_loader"] == state.train_loader.state_dict()
            assert last["history"]["epochs"] == state.history.epochs

    snaps = Snapshots()
    run([advance, snaps, ckpt, ReadBack()], len(script), metrics=(score,), device=device)
    assert seen == [(1, 1), (2, 2), (3, 2), (4, 4), (5, 4)]
    assert sorted(os.listdir(tmp_path / "run")) == ["best.npz", "last.npz"]  # no temp files left
    best = tn.load(ckpt.best_path, map_location="cpu")
    assert best["epoch"] == 4 == ckpt.best_epoch
    for k, v in snaps.by_epoch[4].items():
        assert np.array_equal(best["model"][k].numpy(), v)
    assert best["rng"]["bit_generator"]["bit_generator"] == "PCG64"


def test_model_checkpoint_can_keep_only_one_file(tmp_path):
    run([ModelCheckpoint(tmp_path, monitor="val_loss", save_best=False)], 2)
    assert os.listdir(tmp_path) == ["last.npz"]


# --- CSVLogger / JSONLogger ----------------------------------------------------------------------
def test_csv_and_json_loggers_write_one_line_per_epoch(tmp_path):
    csv_path, json_path = tmp_path / "h.csv", tmp_path / "h.jsonl"
    _, history = run([CSVLogger(csv_path), JSONLogger(json_path)], 3)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0]) == history.keys()
    for row, record in zip(rows, history.epochs):
        assert {k: float(v) for k, v in row.items()} == pytest.approx(record, rel=0, abs=0)
    lines = json_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == history.epochs


def test_csv_logger_appends_for_a_resumed_run(tmp_path):
    path = tmp_path / "h.csv"
    run([CSVLogger(path)], 2)
    run([CSVLogger(path, append=True)], 1)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,loss,")


def test_json_logger_writes_strict_json_for_non_finite_values(tmp_path):
    path = tmp_path / "h.jsonl"
    score, advance = scripted([math.inf, math.nan])
    run([advance, JSONLogger(path)], 2, metrics=(score,))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["score"] for r in records] == ["inf", "nan"]


# --- NaNGuard ------------------------------------------------------------------------------------
class LossBreaksAt:
    """Cross-entropy that turns non-finite at one global batch (counted from 1)."""

    def __init__(self, at, value):
        self.at, self.value, self.calls = at, value, 0
        self.ce = tn.nn.CrossEntropyLoss()

    def __call__(self, output, target):
        loss = self.ce(output, target)
        if tn.is_grad_enabled():  # training batches only
            self.calls += 1
            if self.calls == self.at:
                loss = loss * self.value
        return loss


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # backward through inf
@pytest.mark.parametrize("value, word", [(math.nan, "nan"), (math.inf, "inf")])
def test_nan_guard_names_epoch_and_iteration(device, value, word):
    stream = io.StringIO()
    # 24 samples, batch 8: 3 iterations per epoch; batch 7 is epoch 3, iteration 1.
    loss = LossBreaksAt(7, value)
    _, history = run([NaNGuard(stream=stream)], 5, device=device, loss=loss)
    message = stream.getvalue().strip()
    assert message == history.stop_reason
    assert f"became {word} at epoch 3, iteration 1/3" in message
    # The CPU stops at once; a GPU (and the stand-in) at the guard's next read of its mark, the
    # epoch's last batch here. Either way epoch 3 is not recorded.
    assert len(history) == 2 and loss.calls == (7 if device == "cpu" else 9)
    if device != "cpu":
        assert "found at iteration 3" in message


def test_nan_guard_reads_its_mark_rarely_on_a_device():
    """On a device the guard adds one kernel per batch and reads every check_every batches; with
    check_every=1 it stops at the bad batch, as on the CPU."""
    for check_every, calls, guard_reads in ((50, 9, 3), (1, 7, 7)):
        loss = LossBreaksAt(7, math.nan)
        with tn.backend.count_calls() as counts:
            _, history = run([NaNGuard(stream=io.StringIO(), check_every=check_every)], 5,
                             device="standin", loss=loss)
        assert loss.calls == calls and "iteration 1/3" in history.stop_reason
        assert counts.calls["tinynet_first_nonfinite"] == calls
        # fit's own reads: the training sums and the validation sums of the 2 finished epochs
        assert counts.sync_calls["get"] == guard_reads + 2 * 2
    with pytest.raises(ValueError, match="check_every must be an integer >= 1"):
        NaNGuard(check_every=0)


def test_nan_guard_can_raise():
    with pytest.raises(FloatingPointError, match="epoch 1, iteration 2/3"):
        run([NaNGuard(raise_error=True)], 2, loss=LossBreaksAt(2, math.nan))


def test_nan_guard_stays_quiet_on_finite_losses():
    stream = io.StringIO()
    _, history = run([NaNGuard(stream=stream)], 2)
    assert stream.getvalue() == "" and len(history) == 2 and history.stop_reason is None


# --- ProgressBar ---------------------------------------------------------------------------------
def test_plain_progress_bar_on_a_file():
    stream = io.StringIO()  # not a terminal: one line per epoch
    _, history = run([ProgressBar(stream=stream, use_tqdm=False)], 2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {epoch}/2") and "iteration 3/3" in line
        assert f"loss {history.epochs[epoch - 1]['loss']:.4f}" in line
        assert "val_accuracy" in line and "samples/s" in line


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_progress_bar_redraws_on_a_terminal():
    stream = Terminal()
    run([ProgressBar(stream=stream, use_tqdm=False, min_interval=0.0)], 1)
    frames = stream.getvalue().split("\r")[1:]
    assert [f.split("iteration ")[1].split()[0] for f in frames[:3]] == ["1/3", "2/3", "3/3"]
    assert all("samples/s" in f and "loss" in f for f in frames)
    assert stream.getvalue().endswith("\n")


def test_progress_bar_that_does_not_leave_erases_itself_each_epoch():
    terminal, file = Terminal(), io.StringIO()
    run([ProgressBar(stream=terminal, use_tqdm=False, min_interval=0.0, leave=False)], 2)
    run([ProgressBar(stream=file, use_tqdm=False, leave=False)], 2)
    epochs = terminal.getvalue().split("\r\033[K")
    assert len(epochs) == 3 and epochs[-1] == ""  # erased after each of the 2 epochs
    assert "iteration 3/3" in epochs[0] and "val_accuracy" not in terminal.getvalue()
    assert file.getvalue() == ""  # a file gets no bar and no per-epoch summary


def test_tqdm_progress_bar():
    pytest.importorskip("tqdm", reason="tqdm is optional (the progress extra)")
    stream = io.StringIO()
    run([ProgressBar(stream=stream, use_tqdm=True)], 2)
    out = stream.getvalue()
    assert "epoch 1/2" in out and "epoch 2/2" in out and "3/3" in out and "loss" in out


def test_use_tqdm_true_without_tqdm_is_a_clear_error(monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "tqdm"] + ["tqdm"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if tqdm were not installed
    with pytest.raises(ImportError, match="tinynet\\[progress\\]"):
        ProgressBar(use_tqdm=True)
    stream = io.StringIO()
    run([ProgressBar(stream=stream)], 1)  # the default falls back to the plain bar
    assert "iteration 3/3" in stream.getvalue() and "%|" not in stream.getvalue()


# --- CallbackList: one fan-out for every event --------------------------------------------------

EVENTS = ("on_train_begin", "on_epoch_begin", "on_batch_begin", "on_batch_end", "on_epoch_end",
          "on_train_end")


class _Recorder(Callback):
    """Writes (its name, the event, the state it got) into a shared log for every event."""

    def __init__(self, name, log):
        self.name, self.log = name, log


for _event in EVENTS:
    setattr(_Recorder, _event,
            lambda self, state, _event=_event: self.log.append((self.name, _event, state)))


def test_callback_list_runs_every_event_on_every_callback_in_order():
    log = []
    callbacks = tn.train.callbacks.CallbackList([_Recorder("a", log), _Recorder("b", log)])
    state = object()
    for event in EVENTS:
        getattr(callbacks, event)(state)
    assert log == [(name, event, state) for event in EVENTS for name in ("a", "b")]
    assert set(EVENTS) <= set(vars(tn.train.callbacks.CallbackList))  # named in the class body


# --- a resumed run: the stop, the checkpoint files and the logs continue consistently -----------
EARLY = [3.0, 2.0, 2.5, 2.6, 1.0, 0.5]  # patience 2: best at epoch 2, stops at epoch 4


def _resume(tmp_path, callbacks, epochs, source=None):
    """A new process's view: fresh objects, restored from the run folder, then fit on."""
    model, opt, train, val = problem()
    start, history = tn.train.resume(source or tmp_path, model, opt, None, train)
    history = fit(model, tn.nn.CrossEntropyLoss(), opt, train, epochs, val_loader=val,
                  metrics=callbacks[0], callbacks=callbacks[1:], start_epoch=start,
                  history=history, progress=False)
    return start, model, history


@pytest.mark.parametrize("checkpoint_first", [True, False])
def test_a_run_that_stopped_early_trains_no_further_epoch_when_resumed(tmp_path,
                                                                       checkpoint_first):
    """As the Lightning feature request #8278 asks (Lightning restores the wait count but trains
    at least one more epoch; Keras keeps no state across fit calls): with the same rule, the stop
    is part of the saved run, whichever callback writes its checkpoint first."""
    score, advance = scripted(EARLY)
    ckpt, stop = ModelCheckpoint(tmp_path, monitor="val_score"), EarlyStopping("val_score", 2)
    order = [advance, ckpt, stop] if checkpoint_first else [advance, stop, ckpt]
    model, history = run(order, len(EARLY), metrics=(score,))
    assert len(history) == history.stopped_epoch == 4
    stopped = weights(model)

    score, advance = scripted(EARLY)
    stop = EarlyStopping("val_score", patience=2)
    start, model, resumed = _resume(tmp_path, [(score,), advance,
                                               ModelCheckpoint(tmp_path, monitor="val_score"),
                                               stop], len(EARLY))
    assert start == 4 and len(resumed) == 4  # epoch 5 would have improved, and run on
    assert resumed.stopped_epoch == stop.stopped_epoch == 4
    assert resumed.stop_reason == ("early stopping at epoch 4: val_score has not improved for 2 "
                                   "epochs (best 2 at epoch 2); the run had already stopped "
                                   "there, so no epoch was trained")
    assert all(np.array_equal(v, stopped[k]) for k, v in weights(model).items())
    assert tn.load(tmp_path / "last.npz")["epoch"] == 4

    score, advance = scripted(EARLY)  # a larger patience is another rule: it trains on
    _, _, longer = _resume(tmp_path, [(score,), advance, EarlyStopping("val_score", 3)],
                           len(EARLY))
    assert len(longer) == 6 and longer.stopped_epoch is None


class KilledAfter(BaseException):
    """What a kill looks like in-process: nothing catches it, no later write happens."""


def _kill_after_replacing(monkeypatch, name, count=1):
    """Make the ``count``-th replacement of a file called ``name`` the last thing the run does."""
    real = os.replace
    seen = []

    def replace(src, dst):
        real(src, dst)
        if os.path.basename(dst) == name:
            seen.append(dst)
            if len(seen) == count:
                raise KilledAfter(dst)

    monkeypatch.setattr(os, "replace", replace)


def _straight(tmp_path, script):
    score, advance = scripted(script)
    folder = tmp_path / "straight"
    model, history = run([advance, ModelCheckpoint(folder, monitor="val_score")], len(script),
                         metrics=(score,))
    return weights(model), history, tn.load(folder / "best.npz")


def test_killed_between_best_and_last_the_best_weights_survive_and_resume_continues(
        tmp_path, monkeypatch):
    script = [2.0, 1.0, 1.5, 0.5, 0.7]
    expected, straight, straight_best = _straight(tmp_path, script)
    folder = tmp_path / "run"
    score, advance = scripted(script)
    _kill_after_replacing(monkeypatch, "best.npz", count=3)  # epoch 4's best, before its last
    with pytest.raises(KilledAfter):
        run([advance, ModelCheckpoint(folder, monitor="val_score")], len(script),
            metrics=(score,))
    monkeypatch.undo()
    assert tn.load(folder / "best.npz")["epoch"] == 4 and tn.load(folder / "last.npz")[
        "epoch"] == 3
    assert tn.train.latest_checkpoint(folder) == str(folder / "best.npz")

    score, advance = scripted(script)
    with pytest.raises(RuntimeError, match=r"holds epoch 4, newer than the checkpoint this run "
                                           r"resumed from \(epoch 3\).*Resume from the folder"):
        _resume(folder, [(score,), advance, ModelCheckpoint(folder, monitor="val_score")],
                len(script), source=folder / "last.npz")
    score, advance = scripted(script)
    start, model, history = _resume(folder, [(score,), advance,
                                             ModelCheckpoint(folder, monitor="val_score")],
                                    len(script))
    assert start == 4
    assert all(np.array_equal(v, expected[k]) for k, v in weights(model).items())
    assert history.epochs == [{**r, "time": h["time"], "samples_per_s": h["samples_per_s"]}
                              for r, h in zip(straight.epochs, history.epochs)]
    best = tn.load(folder / "best.npz")
    assert best["epoch"] == straight_best["epoch"] == 4
    assert all(np.array_equal(v.numpy(), straight_best["model"][k].numpy())
               for k, v in best["model"].items())
    assert tn.load(folder / "last.npz")["epoch"] == 5


def test_a_resumed_run_repairs_a_lagging_file_before_training(tmp_path, monkeypatch):
    """A run killed after last.npz but before best.npz (the order of earlier versions): the
    resumed epoch is the best, so best.npz gets last.npz's copy; and the reverse."""
    script = [2.0, 1.0]
    folder = tmp_path / "run"
    score, advance = scripted(script)
    run([advance, ModelCheckpoint(folder, monitor="val_score")], 1, metrics=(score,))
    epoch_1 = (folder / "best.npz").read_bytes()
    score, advance = scripted(script)
    _resume(folder, [(score,), advance, ModelCheckpoint(folder, monitor="val_score")], 2)
    (folder / "best.npz").write_bytes(epoch_1)  # the lost write of epoch 2's best.npz
    score, advance = scripted(script)
    start, _, _ = _resume(folder, [(score,), advance,
                                   ModelCheckpoint(folder, monitor="val_score")], 2)
    assert start == 2 and tn.load(folder / "best.npz")["epoch"] == 2
    assert (folder / "best.npz").read_bytes() == (folder / "last.npz").read_bytes()
    (folder / "last.npz").write_bytes(epoch_1)  # the lost write of epoch 2's last.npz
    score, advance = scripted(script)
    _resume(folder, [(score,), advance, ModelCheckpoint(folder, monitor="val_score")], 2)
    assert tn.load(folder / "last.npz")["epoch"] == 2


@pytest.mark.parametrize("logger, suffix", [(CSVLogger, "csv"), (JSONLogger, "jsonl")])
def test_an_appending_logger_drops_a_cut_line_and_the_rows_to_be_trained_again(
        tmp_path, logger, suffix):
    path = tmp_path / f"history.{suffix}"
    folder = tmp_path / "run"
    run([ModelCheckpoint(folder, monitor="val_loss"), logger(path)], 2)
    with open(path, "a") as f:  # epoch 3 logged, then killed before its checkpoint and mid-line
        f.write(path.read_text().splitlines()[-1].replace("2", "3", 1) + "\n" + "3,0.5")
    _, _, history = _resume(folder, [("accuracy",), logger(path, append=True)], 4)
    lines = path.read_text().splitlines()
    epochs = ([int(r["epoch"]) for r in csv.DictReader(lines)] if suffix == "csv"
              else [json.loads(line)["epoch"] for line in lines])
    assert epochs == [1, 2, 3, 4] == [r["epoch"] for r in history.epochs]


def test_callback_arguments_are_checked():
    with pytest.raises(ValueError, match="ModelCheckpoint: dirpath: path is empty"):
        ModelCheckpoint("")
    with pytest.raises(ValueError, match="CSVLogger: path is empty"):
        CSVLogger("")
    for bad in (1.5, True, -1):
        with pytest.raises(ValueError, match="EarlyStopping: patience must be an integer >= 0"):
            EarlyStopping(patience=bad)
    with pytest.raises(ValueError, match="min_delta must be a finite number, got nan"):
        EarlyStopping(min_delta=math.nan)
    with pytest.raises(ValueError, match="monitor must be a history key"):
        ModelCheckpoint("runs", monitor=None)
