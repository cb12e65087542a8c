"""``fit`` and ``evaluate``: the training loop as the textbook writes it.

For each epoch: put the model in training mode, then for each batch of the (reshuffled) training
loader: forward, loss, backward, update. Then validate under ``no_grad`` in eval mode, step the
learning-rate schedule, and record the epoch in the :class:`~tinynet.train.history.History`.
Callbacks (``callbacks.py``) run around each epoch and each batch.

Nothing is read back from the device inside an epoch (on a GPU every read waits for the queued
work): the loss and the metrics go into running sums on the device (``_Totals``, a few small
kernels a batch) and are read once at the epoch's end, together with the flags of the device's
deferred index checks (a bad label raises there: ``backend/checks.py``).

In a data-parallel job (a ``tn.distributed`` process group of several ranks) the same loop runs on
every rank, and the logs are the job's: each batch's loss and the epoch's loss, metrics and
validation are averaged over all ranks' samples, so every callback sees the same values on every
rank and early stopping or a NaN guard decides alike; a stop on any rank stops all of them at the
same batch. Output callbacks (``rank_zero_only``: progress bar, loggers) run on rank 0 only; a
``DistributedSampler`` gets ``set_epoch`` at the start of each epoch.

Read next: ``callbacks.py``, then ``checkpoint.py``.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Iterable, Sequence

from ..autograd import no_grad
from ..backend import Device, float64, kernels, synchronize
from ..creation import tensor
from ..distributed.collectives import all_gather_object, all_reduce
from ..distributed.group import rank_and_size
from ..optim.plateau import ReduceLROnPlateau
from ..tensor import Tensor
from .callbacks import BatchLogs, Callback, CallbackList, ProgressBar, TrainingState
from .history import History
from .metrics import accumulate, get_metric, metric_name

__all__ = ["evaluate", "fit"]


def fit(model, loss_fn: Callable, optimizer, train_loader: Iterable, epochs: int,
        val_loader: Iterable | None = None, scheduler=None,
        metrics: Sequence[str | Callable] = ("accuracy",), callbacks: Sequence[Callback] = (),
        device=None, progress: bool = True, start_epoch: int = 0,
        history: History | None = None, step_per: str = "epoch",
        scheduler_monitor: str | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs and return what was measured.

    Args:
        model: a ``tn.nn.Module``.
        loss_fn: ``loss_fn(output, target) -> scalar Tensor``, the mean over the batch
            (``tn.nn.CrossEntropyLoss()``).
        optimizer: a ``tn.optim`` optimizer over the model's parameters.
        train_loader: yields ``(x, y)`` batches (a ``tn.data.DataLoader``), reshuffled per epoch.
        epochs: the epoch to train up to, counted from 1; with ``start_epoch=k`` the epochs
            ``k + 1 .. epochs`` run (so a resumed run passes the same ``epochs`` as the original).
        val_loader: batches to evaluate after every epoch (recorded as ``val_loss``,
            ``val_accuracy``, ...).
        scheduler: a ``tn.optim.lr_scheduler`` schedule. Stepped once per epoch, or after every
            optimizer step with ``step_per="iteration"``. A ``ReduceLROnPlateau`` is stepped per
            epoch with ``scheduler_monitor`` (default ``val_loss``, or ``loss`` with no
            validation loader).
        metrics: names (``"accuracy"``, ``"top5_accuracy"``) or functions
            ``metric(output, target) -> Tensor`` (batch mean).
        callbacks: :mod:`tinynet.train.callbacks` objects, run in this order.
        device: where to train: the model is moved there and every batch follows. ``None``:
            where the model's parameters already are.
        progress: add a :class:`ProgressBar` unless ``callbacks`` already has one (on rank 0).
        start_epoch: epochs already done (from :func:`tinynet.train.resume`). A callback that
            stops the run in ``on_train_begin`` (``EarlyStopping`` on a run that had already
            stopped) makes ``fit`` train no epoch.
        history: the history to extend (from ``resume``); a new one by default.
        step_per: ``"epoch"`` or ``"iteration"``: when the scheduler steps.
        scheduler_monitor: the history key a ``ReduceLROnPlateau`` watches.

    Threads: ``fit`` leaves the process's BLAS thread count alone (OpenBLAS starts one thread
    per CPU). For small models (the digits MLP and CNN of ``tinynet train``) one thread is about
    as fast on an idle machine and does not collapse when other processes keep the CPU busy,
    where waiting BLAS threads made ``tinynet train`` several times slower; so call
    ``tn.backend.set_blas_threads(1)`` once before ``fit`` (or start Python with
    ``OMP_NUM_THREADS=1``), as ``tinynet train`` does unless ``--threads`` says otherwise.
    Measurements: docs/training.md, section 10.

    Returns:
        The :class:`History`, one record per epoch (``history.stop_reason`` says why a callback
        ended the run early). With several ranks the records are the job's (averaged over all
        ranks' samples; ``samples_per_s`` counts all ranks) and the same on every rank.

    Example:
        >>> history = tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, train_loader,
        ...                        epochs=10, val_loader=val_loader)
        >>> history.best("val_accuracy")["epoch"]
    """
    if step_per not in ("epoch", "iteration"):
        raise ValueError(f"step_per must be 'epoch' or 'iteration', got {step_per!r}")
    if isinstance(scheduler, ReduceLROnPlateau) and step_per == "iteration":
        raise ValueError("ReduceLROnPlateau watches a per-epoch metric: use step_per='epoch'")
    for name, value in (("epochs", epochs), ("start_epoch", start_epoch)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"fit: {name} must be an integer >= 0, got {value!r}")
    if epochs < start_epoch:
        raise ValueError(f"epochs ({epochs}) is the epoch to train up to and must be >= "
                         f"start_epoch ({start_epoch})")
    device = _training_device(model, device)
    metric_fns = {metric_name(m): get_metric(m) for m in metrics}
    rank, _ = rank_and_size()
    callbacks = [c for c in callbacks if rank == 0 or not getattr(c, "rank_zero_only", False)]
    if progress and rank == 0 and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(ProgressBar())
    events = CallbackList(callbacks)
    state = TrainingState(model=model, optimizer=optimizer, train_loader=train_loader,
                          history=history if history is not None else History(), epochs=epochs,
                          scheduler=scheduler, val_loader=val_loader, start_epoch=start_epoch,
                          epoch=start_epoch, num_batches=_length(train_loader))
    if scheduler_monitor is None:
        scheduler_monitor = "val_loss" if val_loader is not None else "loss"

    events.on_train_begin(state)
    if not state.stop_training and start_epoch < epochs:
        # A resumed run that trains on: an earlier stop no longer says how the run ended.
        state.history.stopped_epoch = state.history.stop_reason = None
    for epoch in range(start_epoch + 1, epochs + 1):
        # A callback ended the run: at an epoch's end, or before the first one (a resumed run
        # that had already stopped early).
        if state.stop_training:
            break
        state.epoch = epoch
        _set_sampler_epoch(train_loader, epoch - 1)  # samplers count epochs from 0
        epoch_start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch starts with
        events.on_epoch_begin(state)

        trained = _train_one_epoch(state, loss_fn, metric_fns, device, events, step_per)
        if trained is None:
            break  # a callback stopped the run mid-epoch (NaNGuard): nothing to validate
        train_logs, samples_per_s = trained
        record = {"epoch": epoch, **train_logs}
        if val_loader is not None:
            val_logs = evaluate(model, val_loader, loss_fn, metrics)  # on the model's device
            record.update({f"val_{name}": value for name, value in val_logs.items()})
        record.update(lr=lr, time=time.perf_counter() - epoch_start,
                      samples_per_s=samples_per_s)

        if scheduler is not None and step_per == "epoch":
            if isinstance(scheduler, ReduceLROnPlateau):
                if scheduler_monitor not in record:
                    raise KeyError(f"ReduceLROnPlateau watches {scheduler_monitor!r}, which this "
                                   f"run does not record (it has {', '.join(record)}); set "
                                   "scheduler_monitor")
                scheduler.step(record[scheduler_monitor])
            else:
                scheduler.step()
        state.history.append(record)
        state.logs = record
        events.on_epoch_end(state)
        _agree_to_stop(state)  # with several ranks: one rank's stop stops them all
    if state.stop_reason and state.history.stop_reason is None:
        state.history.stop_reason = state.stop_reason
    events.on_train_end(state)
    return state.history


