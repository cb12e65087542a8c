"""The multi-tensor step: one update over all of a group's parameters at once, on flat buffers.

Why: an optimizer's update is elementwise, so running it parameter by parameter pays the
per-call cost (Python, and on a GPU a kernel launch for each of the ~13 array calls of Adam's
update) once per parameter tensor. On flat buffers it is paid once per group: on a GPU the whole
model's update is two launches, one ``concatenate`` of the gradients and one fused kernel
(``tinynet/backend/kernels.py``; an optimizer without one runs its ``_update`` once, on the flat
arrays).

How: the group's parameters live in one flat buffer, and so does each state key (moments,
accumulators); every parameter's data and every state tensor is a view of its slice (set up once,
when the layout is built: the values are copied in and ``p.data`` re-pointed at its slice). A step
gathers the gradients into one flat array and updates the buffers in place, which *is* updating
the parameters. So ``optimizer.state``, state dicts and the parameters look exactly as with the
per-parameter loop, and the math is the same elementwise formula: the result is bitwise the
loop's. A parameter whose data is replaced (``p.data = ...``, ``model.to(...)``, loading a state
dict) is noticed by identity and the layout rebuilt. Arrays taken from ``p.data`` before the first
flat step are the old arrays: take them again after it.

When: every parameter of the group (at least two) has a gradient, all on one device with one
dtype, and every parameter's state is already created with the same step count (so the first
step, and steps where only some parameters have gradients, use the loop). On a GPU (and the
stand-in device) that is enough. On the CPU the flat step saves only Python overhead, while its
gather costs a pass over the gradients; measured side by side (benchmarks/optim_step.py,
docs/optim.md) it is faster up to a mean tensor size of :data:`FLAT_MAX_MEAN_SIZE` elements, and
the loop is used above it.
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor

# Elements per tensor, on the CPU: above it the loop is as fast. 0 turns the flat step off on
# every device (benchmarks and tests compare the two paths that way).
FLAT_MAX_MEAN_SIZE = 4096


class FlatLayout:
    """A group's flat buffers: parameters, gradients and each state key, with every parameter's
    view of its slice (made once, so a step slices nothing)."""

    __slots__ = ("buffers", "device", "dtype", "g", "params", "shapes", "views", "w", "w_views")

    def __init__(self, params: list, states: list, keys: tuple):
        self.params = list(params)
        self.device, self.dtype = params[0].device, params[0].dtype
        self.shapes = [p.shape for p in params]
        xp = self.device.xp
        sizes = [p._data.size for p in params]
        total = sum(sizes)
        self.w = xp.empty(total, dtype=self.dtype)  # (N,) the parameters themselves
        self.g = xp.empty(total, dtype=self.dtype)  # (N,) gathered gradients
        self.w_views = _views(self.w, self.shapes, sizes)
        for p, view in zip(params, self.w_views):  # each parameter moves into its slice
            view[...] = p._data
            p._data = view
        self.buffers, self.views = {}, {}
        for key in keys:  # move each state tensor into its slice of the key's buffer
            flat = self.buffers[key] = xp.empty(total, dtype=self.dtype)
            self.views[key] = _views(flat, self.shapes, sizes)
            for s, view in zip(states, self.views[key]):
                view[...] = s[key]._data
                s[key] = Tensor._make(view, self.device)

    def matches(self, params: list, states: list, keys: tuple) -> bool:
        """Still this group's layout: the same parameters, still living in their slices, and state
        tensors that are still the buffer's views (a loaded state dict replaces them)."""
        if len(params) != len(self.params) or len(keys) != len(self.buffers):
            return False
        w_views, views = self.w_views, [self.views.get(k) for k in keys]
        for i, p in enumerate(params):
            if p is not self.params[i] or p._data is not w_views[i]:
                return False
            s = states[i]
            for key, key_views in zip(keys, views):
                if key_views is None or s[key]._data is not key_views[i]:
                    return False
        return True


def _views(flat, shapes: list, sizes: list) -> list:
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


def flat_step(opt, group: dict[str, Any], params: list, keys: tuple) -> bool:
    """Run one step of ``group`` on flat arrays if it qualifies; False: use the per-parameter loop.

    Args:
        opt: the optimizer (its ``state``, ``_apply_update`` and ``_flat_layouts``).
        group: the parameter group.
        params: its parameters that have a gradient this step.
        keys: the names of the state arrays ``opt._update`` keeps for this group.
    """
    device = params[0]._device
    if FLAT_MAX_MEAN_SIZE <= 0 or (device.type == "cpu" and sum(
            p._data.size for p in params) > FLAT_MAX_MEAN_SIZE * len(params)):
        return False  # large tensors on the CPU: the loop is as fast, without the gather
    state = opt.state
    states = []
    step = None
    for p in params:  # every state created, all at the same step, gradients of the same dtype
        s = state.get(p)
        if not s or p.grad._data.dtype != p._data.dtype:
            return False
        if not states:
            step = s.get("step")
        elif s.get("step") != step:
            return False
        for key in keys:
            if s.get(key) is None:
                return False
        states.append(s)
    layout = opt._flat_layouts.get(id(group))
    if layout is None or not layout.matches(params, states, keys):
        dtype = params[0].dtype
        if any(p._device is not device or p._data.dtype != dtype for p in params):
            return False
        layout = opt._flat_layouts[id(group)] = FlatLayout(params, states, keys)
    xp = device.xp
    xp.concatenate([p.grad._data.reshape(-1) for p in params], out=layout.g)
    if step is not None:
        step += 1
        for s in states:
            s["step"] = step
    opt._apply_update(xp, layout.w, layout.g, dict(layout.buffers), step, group)
    return True
