"""Seeing backprop: ``tn.trace()`` records the backward walk, ``tn.detect_anomaly()`` finds NaN/Inf.

Both plug into two hook points of ``tinynet/autograd.py`` that are ``None`` while off
(``_anomaly``, run by every op's forward, and ``_observers``, after every backward node), so
normal training pays one lookup per op and per backward node, nothing more. Both are per thread,
like grad mode: a trace records, and detect_anomaly checks, only the thread that entered it.

Example:
    >>> with tn.trace() as t:
    ...     loss.backward()
    >>> print(t.table())          # one row per op, in the order backward ran them
    >>> with tn.detect_anomaly():
    ...     loss = model(x).log().mean()   # RuntimeError naming the op, your file:line, inputs
    ...     loss.backward()
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Self

from . import autograd
from .autograd import Node, sum_to
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


def formula(fn) -> str:
    """The local derivative of an op: the "-> gradient" half of its docstring's first line (the
    first paragraph, joined: a long formula wraps onto the next line)."""
    line = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
    if not line:
        return "?"
    _, arrow, grad = line.partition("->")
    return grad.strip() if arrow else line


def _add_observer(observer) -> None:
    """Observe this thread's backward walks (hooks are per thread: see autograd.py)."""
    autograd.set_thread_observers(autograd.thread_observers() + (observer,))


def _remove_observer(observer) -> None:
    autograd.set_thread_observers(tuple(o for o in autograd.thread_observers()
                                        if o is not observer))


# --------------------------------------------------------------------------------------------
# trace
# --------------------------------------------------------------------------------------------


class trace:
    """Record every op that backward runs while the block is active, in the order it runs them.

    For each node: the op name, its local derivative formula, the upstream gradient's shape and
    norm, and the gradient it sends to each input (shape and norm, after broadcasting is undone).

    Args:
        values: also keep a copy of every gradient (as Tensors under ``"value"`` in
            :meth:`to_dict`); off by default since it holds one array per edge.

    Example:
        >>> with tn.trace() as t:
        ...     loss.backward()
        >>> print(t.table())
        >>> t.to_dict()[0]["op"]     # the op backward ran first (the one that made ``loss``)
    """

    def __init__(self, values: bool = False):
        self.values = values
        self.entries: list[dict] = []
        self._labels: dict = {}  # Node -> "Op#k", in order of first mention
        self._hook = self._observe  # one bound method: each access would make a new object

    def __enter__(self) -> Self:
        _add_observer(self._hook)
        return self

    def __exit__(self, *exc) -> bool:
        _remove_observer(self._hook)
        return False

    def _label(self, node: Node) -> str:
        label = self._labels.get(node)
        if label is None:
            label = self._labels[node] = f"{node.name}#{len(self._labels)}"
        return label

    def _observe(self, node: Node, grad_out, grads_in) -> None:
        xp = node.device.xp
        g = _raw(grad_out)
        inputs = []
        for i, parent in enumerate(node.parents):
            if parent is None:
                continue
            source = self._label(parent) if type(parent) is Node else "leaf"
            gi = _raw(grads_in[i]) if i < len(grads_in) else None
            item = {"input": i, "source": source, "shape": None, "norm": None}
            if gi is not None:
                gi = sum_to(gi, node.metas[i][0], node.name)  # what the input really receives
                item["shape"] = tuple(gi.shape)
                item["norm"] = _norm(xp, gi)
                if self.values:
                    item["value"] = Tensor.wrap(gi.copy(), node.device)
            inputs.append(item)
        entry = {"index": len(self.entries), "id": self._label(node), "op": node.name,
                 "formula": formula(node.fn),
                 "grad_out": {"shape": tuple(g.shape), "norm": _norm(xp, g)}, "inputs": inputs}
        if self.values:
            entry["grad_out"]["value"] = Tensor.wrap(g.copy(), node.device)
        entry["_node"] = node
        self.entries.append(entry)

    def entry_for(self, tensor: Tensor) -> dict:
        """The entry of the op that produced ``tensor`` (its ``grad_out`` is d(root)/d(tensor))."""
        for entry in self.entries:
            if entry["_node"] is tensor.grad_fn:
                return _public(entry)
        raise KeyError(f"no traced op produced this tensor (grad_fn={tensor.grad_fn!r})")

    def to_dict(self) -> list[dict]:
        """The trace as data: one dict per node, in the order backward ran them."""
        return [_public(e) for e in self.entries]

    def table(self) -> str:
        """A printable table, one row per node plus one indented row per input gradient."""
        rows = [("#", "op", "grad_out shape", "|grad_out|", "local derivative / -> input")]
        for e in self.entries:
            go = e["grad_out"]
            rows.append((str(e["index"]), e["id"], str(go["shape"]), f"{go['norm']:.4g}",
                         e["formula"]))
            for item in e["inputs"]:
                grad = ("no gradient" if item["norm"] is None
                        else f"{item['shape']} |g|={item['norm']:.4g}")
                arrow = f"  -> input {item['input']} ({item['source']}): {grad}"
                rows.append(("", "", "", "", arrow))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
        return "\n".join(line.rstrip() for line in lines)


