"""Seeing backprop: ``tn.trace()`` records the backward walk, ``tn.detect_anomaly()`` finds NaN/Inf.

Both plug into two hook points of ``tinynet/autograd.py`` that are ``None`` while off
(``_anomaly``, run by every op's forward, and ``_observers``, after every backward node), so
normal training pays one lookup per op and per backward node, nothing more. Several tools may be
on at once: the forward hooks of this module run in turn (:func:`_add_forward`).

A trace numbers the nodes in the order backward runs them (``Mul#3`` ran fourth), so its ids read
top to bottom; :func:`execution_order` predicts that order for a graph that has not run, which is
how ``tn.viz`` gives a graph's nodes the same ids. The table is drawn by ``trace_table.py``, the
per-node finite differences are computed by ``local_check.py``. Both tools are per thread, like
grad mode: a trace records, and detect_anomaly checks, only the thread that entered it.

Example:
    >>> with tn.trace(values=True, params=model) as t:
    ...     loss = loss_fn(model(x), y)
    ...     loss.backward()
    >>> print(t.table(values=True))   # one row per op, in the order backward ran them
    >>> with tn.detect_anomaly():
    ...     loss = model(x).log().mean()   # RuntimeError naming the op, your file:line, inputs
    ...     loss.backward()
"""

from __future__ import annotations

import math
import os
import sys
import threading
import weakref
from typing import Self

from . import autograd, backend
from .autograd import Node, sum_to
from .local_check import numeric_check
from .tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# --------------------------------------------------------------------------------------------
# Shared helpers (array math through the device's xp: works on NumPy, CuPy and the standin)
# --------------------------------------------------------------------------------------------


def _raw(a):
    return a.data if isinstance(a, Tensor) else a


def _norm(xp, a) -> float:
    """Euclidean norm in float64 (one device-to-host sync; only paid while a tool is on)."""
    return float(xp.sqrt(xp.sum(xp.square(a.astype(xp.float64)))))


def _is_array(a) -> bool:
    return hasattr(a, "dtype") and hasattr(a, "shape") and hasattr(a, "copy")


def _copy(a):
    """A copy of an array argument (numbers and other constants as they are; a tuple of
    arrays, the outputs of a multi-output op, item by item)."""
    if type(a) is tuple:
        return tuple(_copy(x) for x in a)
    return a.copy() if _is_array(a) else a


def formula(fn) -> str:
    """The local derivative of an op: the "-> gradient" half of its docstring's first line (the
    first paragraph, joined: a long formula wraps onto the next line)."""
    line = full_formula(fn)
    _, arrow, grad = line.partition("->")
    return grad.strip() if arrow else line


def full_formula(fn) -> str:
    """An op's ``forward  ->  gradient`` line: its docstring's first paragraph, joined."""
    return " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split()) or "?"


def _add_observer(observer) -> None:
    """Observe this thread's backward walks (hooks are per thread: see autograd.py)."""
    autograd.set_thread_observers(autograd.thread_observers() + (observer,))


def _remove_observer(observer) -> None:
    autograd.set_thread_observers(tuple(o for o in autograd.thread_observers()
                                        if o is not observer))


def _add_forward(hook) -> None:
    """Run ``hook(cls, ctx, arrays, out, params)`` after every forward of this thread."""
    autograd.set_thread_forward_hooks(autograd.thread_forward_hooks() + (hook,))


def _remove_forward(hook) -> None:
    autograd.set_thread_forward_hooks(tuple(h for h in autograd.thread_forward_hooks()
                                            if h is not hook))


