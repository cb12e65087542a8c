"""``History``: what ``fit`` measured, one dict per epoch, and the learning-curve plot.

Each entry of ``history.epochs`` holds ``"epoch"`` (counted from 1), ``"loss"`` and one key per
metric (``"accuracy"``) for the training set, ``"val_loss"`` / ``"val_accuracy"`` when a validation
loader was given, ``"lr"`` (the first parameter group's rate during the epoch), ``"time"`` (seconds
for the whole epoch, validation included) and ``"samples_per_s"`` (training samples per second of
the training phase). ``stopped_epoch`` and ``stop_reason`` say why a run ended early.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from .. import atomic

__all__ = ["History", "default_mode"]


def default_mode(monitor: str) -> str:
    """``"max"`` for accuracy-like names, ``"min"`` otherwise (losses, errors)."""
    return "max" if "acc" in monitor else "min"


class History:
    """Per-epoch records of a training run.

    Example:
        >>> history = tn.train.fit(model, loss_fn, opt, train_loader, epochs=5, val_loader=val)
        >>> history["val_loss"]            # one value per epoch
        >>> history.best("val_accuracy")   # the epoch record with the highest validation accuracy
        >>> history.plot("curves.png")
    """

    def __init__(self, epochs: list[dict[str, Any]] | None = None):
        self.epochs: list[dict[str, Any]] = list(epochs or [])
        self.stopped_epoch: int | None = None  # the epoch after which a callback stopped the run
        self.stop_reason: str | None = None

    def append(self, record: dict[str, Any]) -> None:
        self.epochs.append(dict(record))

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key: str) -> list:
        """The values of one key, epoch by epoch (``None`` where an epoch lacks it)."""
        if not any(key in e for e in self.epochs):
            raise KeyError(f"{key!r} is not in the history (keys: {', '.join(self.keys())})")
        return [e.get(key) for e in self.epochs]

    def keys(self) -> list[str]:
        """Every key that appears, in first-seen order."""
        seen: dict[str, None] = {}
        for e in self.epochs:
            seen.update(dict.fromkeys(e))
        return list(seen)

    def best(self, monitor: str = "val_loss", mode: str = "auto") -> dict[str, Any]:
        """The record of the best epoch by ``monitor`` (``mode`` ``"min"``, ``"max"`` or
        ``"auto"``); the first one on ties. NaN values never win."""
        mode = default_mode(monitor) if mode == "auto" else mode
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        candidates = [e for e in self.epochs
                      if isinstance(e.get(monitor), (int, float)) and not math.isnan(e[monitor])]
        if not candidates:
            raise ValueError(f"no epoch has a value for {monitor!r}")
        pick = min if mode == "min" else max
        return pick(candidates, key=lambda e: e[monitor])

    def to_csv(self, path) -> None:
        """Write one row per epoch (columns: every key, in first-seen order). A path is replaced
        atomically (a crash leaves the old file or the new one); a text file object (anything
        with ``write``) is written to."""
        text = path if hasattr(path, "write") else io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.keys())
        writer.writeheader()
        writer.writerows(self.epochs)
        if text is not path:
            atomic.write_bytes(path, text.getvalue().encode("utf-8"), "History.to_csv")

    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings) for checkpoints."""
        return {"epochs": [dict(e) for e in self.epochs], "stopped_epoch": self.stopped_epoch,
                "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = [dict(e) for e in state["epochs"]]
        self.stopped_epoch = state.get("stopped_epoch")
        self.stop_reason = state.get("stop_reason")

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> History:
        history = cls()
        history.load_state_dict(state)
        return history

    def __repr__(self) -> str:
        return f"History({len(self.epochs)} epochs, keys={self.keys()})"

    def plot(self, path: str | os.PathLike, monitor: str | None = None,
             metric: str | None = None, title: str | None = None) -> None:
        """Draw the learning curves (:meth:`figure`) to an image file (PNG, or any format
        matplotlib knows).

        Needs matplotlib (``pip install "tinynet[plot]"``); draws off-screen (Agg), leaving the
        global matplotlib backend alone, and replaces the file atomically.
        """
        image = io.BytesIO()  # drawn in memory, then replaces the file atomically
        self.figure(monitor, metric, title).savefig(
            image, dpi=100, format=os.path.splitext(os.fspath(path))[1][1:] or None)
        atomic.write_bytes(path, image.getvalue(), "History.plot")

    def figure(self, monitor: str | None = None, metric: str | None = None,
               title: str | None = None):
        """The learning curves as a matplotlib ``Figure``, one panel per quantity, by epoch.

        Loss: training vs validation loss on a log scale (so the late epochs, where the loss is
        small, stay readable; linear if a loss is not positive). Metric: ``accuracy`` by default
        (the first metric recorded) for both sets. Learning rate: its own panel, when recorded.
        The best epoch by ``monitor`` (default ``val_loss``, else ``loss``) is a dashed line with a
        dot on the monitored curve, and the epoch where early stopping ended the run a dotted
        one; the epoch axis leaves room on each side (half an epoch, or 5% of the run), so both
        stay inside the frame. ``title`` goes on top (say the model, the data and the test
        result); a note underneath says how the curves were measured. A validation loss that
        rises while the training loss keeps falling is over-fitting; both staying high is
        under-fitting.

        Example:
            >>> fig = history.figure(title="mlp on digits: test accuracy 0.98")
            >>> fig.savefig("curves.png")
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError('History.plot needs matplotlib: pip install "tinynet[plot]"') from exc
        if not self.epochs:
            raise ValueError("the history is empty: nothing to plot")
        keys = self.keys()
        monitor = monitor or ("val_loss" if "val_loss" in keys else "loss")
        metric = metric or next((k for k in keys if k not in _NOT_METRICS
                                 and not k.startswith("val_")), None)
        panels = ["loss"] + ([metric] if metric else []) + (["lr"] if "lr" in keys else [])
        fig = Figure(figsize=(4.5 * len(panels), 4.4))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        best = self.best(monitor) if any(monitor in e for e in self.epochs) else None
        for ax, name in zip(axes, panels):
            self._plot_panel(ax, name, best, monitor)
        if title:
            fig.suptitle(title)
        fig.text(0.5, 0.01, _NOTE, ha="center", va="bottom", fontsize="small", color="0.3")
        fig.tight_layout(rect=(0, 0.05, 1, 1))  # room for the note underneath
        return fig

    def _plot_panel(self, ax, name: str, best: dict | None, monitor: str) -> None:
        epochs = [e["epoch"] for e in self.epochs]
        series = ((name, "learning rate"),) if name == "lr" else \
            ((name, "train"), (f"val_{name}", "validation"))
        drawn = []
        for key, label in series:
            values = [math.nan if e.get(key) is None else e[key] for e in self.epochs]
            if any(not math.isnan(v) for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
                drawn += [v for v in values if not math.isnan(v)]
        if name == "loss" and drawn and min(drawn) > 0:
            ax.set_yscale("log")  # a loss that falls by decades: the late epochs stay readable
        if best is not None:
            ax.axvline(best["epoch"], color="green", linestyle="--", linewidth=1,
                       label=f"best epoch {best['epoch']} ({monitor})")
            if monitor in (name, f"val_{name}"):
                ax.plot([best["epoch"]], [best[monitor]], "o", color="green", markersize=7)
        if self.stopped_epoch is not None:
            ax.axvline(self.stopped_epoch, color="red", linestyle=":", linewidth=1.5,
                       label=f"early stop (epoch {self.stopped_epoch})")
        # Room each side (half an epoch, or 5% of the run): a best or stopping epoch at either
        # end is drawn inside the frame, not on it.
        pad = max(0.5, 0.05 * (max(epochs) - min(epochs)))
        ax.set_xlim(min(epochs) - pad, max(epochs) + pad)
        ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title("learning rate" if name == "lr" else name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")


_NOT_METRICS = {"epoch", "loss", "lr", "time", "samples_per_s"}
_NOTE = ("train: the mean over each epoch's batches, in training mode (dropout and any "
         "augmentation on)  |  validation: after each epoch, in eval mode")