def _public(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if not k.startswith("_")}


# --------------------------------------------------------------------------------------------
# detect_anomaly
# --------------------------------------------------------------------------------------------

class _AnomalyDepth(threading.local):
    value = 0  # nested detect_anomaly blocks in this thread


_anomaly_depth = _AnomalyDepth()


class detect_anomaly:
    """Raise on the first NaN or Inf, in forward or backward, naming the op and your line.

    While active, every op's output is checked; ops remember the file:line of the user code that
    created them (frames inside tinynet are skipped) and their inputs, and every gradient backward
    produces is checked. The error names the op, that file:line and the inputs' shape, min, max,
    mean and NaN/Inf counts (in backward: the inputs as they are now, so a parameter updated in
    place since forward shows its new values). Slow: use it to find a bug, then turn it off.

    Example:
        >>> with tn.detect_anomaly():
        ...     tn.log(tn.tensor([-1.0]))
        RuntimeError: detect_anomaly: Log produced NaN in its output (forward) ...
    """

    def __enter__(self) -> Self:
        _anomaly_depth.value += 1
        if _anomaly_depth.value == 1:
            autograd.set_thread_anomaly(_check_forward)
            _add_observer(_check_backward)
        return self

    def __exit__(self, *exc) -> bool:
        _anomaly_depth.value -= 1
        if _anomaly_depth.value == 0:
            autograd.set_thread_anomaly(None)
            _remove_observer(_check_backward)
        return False


def _user_location() -> str:
    """file:line of the innermost frame outside the tinynet package (the user's call)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "unknown"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _bad_counts(xp, a) -> tuple[int, int]:
    """(NaN count, Inf count) of a float array; (0, 0) for anything else."""
    if getattr(a, "dtype", None) is None or a.dtype.kind not in "fc":
        return 0, 0
    nan = int(xp.sum(xp.isnan(a)))
    return nan, int(xp.sum(xp.isinf(a)))


def _describe(xp, a) -> str:
    if getattr(a, "dtype", None) is None:
        return repr(a)
    text = f"shape {tuple(a.shape)} {a.dtype}"
    if a.size and a.dtype.kind in "fciu":
        text += (f", min {float(xp.min(a)):.6g}, max {float(xp.max(a)):.6g}, "
                 f"mean {float(xp.mean(a)):.6g}")
    nan, inf = _bad_counts(xp, a)
    return text + (f", {nan} NaN, {inf} Inf" if nan or inf else ", no NaN/Inf")


def _inputs_text(xp, arrays) -> str:
    return "\n".join(f"    input {i}: {_describe(xp, a)}" for i, a in enumerate(arrays))


def _what(nan: int, inf: int) -> str:
    return " and ".join(w for w, n in (("NaN", nan), ("Inf", inf)) if n)


def _check_forward(cls, ctx, arrays, out) -> None:
    where = _user_location()
    ctx._created = (where, tuple(arrays))
    xp = ctx.device.xp
    nan, inf = _bad_counts(xp, out)
    if nan or inf:
        raise RuntimeError(
            f"detect_anomaly: {cls.name} produced {_what(nan, inf)} in its output (forward; "
            f"{nan} NaN, {inf} Inf of {out.size} elements)\n  created at: {where}\n  inputs:\n"
            f"{_inputs_text(xp, arrays)}")


def _check_backward(node: Node, grad_out, grads_in) -> None:
    xp = node.device.xp
    for i, gi in enumerate(grads_in[:len(node.parents)]):
        gi = _raw(gi)
        if gi is None or node.parents[i] is None:
            continue
        nan, inf = _bad_counts(xp, gi)
        if not (nan or inf):
            continue
        if node._created is None:
            where, inputs = "unknown (recorded before detect_anomaly was turned on)", "    ?"
        else:
            where, arrays = node._created
            inputs = _inputs_text(xp, arrays)
        g = _raw(grad_out)
        raise RuntimeError(
            f"detect_anomaly: {node.name}.backward returned {_what(nan, inf)} in the gradient for "
            f"input {i} ({nan} NaN, {inf} Inf of {gi.size} elements)\n  created at: {where}\n"
            f"  local derivative: {formula(node.fn)}\n"
            f"  upstream gradient: {_describe(xp, g)}\n  inputs:\n{inputs}")