def _user_location() -> str:
    """file:line of the innermost frame outside the tinynet package (the user's call)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "unknown"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def execution_order(roots) -> list[Node]:
    """The nodes behind ``roots`` (Tensors) in the order ``backward()`` would run them: the same
    work list as ``autograd.run_backward`` (Kahn's algorithm, backwards), without running any.
    Works on graphs whose saved values were freed."""
    pending = autograd._count_consumers(roots, check_freed=False)
    seeds = list(dict.fromkeys(t.grad_fn if t.grad_fn is not None else t for t in roots))
    ready = [v for v in seeds if pending[v] == 0][::-1]
    order = []
    while ready:
        v = ready.pop()
        if type(v) is not Node:
            continue
        order.append(v)
        for p in v.parents:
            if p is not None:
                pending[p] -= 1
                if pending[p] == 0:
                    ready.append(p)
    return order


def named_leaves(params) -> dict:
    """``id(tensor) -> name`` from a dict, an iterable of ``(name, tensor)`` or a Module."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    items = params.items() if isinstance(params, dict) else params
    return {id(t): name for name, t in items}


# --------------------------------------------------------------------------------------------
# trace
# --------------------------------------------------------------------------------------------


class Forward:
    """What a trace saw of one op's forward: its positional arguments (arrays copied when values
    are kept, else None; numbers as they are), output, keyword parameters, the path of the module
    it ran in and the user's file:line. ``traced`` is False for what a node recorded before the
    trace still held."""

    __slots__ = ("arrays", "module", "out", "params", "traced", "where")

    def __init__(self, arrays, out, params, module, where, traced=True):
        self.arrays, self.out, self.params = arrays, out, params
        self.module, self.where, self.traced = module, where, traced


class trace:
    """Record every op that backward runs while the block is active, in the order it runs them.

    For each node: an id (``Mul#3``: the op, and its position in backward's execution order), the
    op's local derivative, the upstream gradient (shape, norm), and for each input the gradient it
    sends (shape, norm, after broadcasting is undone) and the shape of the local Jacobian. Where a
    tensor receives gradients from several consumers, the trace also keeps the parts and their sum.
    Ops whose forward runs inside the block are also recorded (their inputs and output when
    ``values``, their keyword parameters, module and the line of your code that made them).

    Args:
        values: also keep a copy of every value: gradients, and the inputs and outputs of the
            forward ops recorded in the block (``"value"`` entries in :meth:`to_dict`,
            ``table(values=True)``); off by default since it holds one array per edge.
        params: names for leaves: a dict ``name -> tensor``, ``named_parameters()`` pairs, or a
            Module (then each op recorded in the block also knows the submodule that ran it).
        finite_differences: check each node alone: central differences of ``<g, op(inputs)>``
            with respect to each input, against the gradient the node sent (needs the forward to
            run inside the block). Costs two forward calls of the op per input element
            (a directional check above ``max_fd_elements`` elements).
        eps: the finite-difference step (inputs are promoted to float64 for the check).
        max_fd_elements: inputs up to this size are checked element by element.

    Example:
        >>> with tn.trace(values=True, params=model, finite_differences=True) as t:
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        >>> print(t.table(values=True))
        >>> t.to_dict()[0]["op"]     # the op backward ran first (the one that made ``loss``)
    """

    def __init__(self, values: bool = False, params=None, finite_differences: bool = False,
                 eps: float = 1e-6, max_fd_elements: int = 64):
        self.values = values
        self.finite_differences = finite_differences
        self.eps, self.max_fd_elements = eps, max_fd_elements
        self.entries: list[dict] = []
        self.forward: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Node -> Forward
        self._names = named_leaves(params)
        self._keep_alive = [] if params is None else _tensors_of(params)  # their ids stay valid
        self._leaf_labels: dict = {}  # leaf Tensor -> its label
        self._parts: dict = {}  # vertex (Node or leaf) -> [(entry, input position)] sent to it
        self._sums: dict = {}  # vertex -> the running sum of the gradients sent to it
        self._module = params if hasattr(params, "named_modules") else None
        self._module_stack: list[str] = []  # paths of the submodules running now, innermost last
        self.module_types: dict = {}  # module path -> class name
        self._module_handles: list = []
        self._hook = self._observe  # one bound method: each access would make a new object
        self._forward_hook = self._record_forward

    # --- on and off -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        _add_observer(self._hook)
        _add_forward(self._forward_hook)
        if self._module is not None:
            for name, module in self._module.named_modules():
                if name:
                    self._module_handles += [
                        module.register_forward_pre_hook(self._enter_module(name)),
                        module.register_forward_hook(self._leave_module)]
        return self

    def __exit__(self, *exc) -> bool:
        _remove_observer(self._hook)
        _remove_forward(self._forward_hook)
        for handle in self._module_handles:
            handle.remove()
        self._module_handles, self._module_stack = [], []
        return False

    def _enter_module(self, name: str):
        def pre_hook(module, args):
            self.module_types[name] = type(module).__name__
            self._module_stack.append(name)
        return pre_hook

    def module_label(self, path: str | None) -> str | None:
        """``"0 (Linear)"`` for the module path ``"0"`` (None stays None)."""
        return None if path is None else f"{path} ({self.module_types.get(path, '?')})"

    def _leave_module(self, module, args, out):
        if self._module_stack:
            self._module_stack.pop()

    # --- recording ----------------------------------------------------------------------------
    def _record_forward(self, cls, ctx, arrays, out, params) -> None:
        keep = self.values or self.finite_differences  # else only the positional constants
        self.forward[ctx] = Forward(
            tuple(_copy(a) if keep else None if _is_array(a) else a for a in arrays),
            _copy(out) if keep else None,
            dict(params), self._module_stack[-1] if self._module_stack else None,
            _user_location())

    def _saved_forward(self, node: Node) -> Forward:
        """For a node recorded before the trace: what it still holds (leaf inputs, saved inputs
        and output), with the other inputs unknown (None)."""
        arrays = None
        out = None
        if self.values:
            arrays = [None] * len(node.parents)
            for i, parent in enumerate(node.parents):
                if parent is not None and type(parent) is not Node:
                    arrays[i] = _copy(parent.data)
            for i, a in zip(node._keep_inputs, node._inputs or ()):
                arrays[i] = _copy(a)
            out = _copy(node._output) if node._keep_output and node._output is not None else None
            arrays = tuple(arrays)
        return Forward(arrays, out, {}, None, None, traced=False)

    def _observe(self, node: Node, grad_out, grads_in) -> None:
        xp = node.device.xp
        record = self.forward.get(node)
        if record is None:
            record = self.forward[node] = self._saved_forward(node)
        if node.n_outputs is not None:  # several outputs: grad_out is a tuple (None: no gradient)
            g = None
            entry = {"_node": node, "_record": record, "_index": len(self.entries),
                     "grad_out": self._outputs_grads(node, grad_out)}
        else:
            g = _raw(grad_out)
            entry = {"_node": node, "_record": record, "_index": len(self.entries),
                     "grad_out": {"shape": tuple(g.shape), "norm": _norm(xp, g)}}
            if self.values:
                entry["grad_out"]["value"] = Tensor.wrap(g.copy(), node.device)
        inputs = []
        for i, parent in enumerate(node.parents):
            if parent is None:
                continue
            if type(parent) is not Node and parent not in self._leaf_labels:
                self._leaf_labels[parent] = self._leaf_name(parent)
            gi = _raw(grads_in[i]) if i < len(grads_in) else None
            shape = node.metas[i][0]
            out_shape = entry["grad_out"]["shape"] if g is None else tuple(g.shape)
            item = {"input": i, "_target": parent, "shape": None, "norm": None,
                    "jacobian_shape": (out_shape, tuple(shape))}
            if gi is not None:
                gi = sum_to(gi, shape, node.name)  # what the input really receives
                item["shape"] = tuple(gi.shape)
                item["norm"] = _norm(xp, gi)
                if self.values:
                    item["value"] = Tensor.wrap(gi.copy(), node.device)
                if node._slots is None or i not in node._slots:  # (an output of a multi-output
                    # node sums per output: its entry's grad_out["outputs"] shows the totals)
                    self._parts.setdefault(parent, []).append((entry, len(inputs)))
                    running = self._sums.get(parent)
                    self._sums[parent] = gi.copy() if running is None else running + gi
                if self.finite_differences:
                    upstream = g if g is not None else tuple(
                        None if x is None else _raw(x) for x in grad_out)
                    item["numeric"] = numeric_check(node, record, i, upstream, gi, self.eps,
                                                    self.max_fd_elements, self.values)
            inputs.append(item)
        entry["inputs"] = inputs
        self.entries.append(entry)

    def _outputs_grads(self, node: Node, grad_out) -> dict:
        """The ``grad_out`` of a multi-output node: its total ``shape`` (the sum of the outputs'
        sizes, as one flat vector) and ``norm`` over the outputs that got a gradient, and
        ``outputs``: per output, its ``shape`` and ``norm`` (None: no gradient reached it)."""
        xp = node.device.xp
        outputs, total = [], 0.0
        for k, (gk, (shape, _)) in enumerate(zip(grad_out, node.out_metas)):
            item = {"output": k, "shape": tuple(shape), "norm": None}
            if gk is not None:
                gk = _raw(gk)
                item["norm"] = _norm(xp, gk)
                total += item["norm"] ** 2
                if self.values:
                    item["value"] = Tensor.wrap(gk.copy(), node.device)
            outputs.append(item)
        size = sum(math.prod(shape) for shape, _ in node.out_metas)
        return {"shape": (size,), "norm": math.sqrt(total), "outputs": outputs}

    def _leaf_name(self, leaf: Tensor) -> str:
        name = self._names.get(id(leaf)) or leaf.name
        if name is None:
            unnamed = sum(1 for label in self._leaf_labels.values() if label.startswith("leaf#"))
            name = f"leaf#{unnamed}"
        return name

    # --- reading ------------------------------------------------------------------------------
    def ids(self) -> dict:
        """``vertex -> label``: nodes by their position in the execution order (``Mul#3``),
        nodes that never ran after them in order of mention, leaves by name."""
        labels = {}
        for index, e in enumerate(self.entries):
            labels.setdefault(e["_node"], f"{e['_node'].name}#{index}")
        n = len(self.entries)
        for e in self.entries:
            for item in e["inputs"]:
                t = item["_target"]
                if t not in labels:
                    if type(t) is Node:
                        labels[t] = f"{t.name}#{n}"
                        n += 1
                    else:
                        labels[t] = self._leaf_labels[t]
        return labels

    def entry_for(self, tensor: Tensor) -> dict:
        """The entry of the op that produced ``tensor`` (its ``grad_out`` is d(root)/d(tensor))."""
        dicts = self.to_dict()
        for entry, d in zip(self.entries, dicts):
            if entry["_node"] is tensor.grad_fn:
                return d
        raise KeyError(f"no traced op produced this tensor (grad_fn={tensor.grad_fn!r})")

    def sums(self) -> list[dict]:
        """Every tensor that received gradients from several consumers: ``target`` (its label),
        ``kind`` ("node" or "leaf"), ``after`` (the index of the entry whose part completed the
        sum), ``parts`` (``source``, ``input``, ``norm``, ``value`` per part), and the sum's
        ``shape``, ``norm`` and ``value`` (with values)."""
        labels = self.ids()
        out = []
        for target, parts in self._parts.items():
            if len(parts) < 2:
                continue
            device = parts[0][0]["_node"].device
            total = self._sums[target]
            summed = {"target": labels[target], "kind": "node" if type(target) is Node
                      else "leaf", "after": max(e["_index"] for e, _ in parts),
                      "parts": [], "shape": tuple(total.shape), "norm": _norm(device.xp, total)}
            for e, k in parts:
                item = e["inputs"][k]
                part = {"source": labels[e["_node"]], "input": item["input"], "norm": item["norm"]}
                if self.values:
                    part["value"] = item["value"]
                summed["parts"].append(part)
            if self.values:
                summed["value"] = Tensor.wrap(total.copy(), device)
            out.append(summed)
        return out

    def to_dict(self) -> list[dict]:
        """The trace as data: one dict per node, in the order backward ran them. Keys: ``index``,
        ``id``, ``op``, ``formula`` (the local derivative), ``forward_formula``, ``module``,
        ``where``, ``params``, ``grad_out``, ``forward`` (``inputs``/``output`` values, with
        ``values`` and where known) and ``inputs`` (one per input that gets a gradient:
        ``input``, ``source``, ``kind``, ``shape``, ``norm``, ``jacobian_shape``, ``value``,
        ``numeric``)."""
        labels = self.ids()
        out = []
        for index, e in enumerate(self.entries):
            node, record = e["_node"], e["_record"]
            d = {"index": index, "id": labels[node], "op": node.name, "formula": formula(node.fn),
                 "forward_formula": full_formula(node.fn).partition("->")[0].strip(),
                 "module": self.module_label(record.module), "where": record.where,
                 "params": dict(record.params), "grad_out": dict(e["grad_out"])}
            if self.values:
                d["forward"] = _forward_values(node, record, labels)
            d["inputs"] = []
            for item in e["inputs"]:
                t = item["_target"]
                public = {k: v for k, v in item.items() if not k.startswith("_")}
                public["source"] = labels[t]
                public["kind"] = "node" if type(t) is Node else "leaf"
                d["inputs"].append(public)
            out.append(d)
        return out

    def table(self, values: bool = False, precision: int = 4) -> str:
        """A printable table: one row per node, one indented row per input gradient, a ``+`` row
        where several gradients to one tensor are summed; with ``values``, one block per node
        with the numbers too (the trace must have been made with ``values=True``)."""
        from .trace_table import table  # noqa: PLC0415 - text formatting, only when printed

        if values and not self.values:
            raise ValueError("trace.table(values=True): this trace kept no values; record them "
                             "with tn.trace(values=True)")
        return table(self, values, precision)


def _tensors_of(params) -> list:
    if hasattr(params, "named_parameters"):
        return [t for _, t in params.named_parameters()]
    items = params.items() if isinstance(params, dict) else params
    return [t for _, t in items]


def _forward_values(node: Node, record: Forward, labels: dict) -> dict:
    """The forward's numbers for :meth:`trace.to_dict`: each positional input (its source and
    value, or a constant) and the output; None where the trace never saw them."""

    def wrap(a):
        return Tensor.wrap(a, node.device) if _is_array(a) else a

    arrays = record.arrays or (None,) * len(node.parents)
    inputs = []
    for i, parent in enumerate(node.parents):
        a = arrays[i] if i < len(arrays) else None
        meta = node.metas[i] if i < len(node.metas) else None
        source = "constant" if meta is None else ("data" if parent is None
                                                   else labels.get(parent, "?"))
        inputs.append({"input": i, "source": source, "value": wrap(a) if meta is not None else a})
    return {"inputs": inputs, "output": wrap(record.out), "traced": record.traced}


# --------------------------------------------------------------------------------------------
# detect_anomaly
# --------------------------------------------------------------------------------------------

class _AnomalyState(threading.local):
    depth = 0  # nested detect_anomaly blocks in this thread
    forward_checks = 0  # how many of them check forward outputs


_anomaly_state = _AnomalyState()


class detect_anomaly:
    """Raise on the first NaN or Inf, in forward or backward, naming the op and your line.

    While active, every op's output is checked; ops remember the file:line of the user code that
    created them (frames inside tinynet are skipped) and their inputs, and every gradient backward
    produces is checked. The error names the op, that file:line, the index of the first bad
    element, and the inputs' shape, min, max, mean and NaN/Inf counts (in backward: the inputs as
    they are now, so a parameter updated in place since forward shows its new values; for ops
    recorded before the block, what the node still holds). Slow: use it to find a bug, then turn
    it off. NumPy's own warnings about the same values are silenced inside the block (the error
    says more).

    Args:
        forward: also check forward outputs (the default). ``forward=False`` checks gradients
            only, for code that makes NaN on purpose and masks it, such as
            ``where(x > 0, log(x), 0)``: its forward has NaN where ``x <= 0``, its gradient not.

    Example:
        >>> with tn.detect_anomaly():
        ...     tn.log(tn.tensor([-1.0]))
        RuntimeError: detect_anomaly: Log produced NaN in its output (forward) ...
    """

    def __init__(self, forward: bool = True):
        self.check_forward = forward

    def __enter__(self) -> Self:
        _anomaly_state.depth += 1
        _anomaly_state.forward_checks += self.check_forward
        if _anomaly_state.depth == 1:
            _add_forward(_check_forward)
            _add_observer(_check_backward)
        self._errstate = backend.host_namespace().errstate(all="ignore")
        self._errstate.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self._errstate.__exit__(*exc)
        _anomaly_state.depth -= 1
        _anomaly_state.forward_checks -= self.check_forward
        if _anomaly_state.depth == 0:
            _remove_forward(_check_forward)
            _remove_observer(_check_backward)
        return False


def _bad_counts(xp, a) -> tuple[int, int]:
    """(NaN count, Inf count) of a float array; (0, 0) for anything else."""
    if getattr(a, "dtype", None) is None or a.dtype.kind not in "fc":
        return 0, 0
    nan = int(xp.sum(xp.isnan(a)))
    return nan, int(xp.sum(xp.isinf(a)))


def _first_bad(xp, a) -> tuple:
    """The index of the first NaN or Inf of ``a``, in C order."""
    flat = int(xp.argmax(~xp.isfinite(a).reshape(-1)))
    return tuple(int(i) for i in backend.host_namespace().unravel_index(flat, a.shape))


def _index_text(index: tuple) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def _value_at(xp, a, index):
    """``a[index]`` when ``a`` is an array of the same shape as the index, else None."""
    if getattr(a, "shape", None) is None or len(a.shape) != len(index):
        return None
    if any(i >= s for i, s in zip(index, a.shape)):
        return None
    return float(a[index]) if a.dtype.kind in "fciub" else None


def _describe(xp, a) -> str:
    if a is None:
        return "not kept (the op saved no copy; run the forward inside detect_anomaly to see it)"
    if getattr(a, "dtype", None) is None:
        return repr(a)
    text = f"shape {tuple(a.shape)} {a.dtype}"
    if a.size and a.dtype.kind in "fciu":
        text += (f", min {float(xp.min(a)):.6g}, max {float(xp.max(a)):.6g}, "
                 f"mean {float(xp.mean(a)):.6g}")
    nan, inf = _bad_counts(xp, a)
    return text + (f", {nan} NaN, {inf} Inf" if nan or inf else ", no NaN/Inf")


def _inputs_text(xp, arrays, index=None) -> str:
    lines = []
    for i, a in enumerate(arrays):
        line = f"    input {i}: {_describe(xp, a)}"
        at = _value_at(xp, a, index) if index is not None else None
        if at is not None:
            line += f"; at {_index_text(index)}: {at:.6g}"
        lines.append(line)
    return "\n".join(lines)


def _what(nan: int, inf: int) -> str:
    return " and ".join(w for w, n in (("NaN", nan), ("Inf", inf)) if n)


def _check_forward(cls, ctx, arrays, out, params) -> None:
    where = _user_location()
    ctx._created = (where, tuple(arrays))
    if not _anomaly_state.forward_checks:
        return
    xp = ctx.device.xp
    if type(out) is tuple:  # several outputs: check each
        for o in out:
            _check_forward_output(cls, xp, arrays, o, where)
        return
    _check_forward_output(cls, xp, arrays, out, where)


def _check_forward_output(cls, xp, arrays, out, where) -> None:
    nan, inf = _bad_counts(xp, out)
    if nan or inf:
        index = _first_bad(xp, out)
        raise RuntimeError(
            f"detect_anomaly: {cls.name} produced {_what(nan, inf)} in its output (forward; "
            f"{nan} NaN, {inf} Inf of {out.size} elements; the first at output"
            f"{_index_text(index)})\n  created at: {where}\n  inputs:\n"
            f"{_inputs_text(xp, arrays, index)}")


def _held_inputs(node: Node) -> list:
    """The inputs of a node recorded before detect_anomaly: leaves and saved values (None for
    the rest; positional constants as they are, when the op saved them)."""
    arrays = [None] * len(node.parents)
    for i, parent in enumerate(node.parents):
        if parent is not None and type(parent) is not Node:
            arrays[i] = parent.data
    if not node._freed:
        for i, a in zip(node._keep_inputs, node._inputs or ()):
            arrays[i] = a
    return arrays


def _check_backward(node: Node, grad_out, grads_in) -> None:
    xp = node.device.xp
    for i, gi in enumerate(grads_in[:len(node.parents)]):
        gi = _raw(gi)
        if gi is None or node.parents[i] is None:
            continue
        nan, inf = _bad_counts(xp, gi)
        if not (nan or inf):
            continue
        index = _first_bad(xp, gi)
        if node._created is None:
            where = "unknown (recorded before detect_anomaly was turned on)"
            arrays = _held_inputs(node)
        else:
            where, arrays = node._created
        g = _raw(grad_out)
        if type(g) is tuple:  # a multi-output node: one upstream gradient per output
            g = next((_raw(x) for x in g if x is not None), None)
        at_g = _value_at(xp, g, index)
        raise RuntimeError(
            f"detect_anomaly: {node.name}.backward returned {_what(nan, inf)} in the gradient for "
            f"input {i} ({nan} NaN, {inf} Inf of {gi.size} elements; the first at "
            f"grad{_index_text(index)})\n  created at: {where}\n"
            f"  local derivative: {formula(node.fn)}\n"
            f"  upstream gradient: {_describe(xp, g)}"
            + (f"; at {_index_text(index)}: {at_g:.6g}" if at_g is not None else "")
            + f"\n  inputs:\n{_inputs_text(xp, arrays, index)}")
