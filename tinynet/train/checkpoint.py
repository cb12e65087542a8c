"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint (written atomically by ``tn.save``) holds the model, optimizer and scheduler state
dicts, the training loader's state (epoch, position and its shuffling generator), the state of
tinynet's default random stream (dropout masks, and anything else drawing from it) and of any
private ``generator`` a layer holds, the history, and the number of epochs done. With all of that
restored, training k epochs, stopping and resuming for m more gives bit-identical weights to
k + m epochs in one go.

A run folder (``ModelCheckpoint(dirpath)``) holds two of them: ``best.npz`` (the best epoch so far)
and ``last.npz`` (the latest). When an epoch improves, ``best.npz`` is written first: a process
killed between the two writes leaves ``best.npz`` one epoch ahead of ``last.npz``, never the best
weights lost. :func:`latest_checkpoint` (and ``resume`` given the folder) picks the newer file.

A data-parallel job's checkpoint is written by rank 0 and also holds every rank's random streams
(``rank_rngs``, gathered from all ranks: each draws its own dropout masks), so each rank resumes
its own; everything else is the same on every rank.
"""

from __future__ import annotations

import os
from typing import Any

from .. import serialization
from ..backend import Generator, default_generator
from ..distributed.collectives import all_gather_object
from ..distributed.group import rank_and_size
from .history import History

__all__ = ["BEST", "CHECKPOINT_FORMAT", "LAST", "checkpoint_epoch", "checkpoint_state",
           "latest_checkpoint", "resume", "save_checkpoint"]

CHECKPOINT_FORMAT = "tinynet.train.checkpoint/1"
BEST, LAST = "best.npz", "last.npz"  # the two files of a run folder


def _module_generators(model) -> dict[str, Generator]:
    """Private random streams held by layers (``Dropout(generator=g)``), by module name."""
    found = {}
    for name, module in model.named_modules():
        gen = getattr(module, "generator", None)
        if isinstance(gen, Generator) and gen is not default_generator:
            found[name] = gen
    return found


def _rng_states(model) -> dict[str, Any]:
    return {"rng": default_generator.get_state(),
            "module_rngs": {k: g.get_state() for k, g in _module_generators(model).items()}}


def checkpoint_state(state) -> dict[str, Any]:
    """The checkpoint dict for a :class:`~tinynet.train.callbacks.TrainingState` at an epoch's
    end (in a multi-rank job, call it on every rank: it gathers their random streams)."""
    loader = state.train_loader
    _, world = rank_and_size()
    rank_rngs = all_gather_object(_rng_states(state.model)) if world > 1 else None
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": state.epoch,  # epochs done: a resumed fit starts at the next one
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "train_loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
        **_rng_states(state.model),  # "rng", "module_rngs": this rank's (rank 0's when it writes)
        "history": state.history.state_dict(),
        "rank_rngs": rank_rngs,
    }


def save_checkpoint(path: str | os.PathLike, state) -> None:
    """Write :func:`checkpoint_state` to ``path`` (atomically: a crash leaves the old file)."""
    serialization.save(checkpoint_state(state), path)


def latest_checkpoint(dirpath: str | os.PathLike) -> str | None:
    """The newer of a run folder's ``last.npz`` and ``best.npz`` (by the epoch each holds;
    ``last.npz`` on a tie), or ``None`` when the folder has neither.

    ``best.npz`` is newer only when the run was killed between writing it and ``last.npz``.
    """
    found = [(checkpoint_epoch(p), p) for p in (os.path.join(dirpath, n) for n in (LAST, BEST))
             if os.path.isfile(p)]
    return max(found, key=lambda f: f[0])[1] if found else None


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """The number of epochs done in the training checkpoint at ``path``."""
    return _checked(serialization.load(path, map_location="cpu"), os.fspath(path))["epoch"]


def _checked(ckpt, path: str) -> dict:
    """``ckpt`` if it has the shape :func:`checkpoint_state` writes, else a ValueError naming
    what is wrong (the file itself was already checked by ``tn.load``)."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint (written by ModelCheckpoint); "
                         "for a bare state dict use model.load_state_dict")
    ckpt.setdefault("module_rngs", {})  # absent from checkpoints of earlier versions
    kinds = {"epoch": int, "model": dict, "optimizer": dict, "scheduler": (dict, type(None)),
             "train_loader": (dict, type(None)), "rng": dict, "module_rngs": dict,
             "history": dict}
    for key, kind in kinds.items():
        if not isinstance(ckpt.get(key), kind) or isinstance(ckpt.get(key), bool):
            raise ValueError(f"{path}: the training checkpoint's {key!r} is "
                             f"{type(ckpt.get(key)).__name__}, not what ModelCheckpoint writes")
    records = ckpt["history"].get("epochs")
    if (ckpt["epoch"] < 0 or not isinstance(records, list)
            or not all(isinstance(r, dict) and type(r.get("epoch")) is int for r in records)):
        raise ValueError(f"{path}: the training checkpoint's epoch or history is malformed")
    return ckpt


