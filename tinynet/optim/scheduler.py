"""``LRScheduler``: the base of every learning-rate schedule (``tn.optim.lr_scheduler``).

It holds PyTorch's rules: constructing a schedule performs the initial step (``last_epoch``
-1 -> 0), ``step()`` advances one epoch or iteration and writes ``get_lr()`` into the optimizer's
groups, and ``state_dict()`` is every attribute but the optimizer. The schedules themselves are in
``lr_scheduler.py`` (formula schedules, SequentialLR), ``one_cycle.py`` and ``plateau.py``.
"""

from __future__ import annotations

from typing import Any

from .optimizer import Optimizer


class LRScheduler:
    """Base class: tracks ``last_epoch`` and the base rates, writes ``get_lr()`` into the groups.

    Subclasses define ``get_lr()`` (the rates at ``self.last_epoch``, usually from the current
    ``group["lr"]``) and, where a closed form exists, ``_get_closed_form_lr()``.

    Args:
        optimizer: the optimizer whose learning rates this schedule sets.
        last_epoch: index of the last epoch done; -1 (default) starts a new schedule. Resuming with
            a value >= 0 needs ``"initial_lr"`` in every group (a loaded optimizer state has it).
    """

    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming a schedule with last_epoch >= 0: load the "
                                   "optimizer's state dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """The step done by the constructor: sets the rates for ``last_epoch + 1``."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for ``self.last_epoch`` (called by ``step``; read ``get_last_lr()``)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group, as set by the latest step."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or iteration) and set the groups' rates; call after
        ``optimizer.step()``.

        Args:
            epoch: jump to this epoch instead, using the closed form where the schedule has one
                (PyTorch's deprecated argument; ``SequentialLR`` uses it at its milestones).
        """
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (save the optimizer's state dict beside it)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


def _per_group(name: str, optimizer: Optimizer, value) -> list:
    """One value per parameter group: a list as given (checked), or a scalar repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. "
                             f"{name} has {len(value)} values, param_groups has "
                             f"{len(optimizer.param_groups)}.")
        return list(value)
    return [value] * len(optimizer.param_groups)