def _train_one_epoch(state: TrainingState, loss_fn: Callable, metric_fns: dict, device: Device,
                     events: Callback, step_per: str) -> tuple[dict, float] | None:
    """One pass over the training loader: ``({"loss", metrics...}, samples per second)``, or
    ``None`` when a callback stopped the run during the epoch."""
    model, optimizer, scheduler = state.model, state.optimizer, state.scheduler
    _, world = rank_and_size()
    model.train()
    totals = state.running = _Totals(metric_fns)
    start = time.perf_counter()
    state.iteration = 0
    for batch in state.train_loader:
        state.iteration += 1
        x, y = _unpack(batch, device)
        events.on_batch_begin(state)

        optimizer.zero_grad()
        output = model(x)              # forward
        loss = loss_fn(output, y)      # loss
        loss.backward()                # backward
        optimizer.step()               # update
        if scheduler is not None and step_per == "iteration":
            scheduler.step()

        # The loss and the metrics are added to running sums on the device and read once per
        # epoch: reading a value here (loss.item()) would make the host wait for this batch's
        # work every step on a GPU. batch_logs holds the batch loss unread; a callback that
        # wants it reads it (the progress bar reads the running mean every 50 batches instead).
        totals.add(loss, output, y)
        batch_size = int(y.shape[0])
        if world > 1:  # the job's batch: the mean loss over every rank's samples (a read a step)
            loss_sum, batch_size = _sum_over_ranks([_to_float(loss) * batch_size, batch_size])
            state.batch_logs = BatchLogs(loss_sum / batch_size, int(batch_size))
        else:
            state.batch_logs = BatchLogs(_detached_loss(loss), batch_size)
        events.on_batch_end(state)
        _agree_to_stop(state)
        if state.stop_training:
            return None
    if totals.count == 0:
        raise ValueError("the training loader yielded no batches")
    synchronize(device)  # before reading the clock
    seconds = time.perf_counter() - start
    means, count = totals.means(world > 1)
    return means, count / seconds


def evaluate(model, loader: Iterable, loss_fn: Callable | None = None,
             metrics: Sequence[str | Callable] = ("accuracy",), device=None,
             sync: bool | None = None) -> dict[str, float]:
    """The model's mean loss and metrics over a loader, in eval mode and without a graph.

    Every sample counts once (batch values are weighted by batch size). The loss and metrics are
    summed on the device and read back once at the end. The model's train/eval mode is restored
    afterwards.

    Args:
        model, loss_fn, metrics, device: as for :func:`fit` (``loss_fn=None``: metrics only).
        loader: yields ``(x, y)`` batches.
        sync: average over the samples of every rank's loader (each rank passing its shard);
            every rank must then call ``evaluate``. Default: when a process group of more than
            one rank exists. ``sync=False``: this rank's loader alone.

    Returns:
        ``{"loss": ..., "accuracy": ...}`` (Python floats).

    Example:
        >>> tn.train.evaluate(model, test_loader, tn.nn.CrossEntropyLoss())
        {'loss': 0.093, 'accuracy': 0.972}
    """
    device = _training_device(model, device)
    if sync is None:
        sync = rank_and_size()[1] > 1
    metric_fns = {metric_name(m): get_metric(m) for m in metrics}
    totals = _Totals(metric_fns, with_loss=loss_fn is not None)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for batch in loader:
                x, y = _unpack(batch, device)
                output = model(x)
                totals.add(loss_fn(output, y) if loss_fn is not None else None, output, y)
    finally:
        model.train(was_training)
    means, count = totals.means(sync)
    if count == 0:
        raise ValueError("the loader yielded no batches" + (" on any rank" if sync else ""))
    return means


class _Totals:
    """Sums of batch values weighted by batch size. On the device they are one float64 array
    (the loss in slot 0, then each metric), added to by small kernels and read back once, by
    :meth:`means`; values a loss function returns as plain numbers are summed on the host."""

    def __init__(self, metric_fns: dict, with_loss: bool = True):
        self.metric_fns = metric_fns
        self.with_loss = with_loss
        self.names = (["loss"] if with_loss else []) + list(metric_fns)
        self.count = 0
        self.device: Device | None = None
        self.sums = None  # (len(names),) float64 on the device, made by the first batch
        self.host = [0.0] * len(self.names)

    def add(self, loss, output, target) -> None:
        n = target.shape[0]
        self.count += n
        if self.sums is None:
            self.device = output.device
            self.sums = self.device.xp.zeros(len(self.names), dtype=float64)
        slot = 0
        if self.with_loss:
            if isinstance(loss, Tensor):
                kernels.ACCUMULATE(self.device.xp, loss.data, float(n), 0, self.sums)
            else:
                self.host[0] += float(loss) * n
            slot = 1
        for i, fn in enumerate(self.metric_fns.values()):
            accumulate(fn, output, target, self.sums, slot + i)

    def means(self, over_ranks: bool = False) -> tuple[dict[str, float], float]:
        """``({name: mean}, samples)`` (one read of the device sums); with ``over_ranks``, of all
        ranks' samples together."""
        values = list(self.host)
        if self.sums is not None:
            (sums,) = self.device.read_arrays(self.sums)
            values = [h + float(v) for h, v in zip(values, sums)]
        values.append(float(self.count))
        if over_ranks:
            values = _sum_over_ranks(values)
        count = values[-1]
        return {name: v / count for name, v in zip(self.names, values)} if count else {}, count


def _detached_loss(loss):
    """The batch loss for ``batch_logs``: the tensor outside the graph (read on demand)."""
    return loss.detach() if isinstance(loss, Tensor) else float(loss)


def _to_float(value) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)


def _sum_over_ranks(values: list) -> list:
    """Host numbers summed over all ranks (one all-reduce of a small float64 array)."""
    t = tensor(values, dtype=float64, device="cpu")
    all_reduce(t, "sum")
    return t.numpy().tolist()


def _agree_to_stop(state: TrainingState) -> None:
    """With several ranks: if a callback stopped the run on any rank, stop it on all of them
    (with that rank's reason), so that none waits for the others in a collective."""
    if rank_and_size()[1] == 1:
        return
    (stopping,) = _sum_over_ranks([1.0 if state.stop_training else 0.0])
    if stopping:  # the same on every rank, so all of them take part in the gather
        reasons = all_gather_object(state.stop_reason)
        state.stop_training = True
        state.stop_reason = state.stop_reason or next((r for r in reasons if r), None)


def _set_sampler_epoch(loader, epoch: int) -> None:
    """``loader.sampler.set_epoch(epoch)`` when the loader's sampler has one (DistributedSampler):
    a new shuffle each epoch, the same on every rank."""
    set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)


def _unpack(batch, device: Device):
    """``(x, y)`` from a batch, on the training device (``.to`` is free when already there)."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        got = f"{len(batch)} items" if isinstance(batch, (tuple, list)) else type(batch).__name__
        raise ValueError(f"fit and evaluate expect (inputs, targets) batches, got {got}")
    x, y = batch
    return x.to(device), y.to(device)


def _training_device(model, device) -> Device:
    """Move the model to ``device`` if one is given; else the device its parameters are on."""
    if device is not None:
        model.to(device)
        return Device(device)
    for p in model.parameters():
        return p.device
    return Device("cpu")


def _length(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
