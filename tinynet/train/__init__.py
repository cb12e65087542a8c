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
from .checkpoint import latest_checkpoint, resume, save_checkpoint
from .gradflow import (
    GradientFlow,
    check_flow,
    gradient_flow,
    plot_gradient_flow,
    snapshot_parameters,
)
from .history import History
from .loop import evaluate, fit
from .metrics import accuracy, top_k_accuracy
from .search import format_table, grid_search, random_search

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "GradientFlow", "History", "JSONLogger",
    "ModelCheckpoint", "NaNGuard", "ProgressBar", "TrainingState", "accuracy", "callbacks",
    "check_flow", "evaluate", "fit", "format_table", "gradient_flow", "grid_search",
    "latest_checkpoint", "metrics", "plot_gradient_flow", "random_search", "resume", "save_checkpoint", "snapshot_parameters",
    "top_k_accuracy",
]
