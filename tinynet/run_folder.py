"""The run folder of ``tinynet train``: what it holds, the order it is written in, and what a
resume checks before trusting it.

A run folder holds ``config.json`` (the options; a ``"result"`` once the run has finished),
``best.npz`` and ``last.npz`` (``ModelCheckpoint``), ``history.csv`` (rewritten after every epoch)
and ``learning_curves.png``. Every file is replaced atomically (``tinynet.atomic``), in this order:

1. ``config.json`` without a result (a resumed run drops the previous session's result);
2. per epoch: ``best.npz`` when the epoch improves, then ``last.npz``, then ``history.csv``;
3. at the end: ``history.csv``, ``learning_curves.png``, then ``config.json`` with the result.

So a process killed at any instant leaves a consistent folder: ``best.npz`` holds the best epoch of
the newest checkpoint's history; ``last.npz`` is the newest checkpoint or one epoch behind
``best.npz``; ``history.csv`` holds the newest checkpoint's history or one epoch less; a result in
``config.json`` means the run finished. ``tinynet train --resume RUN`` continues from the newer
checkpoint, brings the lagging files in line, and finishes a run that has nothing left to train.

Read next: ``cli.py`` (the command), ``train/callbacks.py`` (``ModelCheckpoint``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import tinynet as tn

from . import atomic
from .train.checkpoint import BEST, LAST

RUN_FILES = ("config.json", LAST, BEST)  # a folder holding any of these holds a run
_NOT_SAVED = ("help", "resume", "quiet", "out")  # options config.json does not dictate


class UsageError(Exception):
    """A bad value on the command line (or in the run being resumed): one line, exit status 2."""


class WriteFailed(Exception):
    """A file of the run folder could not be written (a full disk): one line, exit status 1."""


def non_empty_path(text: str) -> str:
    """The ``type`` of path options: an empty string is not a folder (it would mean "here")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a path, got an empty string")
    return text


def make_run_dir(args: argparse.Namespace, resumed_from: Path | None) -> Path:
    """``--out`` as given, else a new ``runs/<date-time>-<model>-<dataset>`` (never reused).

    A folder that already holds a run is only written into by a resume of that run.
    """
    if args.out is not None:
        run_dir = Path(args.out)
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out: {run_dir} exists and is not a folder")
        continuing = resumed_from is not None and run_dir.resolve() == resumed_from.resolve()
        held = [name for name in RUN_FILES if (run_dir / name).exists()]
        if held and not continuing:
            raise UsageError(f"--out: {run_dir} already holds a run ({', '.join(held)}); "
                             f"continue it with --resume {run_dir}, or choose another folder")
    else:
        stem = f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{args.model}-{args.dataset}"
        run_dir, n = Path(stem), 1
        while run_dir.exists():  # two runs in the same second get their own folders
            n += 1
            run_dir = Path(f"{stem}-{n}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out: cannot create {run_dir}: {error.strerror}") from None
    return run_dir


def write_json(path: Path, obj: dict) -> None:
    """Replace ``path`` with ``obj`` as JSON, atomically: a reader never sees half a file."""
    atomic.write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"), "tinynet train")


def start_writing(run_dir: Path, config: dict) -> None:
    """The first write of a session (``config.json`` without a result): an unwritable ``--out``
    is reported here, before any training."""
    try:
        write_json(run_dir / "config.json", config)
    except OSError as error:
        raise UsageError(f"--out: cannot write into {run_dir}: {_reason(error)}") from None


def write_failed(error: OSError, run_dir: Path) -> WriteFailed:
    """The one-line report of a write that failed mid-run (the folder stays consistent)."""
    return WriteFailed(f"cannot write to {run_dir}: {_reason(error)}; the folder keeps its last "
                       f"complete epoch (continue with --resume {run_dir})")


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else one_line(error)


