"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint (written atomically by ``tn.save``) holds the model, optimizer and scheduler state
dicts, the training loader's state (epoch, position and its shuffling generator), the state of
tinynet's default random stream (dropout masks, and anything else drawing from it) and of any
private ``generator`` a layer holds, the history, and the number of epochs done. With all of that
restored, training k epochs, stopping and resuming for m more gives bit-identical weights to
k + m epochs in one go.

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

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_state", "resume", "save_checkpoint"]

CHECKPOINT_FORMAT = "tinynet.train.checkpoint/1"


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


def resume(path: str | os.PathLike, model, optimizer, scheduler=None, train_loader=None,
           map_location="cpu") -> tuple[int, History]:
    """Restore a run from a checkpoint written by ``ModelCheckpoint``.

    Loads the states into the objects given (build them as for the original run: same
    architecture, same optimizer and scheduler types), restores tinynet's default random stream,
    and returns what ``fit`` needs to go on.

    Args:
        path: the checkpoint (``last.npz`` to continue, ``best.npz`` to restart from the best).
        model, optimizer, scheduler, train_loader: the objects to restore into.
        map_location: where the checkpoint's tensors are read to before being copied into the
            model and optimizer (which stay on their devices).

    Returns:
        ``(start_epoch, history)``: pass both to ``fit(..., start_epoch=start_epoch,
        history=history)`` with ``epochs`` the total number of epochs wanted.

    Example:
        >>> start, history = resume("runs/1/last.npz", model, opt, sched, loader)
        >>> fit(model, loss_fn, opt, loader, epochs=20, scheduler=sched,
        ...     start_epoch=start, history=history)
    """
    ckpt = serialization.load(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)} is not a training checkpoint (written by "
                         "ModelCheckpoint); for a bare state dict use model.load_state_dict")
    # This rank's random streams: a multi-rank job's checkpoint holds one set per rank.
    rng = {"rng": ckpt["rng"], "module_rngs": ckpt.get("module_rngs", {})}
    rank, world = rank_and_size()
    if world > 1 or ckpt.get("rank_rngs"):
        saved = ckpt.get("rank_rngs") or [rng]
        if len(saved) != world:
            raise ValueError(f"{os.fspath(path)} was written by a job of {len(saved)} "
                             f"process(es); resume it with {len(saved)}, not {world}")
        rng = saved[rank]
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        if ckpt["scheduler"] is None:
            raise ValueError("the checkpoint holds no scheduler state (the run had none)")
        scheduler.load_state_dict(ckpt["scheduler"])
    if train_loader is not None and ckpt["train_loader"] is not None:
        train_loader.load_state_dict(ckpt["train_loader"])
    default_generator.set_state(rng["rng"])
    generators = _module_generators(model)
    for name, gen_state in rng["module_rngs"].items():
        if name in generators:
            generators[name].set_state(gen_state)
    return int(ckpt["epoch"]), History.from_state_dict(ckpt["history"])
