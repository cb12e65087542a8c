"""``Optimizer``: parameter groups, per-parameter state, ``step``/``zero_grad``, state dicts.

Every optimizer in ``tn.optim`` subclasses it and writes its math once, in ``_update``: one step
in place on raw backend arrays (the parameter, its gradient, its state arrays) through the
device's ``xp``, so the same code runs on NumPy, CuPy and the stand-in device and records no graph.
The base class runs it parameter by parameter, or once over a whole group flattened into one
array (``flat.py``: always on a GPU, for groups of small tensors on the CPU). An optimizer may
also offer ``_fused_step``, the same update as one fused kernel (``backend/kernels.py``), which
is used where it applies. Names, defaults, state keys and the state-dict layout are
``torch.optim``'s.

Read next: ``sgd.py`` (the simplest update), then ``adam.py``, ``flat.py``, ``lr_scheduler.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from .. import backend
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor
from .flat import flat_step

_SET_MESSAGE = ("parameters must come in an ordered collection (a list), not a set: a set's "
                "order changes between runs, and the state dict relies on it")


class Optimizer:
    """Base class: holds the parameter groups and the per-parameter state.

    Args:
        params: an iterable of tensors, or of dicts (parameter groups), each with a ``"params"``
            entry and any hyper-parameters that differ from ``defaults`` for that group.
        defaults: the hyper-parameters of groups that do not set their own.

    Attributes:
        param_groups: list of dicts: ``"params"`` (list of tensors) and the hyper-parameters.
            Learning-rate schedules change ``group["lr"]`` here.
        state: ``{parameter: {name: value}}``, e.g. Adam's ``{"step", "exp_avg", "exp_avg_sq"}``.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._flat_layouts: dict = {}  # id(group) -> FlatLayout, for the multi-tensor step
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors or of dicts, got a single "
                            "Tensor: wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE)
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- parameter groups ---------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones take the
        optimizer's defaults). Useful to unfreeze layers while fine-tuning.

        Raises:
            ValueError: a parameter is already in another group (or twice in this one), is not a
                leaf, or a hyper-parameter is out of range.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group is a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE)
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"an optimizer can only optimize Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (one made by an op): optimize "
                                 "the leaf it was computed from, or detach() it into a new leaf")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError("a parameter group lists the same parameter twice")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if taken.intersection(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict[str, Any]) -> None:
        """Check one group's hyper-parameters (subclasses raise ValueError naming the bad one)."""

    # --- the update -----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter: drop them (default; the next backward
        allocates fresh ones) or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient, in place; those without one are skipped.
        Each updated parameter's version goes up by one (:func:`mark_updated`), so a graph
        recorded before the step refuses to run backward after it.

        Args:
            closure: optional function that re-evaluates the model and returns the loss (it runs
                with gradients enabled, before the update).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():  # the update is outside the graph; raw arrays make no nodes anyway
            for group in self.param_groups:
                self._step_group(group)
        mark_updated(self.param_groups)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        """One group's update: all at once on flat arrays when that is faster (see ``flat.py``),
        else parameter by parameter. Both run the subclass's ``_update``."""
        params = [p for p in group["params"] if p.grad is not None]
        keys = self._state_keys(group)
        if 1 < len(params) == len(group["params"]) and flat_step(self, group, params, keys):
            return
        n_keys = len(keys)
        for p in params:
            state = self.state.get(p)
            if state is None:
                state = self._init_state(p, group)
                if state or keys:
                    self.state[p] = state
            step = None
            if "step" in state:
                step = state["step"] = state["step"] + 1
            arrays = {k: state[k]._data for k in keys if state.get(k) is not None}
            xp = p._device.xp
            if len(arrays) < n_keys:  # the first step: create the state arrays
                self._create_slots(xp, p._data, arrays, group)
            self._apply_update(xp, p._data, p.grad._data, arrays, step, group)
            for k in keys:  # the ones created for this first step
                if state.get(k) is None:
                    state[k] = Tensor._make(arrays[k], p.device)

    def _create_slots(self, xp, w, arrays: dict, group: dict[str, Any]) -> None:
        """Create, in ``arrays``, the state arrays not created yet: each filled with
        ``_slot_initial_value`` and shaped like ``w``. The one place optimizers' state starts.
        A key whose initial value is None is set to None: ``_update`` makes it."""
        for key in self._state_keys(group):
            if arrays.get(key) is None:
                fill = self._slot_initial_value(key, group)
                arrays[key] = (None if fill is None else
                               xp.zeros_like(w) if fill == 0 else xp.full_like(w, fill))

    def _slot_tensors(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        """A parameter's state arrays before its first step, as tensors (for optimizers whose
        state exists from construction, as Adagrad's does in PyTorch)."""
        arrays: dict = {}
        self._create_slots(p.device.xp, p.data, arrays, group)
        return {k: Tensor._make(v, p.device) for k, v in arrays.items() if v is not None}

    def _apply_update(self, xp, w, g, arrays: dict, step: int | None,
                      group: dict[str, Any]) -> None:
        """One step on raw arrays (one parameter, or a group's flat buffers): on a GPU (and the
        stand-in) the subclass's fused kernel where it has one for these hyper-parameters, else
        its ``_update``. The CPU runs ``_update``: the kernel's NumPy twin is the same arithmetic,
        which saves nothing there."""
        if xp.name == "numpy" or not self._fused_step(xp, w, g, arrays, step, group):
            self._update(xp, w, g, arrays, step, group)

    # What a subclass defines:
    def _state_keys(self, group: dict[str, Any]) -> tuple:
        """Names of the per-parameter state arrays the update keeps (e.g. Adam's moments)."""
        return ()

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """A parameter's state before its first step (``{"step": 0}`` for counting optimizers)."""
        return {"step": 0}

    def _slot_initial_value(self, key: str, group: dict[str, Any]) -> float | None:
        """The value every element of the state array ``key`` starts at (0: moments and
        averages); None when ``_update`` creates that array itself on the first step."""
        return 0.0

    def _update(self, xp, w, g, arrays: dict, step: int | None, group: dict[str, Any]) -> None:
        """One step on the raw arrays: ``w`` the parameter and ``arrays`` the state arrays by key,
        both changed in place only (never rebound: they may be views of a flat buffer); ``g`` the
        gradient, never modified. Every state array exists already (made by ``_create_slots``),
        except one whose ``_slot_initial_value`` is None on the first step: ``_update`` creates
        that one and puts it in ``arrays``. ``step`` is the step number counting this one (None
        if not counted). Called for one parameter, or for a whole group flattened into 1-d
        arrays."""
        raise NotImplementedError(f"{type(self).__name__} does not define _update")

    def _fused_step(self, xp, w, g, arrays: dict, step: int | None,
                    group: dict[str, Any]) -> bool:
        """Optional: the same step as ``_update`` as one fused kernel (``backend/kernels.py``:
        one GPU launch instead of one per array call); return False where there is none for
        these hyper-parameters or arrays, and ``_update`` runs. Its result must equal
        ``_update``'s (the tests compare them on the stand-in device)."""
        return False

    # --- state dicts ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout, parameters replaced by their index:

        ``{"state": {index: {"step": ..., "exp_avg": Tensor, ...}},
        "param_groups": [{"lr": ..., ..., "params": [indices]}]}``

        Indices count through the groups in order. Tensors in it are copies: stepping on does not
        change a state dict already taken (a checkpoint must not move under its owner).
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.copy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, values in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (v.clone() if isinstance(v, Tensor) else copy.copy(v))
                                       for k, v in values.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state taken with :meth:`state_dict`, so that training resumes exactly.

        The hyper-parameters of each group come from the state dict; the parameters stay this
        optimizer's. State tensors are copied onto each parameter's device and dtype. Everything is
        checked before anything changes: the number of groups, the size of each group, the
        hyper-parameters this optimizer needs, and the shape of every state tensor.

        Raises:
            ValueError: listing every mismatch.
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("an optimizer state dict has the keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter group(s), this "
                             f"optimizer has {len(self.param_groups)}")
        problems = []
        params: dict[int, Tensor] = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                problems.append(f"parameter group {i}: the loaded state dict has "
                                f"{len(saved['params'])} parameters, this optimizer's group has "
                                f"{len(group['params'])}")
                continue
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                problems.append(f"parameter group {i}: the loaded state dict has no "
                                f"{', '.join(map(repr, missing))} (is it from another optimizer "
                                f"than {type(self).__name__}?)")
            params.update(zip(saved["params"], group["params"]))
        for index, values in state_dict["state"].items():
            p = params.get(index)
            if p is None:
                problems.append(f"state for parameter index {index}, which no group lists")
                continue
            for key, value in values.items():
                shape = getattr(value, "shape", None)
                if key != "step" and shape is not None and tuple(shape) != tuple(p.shape):
                    problems.append(f"parameter {index}, state {key!r}: shape {tuple(shape)} in "
                                    f"the state dict, the parameter has shape {tuple(p.shape)}")
        if problems:
            raise ValueError("can't load the optimizer state dict:\n  " + "\n  ".join(problems))

        self.state = {params[i]: {k: _restore(v, params[i], k) for k, v in values.items()}
                      for i, values in state_dict["state"].items()}
        self._flat_layouts.clear()  # their buffers held the old state
        for group, saved in zip(self.param_groups, saved_groups):
            hyper = {k: copy.copy(v) for k, v in saved.items() if k != "params"}
            hyper["params"] = group["params"]
            group.clear()
            group.update(hyper)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


def mark_updated(param_groups: list) -> None:
    """Bump the version of every parameter a step updated (each one with a gradient).

    The update wrote into the parameters' memory, so a graph recorded before the step must not
    run backward after it (it would pair the new weights with the old activations): the versions
    its nodes saved no longer match, and backward raises. ``step()`` calls this once, after the
    update, however the update was done (per parameter, on flat buffers, fused on a GPU).
    """
    for group in param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p._bump_version()


def _restore(value, p: Tensor, key: str):
    """A state value from a state dict, as this optimizer keeps it: a fresh tensor on the
    parameter's device and dtype, or the step count as an int."""
    if key == "step":
        return int(value.item() if hasattr(value, "item") else value)
    if isinstance(value, Tensor):
        arr = backend.transfer(value.data, value.device, p.device)
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = backend.transfer(backend.host_array(value), backend.Device("cpu"), p.device)
    else:
        return copy.copy(value)
    arr = arr.astype(p.dtype) if arr.dtype != p.dtype else arr.copy()
    return Tensor._make(arr, p.device)