def resume(path: str | os.PathLike, model, optimizer, scheduler=None, train_loader=None,
           map_location="cpu") -> tuple[int, History]:
    """Restore a run from a checkpoint written by ``ModelCheckpoint``.

    Loads the states into the objects given (build them as for the original run: same
    architecture, same optimizer and scheduler types), restores tinynet's default random stream,
    and returns what ``fit`` needs to go on.

    Args:
        path: the run folder (``ModelCheckpoint``'s ``dirpath``: its newest checkpoint, see
            :func:`latest_checkpoint`), or a checkpoint file (``last.npz`` to continue,
            ``best.npz`` to restart from the best epoch).
        model, optimizer, scheduler, train_loader: the objects to restore into.
        map_location: where the checkpoint's tensors are read to before being copied into the
            model and optimizer (which stay on their devices).

    Returns:
        ``(start_epoch, history)``: pass both to ``fit(..., start_epoch=start_epoch,
        history=history)`` with ``epochs`` the total number of epochs wanted.

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the file is not a training checkpoint (a ``CheckpointError`` when it is not
            a readable checkpoint at all), or a state does not fit the object given (the message
            names which: model, optimizer, scheduler, train_loader or rng). The objects restored
            before that one keep their new state: build them again before retrying.

    Example:
        >>> start, history = resume("runs/1", model, opt, sched, loader)
        >>> fit(model, loss_fn, opt, loader, epochs=20, scheduler=sched,
        ...     start_epoch=start, history=history)
    """
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"resume: {os.fspath(path)} holds no {LAST} or {BEST}")
        path = found
    path = os.fspath(path)
    ckpt = _checked(serialization.load(path, map_location=map_location), path)
    # This rank's random streams: a multi-rank job's checkpoint holds one set per rank.
    rng = {"rng": ckpt["rng"], "module_rngs": ckpt["module_rngs"]}
    rank, world = rank_and_size()
    if world > 1 or ckpt.get("rank_rngs"):
        saved = ckpt.get("rank_rngs") or [rng]
        if not isinstance(saved, list) or len(saved) != world:
            raise ValueError(f"resume: {path} was written by a job of "
                             f"{len(saved) if isinstance(saved, list) else '?'} process(es); "
                             f"resume it with as many, not {world}")
        rng = saved[rank]
    generators = _module_generators(model)
    steps = [("model", lambda: model.load_state_dict(ckpt["model"])),
             ("optimizer", lambda: optimizer.load_state_dict(ckpt["optimizer"]))]
    if scheduler is not None:
        if ckpt["scheduler"] is None:
            raise ValueError(f"resume: {path} holds no scheduler state (the run had none)")
        steps.append(("scheduler", lambda: scheduler.load_state_dict(ckpt["scheduler"])))
    if train_loader is not None and ckpt["train_loader"] is not None:
        steps.append(("train_loader", lambda: train_loader.load_state_dict(ckpt["train_loader"])))
    steps.append(("rng", lambda: default_generator.set_state(rng["rng"])))
    steps += [(f"module_rngs[{name!r}]", lambda g=generators[name], s=gen_state: g.set_state(s))
              for name, gen_state in rng["module_rngs"].items() if name in generators]
    for part, restore in steps:
        try:
            restore()
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise ValueError(f"resume: {path}: the checkpoint's {part} state does not fit the "
                             f"{part.split('[')[0]} given: {exc}") from exc
    try:
        history = History.from_state_dict(ckpt["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"resume: {path}: the checkpoint's history is malformed: {exc}") from exc
    return ckpt["epoch"], history
