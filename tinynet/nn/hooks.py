"""Module hooks: the handle every ``register_*_hook`` returns, and the machinery behind
``Module.register_full_backward_hook``.

A full backward hook needs the gradients with respect to one call's outputs and inputs. Each input
that requires grad is passed through a recorded copy (``clone``) whose tensor hook sees exactly the
gradient with respect to that input of this call; tensor hooks on the outputs collect
``grad_output``. When the last input gradient is in, the module's hooks run, and a replacement
``grad_input`` they return flows on through the copy's hook.

Read next: ``module.py`` (``Module.__call__``, which uses these).
"""

from __future__ import annotations

from ..ops import clone
from ..tensor import Tensor


class RemovableHandle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def watch_inputs(module, args: tuple):
    """For full backward hooks: pass each input that requires grad through a recorded copy, whose
    gradient is then exactly the gradient with respect to that input of this call."""
    state = {"module": module, "grad_input": [], "grad_output": None, "inputs_left": 0}
    new_args = []
    for a in args:
        if isinstance(a, Tensor) and a.requires_grad:
            i = len(state["grad_input"])
            state["grad_input"].append(None)
            state["inputs_left"] += 1
            a = clone(a)
            a.register_hook(_input_hook(state, i))
        elif isinstance(a, Tensor):
            state["grad_input"].append(None)
        new_args.append(a)
    return tuple(new_args), state


def watch_outputs(state: dict, out) -> None:
    outputs = out if isinstance(out, tuple) else (out,)
    watched = [o for o in outputs if isinstance(o, Tensor) and o.requires_grad]
    state["grad_output"] = [None] * len(watched)
    state["outputs_left"] = len(watched)
    for i, t in enumerate(watched):
        t.register_hook(_output_hook(state, i))


def _fire(state: dict):
    result = None
    for hook in list(state["module"]._backward_hooks.values()):
        new = hook(state["module"], tuple(state["grad_input"]), tuple(state["grad_output"]))
        if new is not None:
            result = new
    return result


def _output_hook(state: dict, i: int):
    def hook(grad):
        state["grad_output"][i] = grad
        state["outputs_left"] -= 1
        if state["outputs_left"] == 0 and state["inputs_left"] == 0:
            _fire(state)  # no input needs a gradient: the hook sees grad_input of Nones

    return hook


def _input_hook(state: dict, i: int):
    def hook(grad):
        state["grad_input"][i] = grad
        state["inputs_left"] -= 1
        if state["inputs_left"] == 0:
            new = _fire(state)
            if new is not None:  # a replacement grad_input: this input's entry flows on
                return new[i]
        return None

    return hook
