"""``tn.train``: the training loop (``fit``, ``evaluate``), its history and learning curves,
callbacks (early stopping, checkpoints, loggers, progress bar, NaN guard), exact resume, metrics
and a small hyper-parameter search.

Reading order: ``loop.py`` (the loop) -> ``callbacks.py`` -> ``history.py`` -> ``checkpoint.py``
-> ``metrics.py`` -> ``search.py``. The guide is ``docs/training.md``.
"""

from . import callbacks, metrics
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    ModelCheckpoint,
    NaNGuard,
    ProgressBar,
    TrainingState,
)
from .checkpoint import resume, save_checkpoint
from .history import History
from .loop import evaluate, fit
from .metrics import accuracy, top_k_accuracy
from .search import format_table, grid_search, random_search

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "History", "JSONLogger", "ModelCheckpoint",
    "NaNGuard", "ProgressBar", "TrainingState", "accuracy", "callbacks", "evaluate", "fit",
    "format_table", "grid_search", "metrics", "random_search", "resume", "save_checkpoint",
    "top_k_accuracy",
]