def saved_args(config_path: Path, train_parser: argparse.ArgumentParser,
               required: tuple) -> dict:
    """The options a resumed run's ``config.json`` records, each checked as the command line
    checks it (an unknown optimizer name here must not quietly build another optimizer)."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"--resume: {config_path} is not a tinynet train config "
                         f"({type(error).__name__})") from None
    saved = config.get("args") if isinstance(config, dict) else None
    if not isinstance(saved, dict):
        raise UsageError(f"--resume: {config_path} is not a tinynet train config: its \"args\" "
                         f"is {type(saved).__name__}, not an object of options")
    checked = {}
    for action in train_parser._actions:
        if action.dest in _NOT_SAVED or action.dest not in saved:
            continue  # options a config of another version lacks keep their defaults
        checked[action.dest] = _checked_option(action, saved[action.dest], config_path)
    missing = [key for key in required if checked.get(key) is None]
    if missing:
        raise UsageError(f"--resume: {config_path} lacks the options "
                         f"{', '.join(missing)} of the run (not a tinynet train config?)")
    return checked


def _checked_option(action: argparse.Action, value, config_path: Path):
    option = action.option_strings[-1]
    problem = None
    if value is None:
        problem = None if action.default is None else "missing"
    elif action.choices is not None:
        problem = None if value in action.choices else (
            f"not one of {', '.join(map(str, action.choices))}")
    elif action.type is not None:
        try:
            ok = type(value) in (int, float) and action.type(str(value)) == value
        except argparse.ArgumentTypeError as error:
            problem = str(error)
        else:
            problem = None if ok else "not a number of the right kind"
    elif isinstance(action.const, bool):  # a flag
        problem = None if isinstance(value, bool) else "not true or false"
    elif not isinstance(value, str):
        problem = "not a string"
    if problem is not None:
        raise UsageError(f"--resume: {config_path} records {option} {value!r}, which is not a "
                         f"valid value ({problem})")
    return value


def resume_point(path: str) -> Path:
    """What ``--resume`` names: a checkpoint, or a run folder with none yet (killed in its first
    epoch: it starts over). A run folder or its ``last.npz`` means the newer of ``last.npz`` and
    ``best.npz`` (``best.npz`` is newer after a kill between the two writes)."""
    checkpoint = Path(path)
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    if checkpoint.is_dir() or checkpoint.name == LAST:
        try:
            latest = tn.train.latest_checkpoint(folder)
        except ValueError as error:  # a CheckpointError, or not a training checkpoint
            raise UsageError(f"--resume: {one_line(error)}") from None
        if latest is None and (folder / "config.json").is_file():
            return folder
        checkpoint = Path(latest) if latest is not None else folder / LAST
    if not checkpoint.is_file():
        raise UsageError(f"--resume: no checkpoint at {checkpoint}")
    return checkpoint


def fork(checkpoint: Path, run_dir: Path) -> None:
    """Resuming into another ``--out``: the new folder starts as a copy of the run resumed."""
    if checkpoint.is_dir() or run_dir.resolve() == checkpoint.parent.resolve():
        return
    best = checkpoint.parent / BEST
    try:
        if best.is_file() and best.resolve() != checkpoint.resolve():
            atomic.copy_file(best, run_dir / BEST, "tinynet train")
        atomic.copy_file(checkpoint, run_dir / checkpoint.name, "tinynet train")
        if checkpoint.name != LAST:
            atomic.copy_file(checkpoint, run_dir / LAST, "tinynet train")
    except OSError as error:
        raise UsageError(f"--out: cannot write into {run_dir}: {_reason(error)}") from None


class HistoryFile(tn.train.callbacks.Callback):
    """Rewrites ``history.csv`` after every epoch, after the checkpoints (so it never runs
    ahead of ``last.npz``). Atomic but not fsynced: the file is rebuilt from the checkpoint on
    a resume, and an fsync per epoch would cost more than the write."""

    rank_zero_only = True  # one writer in a data-parallel run

    def __init__(self, path: Path):
        self.path = path

    def on_epoch_end(self, state) -> None:
        text = io.StringIO()
        state.history.to_csv(text)
        atomic.write_bytes(self.path, text.getvalue().encode("utf-8"), "tinynet train",
                           durable=False)


def one_line(error: BaseException) -> str:
    """An error message on one line (load_state_dict lists its problems on several)."""
    return " ".join(str(error).split())
