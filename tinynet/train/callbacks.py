"""Callbacks: code that ``fit`` runs around each epoch and each batch.

``fit`` calls, in this order: ``on_train_begin`` -> for each epoch ``on_epoch_begin`` -> for each
batch ``on_batch_begin`` / ``on_batch_end`` -> ``on_epoch_end`` (after validation and the
per-epoch scheduler step) -> ``on_train_end``. Every event receives the :class:`TrainingState`:
the model, optimizer, scheduler, loaders and history, the current epoch and iteration (both
counted from 1), ``batch_logs`` (``{"loss", "batch_size"}``, the loss read on demand: see
:class:`BatchLogs`) after a batch, ``running`` (the epoch's running loss and metrics on the device:
``state.running.means()`` reads them, one sync) and ``logs`` (the epoch's history record) at the
end of an epoch. On a GPU every read of a value waits for the device, so a callback that runs per
batch should read rarely (the progress bar every 50 batches, NaNGuard every 50 on a GPU). A callback stops the run by setting
``state.stop_training = True`` (and ``state.stop_reason``): at the end of an epoch the run ends
there; during an epoch it ends at once, without validating that epoch; in ``on_train_begin`` (a
resumed run that had already stopped) no epoch runs at all.

Read next: ``checkpoint.py`` (what ``ModelCheckpoint`` writes and ``resume`` reads).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from .. import atomic, serialization
from ..autograd import no_grad
from ..distributed.group import rank_and_size
from ..backend import device_of as tensor_device
from ..backend import kernels
from ..ops import clone
from .checkpoint import BEST, LAST, checkpoint_epoch, checkpoint_state
from .history import History, default_mode

__all__ = [
    "BatchLogs", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "JSONLogger",
    "ModelCheckpoint", "NaNGuard", "ProgressBar", "TrainingState",
]


class BatchLogs(Mapping):
    """``state.batch_logs``: ``{"loss": ..., "batch_size": ...}`` of the batch just trained.

    The loss stays where it was computed until a callback reads ``logs["loss"]`` (a Python float;
    on a GPU the read makes the host wait for the batch: one sync), so ``fit`` itself reads
    nothing per batch. ``logs.tensor("loss")`` gives the value unread, as a 0-d tensor.
    """

    __slots__ = ("_loss", "_value", "_batch_size")

    def __init__(self, loss, batch_size: int):
        self._loss, self._batch_size = loss, batch_size
        self._value = loss if isinstance(loss, float) else None

    def __getitem__(self, key: str):
        if key == "batch_size":
            return self._batch_size
        if key != "loss":
            raise KeyError(key)
        if self._value is None:
            self._value = float(self._loss.item())
        return self._value

    def tensor(self, key: str = "loss"):
        """The batch loss as it was computed (a 0-d tensor on the training device), unread."""
        if key != "loss":
            raise KeyError(key)
        return self._loss

    def __iter__(self):
        return iter(("loss", "batch_size"))

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        loss = "<unread>" if self._value is None else repr(self._value)
        return f"BatchLogs(loss={loss}, batch_size={self._batch_size})"


@dataclass
class TrainingState:
    """What ``fit`` shares with callbacks (read freely; write ``stop_training``/``stop_reason``)."""

    model: Any
    optimizer: Any
    train_loader: Any
    history: History
    epochs: int  # the epoch the run ends at (epochs are counted from 1)
    scheduler: Any = None
    val_loader: Any = None
    start_epoch: int = 0  # epochs already done before this call (a resumed run)
    num_batches: int | None = None  # len(train_loader), when it has a length
    epoch: int = 0
    iteration: int = 0
    batch_logs: Mapping[str, Any] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)
    stop_training: bool = False
    stop_reason: str | None = None
    running: Any = None  # the epoch's running sums; running.means() reads them (one sync)


class Callback:
    """Base class: override the events you need (each receives the :class:`TrainingState`).

    In a data-parallel run (``tn.distributed``) ``fit`` runs every callback on every rank (all
    see the same, globally averaged logs, so they decide alike), except those whose
    ``rank_zero_only`` is True (output: progress bar, loggers), which run on rank 0 alone.
    """

    rank_zero_only = False

    def on_train_begin(self, state: TrainingState) -> None: ...
    def on_train_end(self, state: TrainingState) -> None: ...
    def on_epoch_begin(self, state: TrainingState) -> None: ...
    def on_epoch_end(self, state: TrainingState) -> None: ...
    def on_batch_begin(self, state: TrainingState) -> None: ...
    def on_batch_end(self, state: TrainingState) -> None: ...


class _FanOut:
    """A :class:`CallbackList` event: ``callbacks.on_epoch_end(state)`` runs ``on_epoch_end`` on
    every callback (the attribute's own name is the event)."""

    def __set_name__(self, owner, name: str) -> None:
        self.event = name

    def __get__(self, callbacks, owner=None):
        if callbacks is None:
            return self
        return functools.partial(callbacks.call, self.event)


class CallbackList(Callback):
    """Runs each event on every callback, in the order given; every event goes through one
    fan-out, :meth:`call`."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)

    def call(self, event: str, state: TrainingState) -> None:
        """Run ``event`` (``"on_epoch_end"``, ...) on every callback, in order."""
        for c in self.callbacks:
            getattr(c, event)(state)

    on_train_begin = _FanOut()
    on_train_end = _FanOut()
    on_epoch_begin = _FanOut()
    on_epoch_end = _FanOut()
    on_batch_begin = _FanOut()
    on_batch_end = _FanOut()


class _Monitor:
    """Tracks the best value of one history key (shared by EarlyStopping and ModelCheckpoint)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a history key such as 'val_loss', got {monitor!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not math.isfinite(min_delta):
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        self.monitor = monitor
        self.mode = default_mode(monitor) if mode == "auto" else mode
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.min_delta = abs(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def value(self, logs: dict, owner: str) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{owner} monitors {self.monitor!r}, which this run does not record "
                           f"(it has {', '.join(logs)}); pass a val_loader to fit or choose "
                           "another monitor, e.g. monitor='loss'")
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a history key (``"val_loss"``, ``"val_accuracy"``, ``"loss"``, ...).
        patience: epochs without improvement tolerated; the run stops after the last of them.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (``"max"`` for accuracies, else ``"min"``).
        restore_best_weights: at the end of training, load the weights of the best epoch.

    After a resume the best value and the count of epochs without improvement are rebuilt from
    the history (best weights are only known for epochs run since). So the stop itself is part of
    the saved run: a run that stopped at epoch 3 and is resumed with the same rule trains no
    epoch; ``fit`` returns at once with ``history.stop_reason`` saying it had already stopped, and
    why. A larger ``patience`` (or no EarlyStopping) trains on.

    Example:
        >>> stop = EarlyStopping("val_loss", patience=5, restore_best_weights=True)
        >>> history = fit(..., callbacks=[stop]); history.stopped_epoch
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        self._tracker = _Monitor(monitor, mode, min_delta)
        self.monitor, self.mode = monitor, self._tracker.mode
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict | None = None

    @property
    def best(self) -> float:
        return self._tracker.best

    @property
    def best_epoch(self) -> int | None:
        return self._tracker.best_epoch

    def on_train_begin(self, state):
        self._tracker.reset()
        self.wait, self.stopped_epoch, self.best_weights = 0, None, None
        last = None  # the last recorded epoch with a value, and whether it improved
        for record in state.history.epochs:  # a resumed run continues the count
            if self.monitor in record:
                last = record["epoch"], self._update(float(record[self.monitor]), record["epoch"])
        if last is not None and not last[1] and self.wait >= self.patience:
            # This rule stopped the run at that epoch (the checkpoint was written before or after
            # the decision; either way it is the history's): training on would ignore it.
            self._stop(state, last[0])
            state.stop_reason += "; the run had already stopped there, so no epoch was trained"

    def _update(self, value: float, epoch: int) -> bool:
        if self._tracker.improved(value):
            self._tracker.best, self._tracker.best_epoch = value, epoch
            self.wait = 0
            return True
        self.wait += 1
        return False

    def _stop(self, state, epoch: int) -> None:
        self.stopped_epoch = epoch
        state.history.stopped_epoch = epoch
        state.stop_training = True
        state.stop_reason = (f"early stopping at epoch {epoch}: {self.monitor} has not improved "
                             f"for {self.wait} epoch{'s' if self.wait != 1 else ''} (best "
                             f"{self.best:.6g} at epoch "
                             f"{self.best_epoch})")

    def on_epoch_end(self, state):
        value = self._tracker.value(state.logs, "EarlyStopping")
        if self._update(value, state.epoch):
            if self.restore_best_weights:
                with no_grad():  # copies: the live tensors keep changing
                    self.best_weights = {k: clone(v)
                                         for k, v in state.model.state_dict().items()}
        elif self.wait >= self.patience and not state.stop_training:
            self._stop(state, state.epoch)

    def on_train_end(self, state):
        if self.restore_best_weights and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save training checkpoints: ``last.npz`` after every epoch, ``best.npz`` when ``monitor``
    improves. Each holds everything :func:`tinynet.train.resume` needs (model, optimizer,
    scheduler, train-loader and RNG states, history, epoch); writes are atomic (``tn.save``).

    The order of the writes keeps the best weights safe at every instant: when an epoch improves,
    ``best.npz`` is written before ``last.npz``, so a process killed between the two leaves
    ``best.npz`` one epoch ahead of ``last.npz`` (resume from the folder: it picks the newer),
    never the best weights lost. A resumed run repairs that state before training on (it copies
    the newer file over the older), and refuses to continue from an older checkpoint than the
    folder's ``best.npz`` (which training on would overwrite).

    Args:
        dirpath: the folder (created if missing).
        monitor, mode: what "best" means (see :class:`EarlyStopping`).
        save_best, save_last: which files to keep.

    In a data-parallel run it runs on every rank (the checkpoint holds each rank's random
    streams, gathered from all of them) and rank 0 alone writes.

    Example:
        >>> ckpt = ModelCheckpoint("runs/1")
        >>> fit(..., callbacks=[ckpt]); start, history = resume("runs/1", model, opt)
    """

    def __init__(self, dirpath: str | os.PathLike, monitor: str = "val_loss", mode: str = "auto",
                 save_best: bool = True, save_last: bool = True):
        self.dirpath = atomic.checked_path(dirpath, "ModelCheckpoint: dirpath")
        self._tracker = _Monitor(monitor, mode)
        self.monitor = monitor
        self.save_best, self.save_last = save_best, save_last
        self.best_path = os.path.join(self.dirpath, BEST)
        self.last_path = os.path.join(self.dirpath, LAST)

    @property
    def best_epoch(self) -> int | None:
        return self._tracker.best_epoch

    def on_train_begin(self, state):
        if rank_and_size()[0] == 0:
            os.makedirs(self.dirpath, exist_ok=True)
        self._tracker.reset()
        for record in state.history.epochs:  # a resumed run keeps its best so far
            if self.monitor in record and self._tracker.improved(float(record[self.monitor])):
                self._tracker.best = float(record[self.monitor])
                self._tracker.best_epoch = record["epoch"]
        if state.start_epoch > 0 and rank_and_size()[0] == 0:  # the writer repairs the folder
            self._reconcile(state.start_epoch)

    def _reconcile(self, start: int) -> None:
        """Bring the folder in line with the resumed run (at epoch ``start``) before training."""
        best = checkpoint_epoch(self.best_path) if os.path.isfile(self.best_path) else None
        last = checkpoint_epoch(self.last_path) if os.path.isfile(self.last_path) else None
        if self.save_best and best is not None and best > start:
            raise RuntimeError(
                f"ModelCheckpoint: {self.best_path} holds epoch {best}, newer than the checkpoint "
                f"this run resumed from (epoch {start}): the run was stopped between writing "
                f"{BEST} and {LAST}. Resume from the folder (resume({self.dirpath!r}, ...)), "
                f"which continues from the newer file, or move {BEST} away to discard it")
        if self._tracker.best_epoch != start:
            return  # the best epoch is an earlier one: best.npz already holds it
        # The resumed epoch is the best so far, so both files must hold it: one may lag after a
        # kill between the two writes (last.npz, from versions that wrote it first, or best.npz).
        if self.save_best and best != start and last == start:
            atomic.copy_file(self.last_path, self.best_path, "ModelCheckpoint")
        elif self.save_last and last != start and best == start:
            atomic.copy_file(self.best_path, self.last_path, "ModelCheckpoint")

    def on_epoch_end(self, state):
        improved = False
        if self.save_best:
            value = self._tracker.value(state.logs, "ModelCheckpoint")
            improved = self._tracker.improved(value)
            if improved:
                self._tracker.best, self._tracker.best_epoch = value, state.epoch
        if not (self.save_last or improved):
            return
        ckpt = checkpoint_state(state)  # on every rank: a multi-rank one gathers their streams
        if rank_and_size()[0] != 0:
            return  # one writer
        if improved:  # first: a kill before the second write still has the best weights
            serialization.save(ckpt, self.best_path)
        if self.save_last:
            serialization.save(ckpt, self.last_path)


class _LineLogger(Callback):
    """Opens ``path`` at the start of training and writes one line per epoch, flushed.

    Appending to a resumed run's file first drops what a crash can leave there: a last line cut
    short, and the rows of epochs after the checkpoint resumed from (logged, then killed before
    the checkpoint was written: that epoch is trained again), so each epoch has one row.
    """

    rank_zero_only = True

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = atomic.checked_path(path, type(self).__name__)
        self.append = append
        self._file: TextIO | None = None

    def on_train_begin(self, state):
        if self.append:
            self._trim(state.start_epoch)
        # Kept open across epochs (closed in on_train_end): a line is flushed per epoch.
        self._file = open(self.path, "a" if self.append else "w", newline="",  # noqa: SIM115
                          encoding="utf-8")

    def on_epoch_end(self, state):
        self._file.write(self._line(state.logs))
        self._file.flush()

    def on_train_end(self, state):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _trim(self, start: int) -> None:
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                lines = f.readlines()
        except FileNotFoundError:
            return
        keep = lines[:-1] if lines and not lines[-1].endswith("\n") else list(lines)
        while start > 0 and len(keep) > 1 and (self._epoch(keep[-1], keep[0]) or 0) > start:
            keep.pop()
        if keep != lines:
            atomic.write_bytes(self.path, "".join(keep).encode("utf-8"), type(self).__name__)

    def _line(self, logs: dict) -> str:
        raise NotImplementedError

    def _epoch(self, line: str, first: str) -> int | None:
        """The epoch a written line records (``first``: the file's first line), if it has one."""
        raise NotImplementedError


class CSVLogger(_LineLogger):
    """Write the history as CSV, one row per epoch, as training goes (header first).

    Args:
        path: the file.
        append: add to an existing file (a resumed run) instead of starting a new one.
    """

    def on_train_begin(self, state):
        super().on_train_begin(state)
        self._columns: list[str] | None = None
        if self.append and os.path.getsize(self.path) > 0:
            with open(self.path, newline="", encoding="utf-8") as f:
                self._columns = f.readline().strip().split(",")

    def _line(self, logs: dict) -> str:
        header = ""
        if self._columns is None:
            self._columns = list(logs)
            header = ",".join(self._columns) + "\n"
        return header + ",".join(_csv_value(logs.get(k)) for k in self._columns) + "\n"

    def _epoch(self, line: str, first: str) -> int | None:
        columns = first.strip().split(",")
        values = line.strip().split(",")
        if line is first or "epoch" not in columns or len(values) != len(columns):
            return None
        value = values[columns.index("epoch")]
        return int(value) if value.isdigit() else None


def _csv_value(value) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


class JSONLogger(_LineLogger):
    """Write the history as JSON lines: one object per epoch (non-finite numbers as
    ``"nan"``/``"inf"``/``"-inf"`` strings, so every line is strict JSON)."""

    def _line(self, logs: dict) -> str:
        clean = {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in logs.items()}
        return json.dumps(clean) + "\n"

    def _epoch(self, line: str, first: str) -> int | None:
        try:
            epoch = json.loads(line).get("epoch")
        except (ValueError, AttributeError):
            return None
        return epoch if type(epoch) is int else None


class NaNGuard(Callback):
    """Stop training once a batch's loss is NaN or infinite, naming the epoch and iteration.

    On the CPU every batch's loss is looked at (reading it is free), so the run stops at the
    batch that went bad. On a GPU reading a value every batch would stall the device, so the guard
    marks the first non-finite loss on the device (one small kernel per batch) and reads the mark
    every ``check_every`` batches and at the epoch's last batch: the run stops there, and the
    message still names the batch that went bad. The message goes to ``stream`` (standard error)
    and into ``history.stop_reason``; the epoch is not validated or recorded. The optimizer steps
    up to the stop have been taken, so the weights may hold NaN: reload a checkpoint to continue.

    Args:
        raise_error: raise ``FloatingPointError`` instead of stopping quietly.
        stream: where to write the message (``None``: ``sys.stderr``).
        check_every: on a GPU, batches between two reads of the mark (1: every batch, as on the
            CPU, at the cost of one sync per batch).
    """

    def __init__(self, raise_error: bool = False, stream: TextIO | None = None,
                 check_every: int = 50):
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"NaNGuard: check_every must be an integer >= 1, got {check_every!r}")
        self.raise_error = raise_error
        self.stream = stream
        self.check_every = check_every
        self._mark = None  # on a GPU: [first bad iteration or -1, its loss], on the device
        self._read_at = 0  # the iteration of the last read of the mark

    def on_epoch_begin(self, state):
        self._mark, self._read_at = None, 0

    def on_batch_end(self, state):
        logs = state.batch_logs
        loss = logs.tensor("loss") if isinstance(logs, BatchLogs) else None
        if loss is None or isinstance(loss, float) or loss.device.type == "cpu":
            value = logs["loss"]  # on the host already, or free to read
            if not math.isfinite(value):
                self._stop(state, value, state.iteration)
            return
        xp = loss.device.xp
        if self._mark is None:
            self._mark = xp.asarray([-1.0, 0.0])
        kernels.FIRST_NONFINITE(xp, loss.data, state.iteration, self._mark)
        if state.iteration % self.check_every == 0 or state.iteration == state.num_batches:
            self._check(state)

    def on_epoch_end(self, state):
        if self._mark is not None and self._read_at != state.iteration:
            self._check(state)  # a loader without a length: its last batch is known now

    def _check(self, state) -> None:
        self._read_at = state.iteration
        (mark,) = tensor_device(self._mark).read_arrays(self._mark)
        if mark[0] >= 0:
            self._mark = None
            self._stop(state, float(mark[1]), int(mark[0]))

    def _stop(self, state, loss: float, iteration: int) -> None:
        of = f"/{state.num_batches}" if state.num_batches else ""
        late = "" if iteration == state.iteration else (
            f" (found at iteration {state.iteration}: on a GPU the guard reads every "
            f"{self.check_every} batches)")
        message = (f"NaNGuard: the loss became {loss} at epoch {state.epoch}, iteration "
                   f"{iteration}{of}{late}; training stopped")
        if self.raise_error:
            raise FloatingPointError(message)
        print(message, file=self.stream or sys.stderr)
        state.stop_training = True
        state.stop_reason = message
        state.history.stop_reason = message


class ProgressBar(Callback):
    """Show epoch i/N, iteration j/M, the running mean loss and samples per second.

    Uses tqdm when it is installed (``pip install "tinynet[progress]"``), else a plain text bar.
    The plain bar redraws one line with ``\\r`` on a terminal (at most every ``min_interval``
    seconds) and, on a file or pipe, writes one line per epoch. Either way each epoch ends with
    its summary (train and validation loss and metrics, time).

    The running loss is read from the device at the first batch and then every ``refresh_every``
    batches (each read waits for the device on a GPU); the iteration count moves every batch. On
    the CPU reading is free, and the loss is read at every batch.

    Args:
        stream: where to draw (``None``: ``sys.stderr``).
        use_tqdm: ``None`` (use tqdm when installed), ``True`` or ``False``.
        min_interval: the least time between two redraws of the plain bar, in seconds.
        leave: keep each finished epoch's bar and summary (``False``: erase the bar at the end of
            the epoch, for callers that print their own per-epoch line, like ``tinynet train``).
        refresh_every: batches between two reads of the running loss on a GPU (at least 50, so
            that the reads cost at most a few percent of a step's launches).
    """

    rank_zero_only = True

    def __init__(self, stream: TextIO | None = None, use_tqdm: bool | None = None,
                 min_interval: float = 0.1, leave: bool = True, refresh_every: int = 50):
        if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) \
                or refresh_every < 50:
            raise ValueError(f"ProgressBar: refresh_every must be an integer >= 50, got "
                             f"{refresh_every!r}")
        self.stream = stream
        self.min_interval = min_interval
        self.leave = leave
        self.refresh_every = refresh_every
        self._tqdm = _find_tqdm() if use_tqdm in (None, True) else None
        if use_tqdm and self._tqdm is None:
            raise ImportError('ProgressBar(use_tqdm=True) needs tqdm: pip install '
                              '"tinynet[progress]"')
        self._bar = None

    def on_epoch_begin(self, state):
        self._out = self.stream or sys.stderr
        self._seen = 0
        self._loss = None  # the running mean loss, as last read
        self._start = self._last_draw = time.perf_counter()
        self._prefix = f"epoch {state.epoch}/{state.epochs}"
        if self._tqdm is not None:
            self._bar = self._tqdm(total=state.num_batches, desc=self._prefix, file=self._out,
                                   leave=self.leave, unit="it", dynamic_ncols=True)

    def on_batch_end(self, state):
        self._seen += state.batch_logs["batch_size"]
        read = self._read_loss(state)
        stats = self._stats()
        if self._bar is not None:
            if read:
                self._bar.set_postfix_str(stats, refresh=False)
            self._bar.update(1)
            return
        now = time.perf_counter()
        last = state.iteration == state.num_batches
        if self._is_tty() and (now - self._last_draw >= self.min_interval or last):
            self._last_draw = now
            self._out.write(f"\r{self._line(state)}  {stats}")
            self._out.flush()

    def on_epoch_end(self, state):
        summary = _summary(state.logs)
        if self._bar is not None:
            self._bar.set_postfix_str(summary)
            self._bar.close()
            self._bar = None
            return
        if not self.leave:
            if self._is_tty():  # erase the bar: the caller prints the epoch its own way
                self._out.write("\r\033[K")
                self._out.flush()
            return
        self._out.write(("\r" if self._is_tty() else "") + f"{self._line(state)}  {summary}\n")
        self._out.flush()

    def on_train_end(self, state):
        if self._bar is not None:  # stopped mid-epoch
            self._bar.close()
            self._bar = None
        elif state.stop_training and state.iteration and self._is_tty():
            self._out.write("\n")

    def _read_loss(self, state) -> bool:
        """Read the epoch's running mean loss now if it is time (see ``refresh_every``)."""
        running = state.running
        if running is None:  # driven by something other than fit: the batch's own loss
            self._loss = state.batch_logs["loss"]
            return True
        device = getattr(running, "device", None)
        if (device is not None and device.type != "cpu" and state.iteration > 1
                and state.iteration % self.refresh_every):
            return False
        self._loss = running.means()[0].get("loss")
        return True

    def _stats(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        loss = "loss ..." if self._loss is None else f"loss {self._loss:.4f}"
        return f"{loss}  {self._seen / elapsed:,.0f} samples/s"

    def _line(self, state) -> str:
        total = state.num_batches
        if not total:
            return f"{self._prefix}  iteration {state.iteration}"
        filled = int(20 * state.iteration / total)
        return (f"{self._prefix}  [{'#' * filled}{'.' * (20 - filled)}]  iteration "
                f"{state.iteration}/{total}")

    def _is_tty(self) -> bool:
        return bool(getattr(self._out, "isatty", lambda: False)())


def _summary(logs: dict) -> str:
    skip = {"epoch", "lr"}
    parts = []
    for key, value in logs.items():
        if key in skip or not isinstance(value, (int, float)):
            continue
        if key == "time":
            parts.append(f"{value:.2f}s")
        elif key == "samples_per_s":
            parts.append(f"{value:,.0f} samples/s")
        else:
            parts.append(f"{key} {value:.4f}")
    return "  ".join(parts)


def _find_tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm
