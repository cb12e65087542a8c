"""A small hyper-parameter search over ``fit``: grid or random, with a hold-out set or k folds.

It answers the questions users ask first (how many epochs, which batch size, which learning
rate) by training once per setting (or once per fold) and reporting one row per setting, best
first. ``format_table`` prints the rows.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..backend import Generator, manual_seed
from .history import default_mode
from .loop import fit

__all__ = ["format_table", "grid_search", "random_search"]

DEFAULTS = {"epochs": 10, "batch_size": 32}


def grid_search(build: Callable, dataset, grid: Mapping[str, Sequence], *, loss_fn: Callable,
                val_dataset=None, k_folds: int | None = None, val_fraction: float = 0.2,
                metrics: Sequence = ("accuracy",), monitor: str = "val_loss", seed: int = 0,
                device=None) -> list[dict[str, Any]]:
    """Train once per combination of ``grid`` values and report how each did on held-out data.

    Args:
        build: ``build(params) -> (model, optimizer)`` or ``(model, optimizer, scheduler)``:
            makes fresh objects for one setting (``params`` holds every grid key, plus
            ``epochs`` and ``batch_size`` with their defaults 10 and 32 when not searched).
        dataset: the training data (a ``tn.data`` dataset).
        grid: ``{"lr": [0.1, 0.01], "batch_size": [16, 64], "epochs": [5, 20]}``.
        loss_fn: as for ``fit``.
        val_dataset: held-out data; default: a seeded ``val_fraction`` of ``dataset``.
        k_folds: cross-validate instead: ``k`` trainings per setting (``tn.data.KFold``), the
            row showing the mean over folds and the spread (``<monitor>_std``).
        metrics, device: as for ``fit``.
        monitor: the history key that ranks settings (``val_loss``, ``val_accuracy``, ...).
        seed: seeds the default random stream before each build (every setting starts from the
            same initial weights) and the splits and shuffles.

    Returns:
        One dict per setting, best first: the parameters, the final-epoch validation loss and
        metrics (fold means), ``best_epoch`` (where the mean ``monitor`` curve was best),
        ``folds`` and ``time`` (seconds).

    Example:
        >>> rows = grid_search(build, train_set, {"lr": [0.3, 0.1], "epochs": [5, 10]},
        ...                    loss_fn=tn.nn.CrossEntropyLoss())
        >>> print(format_table(rows))
    """
    names = list(grid)
    settings = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    return _run(build, dataset, settings, loss_fn, val_dataset, k_folds, val_fraction, metrics,
                monitor, seed, device)


def random_search(build: Callable, dataset, space: Mapping[str, Any], n_trials: int, *,
                  loss_fn: Callable, val_dataset=None, k_folds: int | None = None,
                  val_fraction: float = 0.2, metrics: Sequence = ("accuracy",),
                  monitor: str = "val_loss", seed: int = 0, device=None) -> list[dict[str, Any]]:
    """Like :func:`grid_search`, for ``n_trials`` settings drawn at random from ``space``.

    ``space`` maps a name to a list (one element is picked uniformly) or to a function
    ``draw(generator) -> value`` given a ``tn.Generator``: for a log-uniform learning rate,
    ``lambda g: 10 ** g.uniform((), "float64", -3, 0).item()``. The draws are seeded by ``seed``.
    """
    gen = Generator(seed)
    settings = []
    for _ in range(n_trials):
        params = {}
        for name, choices in space.items():
            if callable(choices):
                params[name] = choices(gen)
            else:
                params[name] = list(choices)[int(gen.integers(0, len(choices), ()))]
        settings.append(params)
    return _run(build, dataset, settings, loss_fn, val_dataset, k_folds, val_fraction, metrics,
                monitor, seed, device)


def _run(build, dataset, settings, loss_fn, val_dataset, k_folds, val_fraction, metrics,
         monitor, seed, device) -> list[dict[str, Any]]:
    from .. import data  # here: tinynet.data is imported after tinynet.train

    splits = _splits(data, dataset, val_dataset, k_folds, val_fraction, seed)
    rows = []
    for params in settings:
        full = {**params, **{k: v for k, v in DEFAULTS.items() if k not in params}}
        start = time.perf_counter()
        histories = []
        for train_set, val_set in splits:
            manual_seed(seed)
            built = build(full)
            model, optimizer = built[0], built[1]
            scheduler = built[2] if len(built) > 2 else None
            train_loader = data.DataLoader(train_set, batch_size=full["batch_size"], shuffle=True,
                                           seed=seed)
            val_loader = data.DataLoader(val_set, batch_size=max(full["batch_size"], 256))
            histories.append(fit(model, loss_fn, optimizer, train_loader, full["epochs"],
                                 val_loader=val_loader, scheduler=scheduler, metrics=metrics,
                                 progress=False, device=device))
        rows.append(_row(full, histories, monitor, time.perf_counter() - start))
    sign = 1 if default_mode(monitor) == "min" else -1
    rows.sort(key=lambda r: math.inf if math.isnan(r[monitor]) else sign * r[monitor])
    return rows


def _splits(data, dataset, val_dataset, k_folds, val_fraction, seed) -> list[tuple]:
    """(train, validation) dataset pairs: one hold-out pair, or one pair per fold."""
    if val_dataset is not None and k_folds is not None:
        raise ValueError("give either val_dataset or k_folds, not both")
    if val_dataset is not None:
        return [(dataset, val_dataset)]
    if k_folds is not None:
        folds = data.KFold(n_splits=k_folds, shuffle=True, seed=seed).split(len(dataset))
        return [(data.Subset(dataset, list(tr)), data.Subset(dataset, list(va)))
                for tr, va in folds]
    train_set, val_set = data.random_split(dataset, [1.0 - val_fraction, val_fraction], seed=seed)
    return [(train_set, val_set)]


def _row(params: dict, histories: list, monitor: str, seconds: float) -> dict[str, Any]:
    """Final-epoch validation values averaged over folds, and the best epoch of the mean curve."""
    finals = [h.epochs[-1] for h in histories]
    row = dict(params)
    for key in finals[0]:
        if key.startswith("val_"):
            row[key] = sum(f[key] for f in finals) / len(finals)
    if len(histories) > 1:
        values = [f[monitor] for f in finals]
        mean = row[monitor]
        row[f"{monitor}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    curve = [sum(h.epochs[i][monitor] for h in histories) / len(histories)
             for i in range(min(len(h.epochs) for h in histories))]
    pick = min if default_mode(monitor) == "min" else max
    row["best_epoch"] = 1 + curve.index(pick(curve))
    row["folds"] = len(histories)
    row["time"] = seconds
    return row


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table (floats to 4 significant digits).

    Example:
        >>> print(format_table([{"lr": 0.1, "val_loss": 0.25}, {"lr": 0.01, "val_loss": 0.5}]))
        lr    val_loss
        0.1   0.25
        0.01  0.5
    """
    if not rows:
        return "(no results)"
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
