"""The multi-tensor ("flat") step: one update over all of a parameter group at once.

Why: the per-parameter loop makes ~5-10 array-library calls per tensor whatever its size. For a
model of many small tensors those calls, not the arithmetic, are the cost: for 40 tensors of a
20-layer, 32-wide MLP (~1k elements each) Adam's loop takes ~340 us and the flat step ~105 us,
gathering included; for a 784-256-128-10 MLP (6 tensors, 235k elements) the loop is within 3% of
raw NumPy and the flat step is slower, its copies costing more than the calls it saves
(benchmarks/optim_step.py, docs/optim.md). So the flat step is used for groups of small tensors.

How: the group's state arrays (moments, accumulators) live in one flat buffer per state key, and
each parameter's state tensor is a view of its slice, so state dicts and ``optimizer.state`` look
exactly as with the loop. A step gathers the parameters and gradients into flat arrays (one
concatenate each), runs the optimizer's ``_update`` once, and copies the parameters back.
Parameters keep their own arrays: nothing a user holds (``p.data``, a module state dict) is
re-pointed into a shared buffer. The math is element-wise and identical, so the result is
bitwise the loop's.

When: every parameter of the group (at least two) has a gradient, all on one device with one
dtype, the mean size is at most :data:`FLAT_MAX_MEAN_SIZE` elements, and every parameter's state
is already created with the same step count. So the first step, and steps where only some
parameters have gradients, use the loop.
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor

FLAT_MAX_MEAN_SIZE = 4096  # elements per tensor: above it, gathering copies cost more than calls


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
        self.w = xp.empty(total, dtype=self.dtype)  # (N,) gathered parameters
        self.g = xp.empty(total, dtype=self.dtype)  # (N,) gathered gradients
        self.w_views = _views(self.w, self.shapes, sizes)
        self.buffers, self.views = {}, {}
        for key in keys:  # move each state tensor into its slice of the key's buffer
            flat = self.buffers[key] = xp.empty(total, dtype=self.dtype)
            self.views[key] = _views(flat, self.shapes, sizes)
            for s, view in zip(states, self.views[key]):
                view[...] = s[key]._data
                s[key] = Tensor._make(view, self.device)

    def matches(self, params: list, states: list, keys: tuple) -> bool:
        """Still this group's layout: the same parameters (device, dtype, shape) and state
        tensors that are still the buffer's views (a loaded state dict replaces them)."""
        if len(params) != len(self.params) or len(keys) != len(self.buffers):
            return False
        device, dtype, views = self.device, self.dtype, [self.views.get(k) for k in keys]
        for i, p in enumerate(params):
            if (p is not self.params[i] or p._device is not device or p._data.dtype != dtype
                    or p._data.shape != self.shapes[i]):
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
        opt: the optimizer (its ``state``, ``_update`` and ``_flat_layouts``).
        group: the parameter group.
        params: its parameters that have a gradient this step.
        keys: the names of the state arrays ``opt._update`` keeps for this group.
    """
    if sum(p._data.size for p in params) > FLAT_MAX_MEAN_SIZE * len(params):
        return False  # large tensors: the loop is as fast, without the copies
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
        device, dtype = params[0].device, params[0].dtype
        if any(p._device is not device or p._data.dtype != dtype for p in params):
            return False
        layout = opt._flat_layouts[id(group)] = FlatLayout(params, states, keys)
    xp = layout.device.xp
    w, g = layout.w, layout.g
    xp.concatenate([p._data.reshape(-1) for p in params], out=w)
    xp.concatenate([p.grad._data.reshape(-1) for p in params], out=g)
    if step is not None:
        step += 1
        for s in states:
            s["step"] = step
    opt._update(xp, w, g, dict(layout.buffers), step, group)
    for p, view in zip(params, layout.w_views):
        p._data[...] = view
    return True
