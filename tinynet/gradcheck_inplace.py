"""In-place and aliasing checks for gradcheck: bugs a numerical comparison alone lets through.

A backward that does ``grad_out *= 3`` returns the right numbers, so central differences agree
with it, yet the engine hands one gradient array to several consumers (``a + b`` sends the same
array to both) and the others now read a tripled gradient. A forward that writes to its input
makes every later evaluation of ``fn`` see other inputs, which a numerical check reports as a
baffling "numeric -1.2e8". So before comparing numbers, gradcheck runs ``fn`` once forward and
once backward under watch (MyGrad's test wrappers check the same things):

* forward: ``fn``'s inputs are unchanged, checked after every op through the engine's forward
  hook (this thread's forward hooks, beside ``detect_anomaly``'s), so the message names the op;
* backward: every node leaves the upstream gradient it receives, and ``fn``'s inputs, unchanged,
  checked after each node through the engine's backward observers (this thread's);
* ``.grad``: what backward stores in an input's ``.grad`` shares memory with no input, no
  upstream gradient and no other input's ``.grad`` (an optimizer updates ``.grad`` in place).

The ``.grad`` of every leaf in the graph is restored afterwards: the check leaves no trace.
"""

from __future__ import annotations

from contextlib import contextmanager

from . import autograd, backend
from .autograd import Node, backward, enable_grad
from .gradcheck_report import GradcheckError, Labels, element, numel, unravel
from .tensor import Tensor

UPSTREAM_ADVICE = (
    "A backward must return new arrays (grad_out * 3, not grad_out *= 3): the engine hands one "
    "gradient array to several consumers (a + b sends the same array to both), so an in-place "
    "change corrupts the gradients of other inputs.")
INPUT_ADVICE = (
    "Ops must leave their inputs as they are (y = x * 2, not x *= 2): the caller's data changes, "
    "and gradcheck, like any caller, evaluates fn again on the same inputs.")


def _raw(a):
    return a._data if isinstance(a, Tensor) else a


def _xp(a):
    """The array namespace of ``a``; NumPy for the NumPy scalars a backward may return for 0-d
    tensors."""
    try:
        return backend.device_of(a).xp
    except TypeError:
        return backend.host_namespace()


def _same(a, b, xp=None) -> bool:
    xp = _xp(a) if xp is None else xp
    if bool(xp.array_equal(a, b)):  # the common case, and the cheap test
        return True
    return a.dtype.kind in "fc" and bool(xp.array_equal(a, b, equal_nan=True))


def _change(name: str, before, after) -> str:
    """``x[0, 1] was 1.5, is 3.0 (2 of 6 elements changed)`` (host copies of both)."""
    host = backend.host_namespace()
    a, b = _host(before), _host(after)
    if a.shape != b.shape:
        return f"{name} changed shape from {a.shape} to {b.shape}"
    diff = ~((a == b) | (host.isnan(a) & host.isnan(b))) if a.dtype.kind in "fc" else a != b
    first = unravel(int(host.flatnonzero(diff)[0]), a.shape)
    return (f"{element(name, first)} was {a[first].item()!r}, is {b[first].item()!r} "
            f"({int(diff.sum())} of {diff.size} elements changed)")


def _host(a):
    xp = _xp(a)
    if xp is backend.host_namespace():
        return backend.host_namespace().asarray(a)
    return backend.transfer(a, backend.device_of(a), backend.Device("cpu"))


class _Inputs:
    """Copies of ``fn``'s tensor inputs, to tell whether anything wrote to them."""

    def __init__(self, inputs, labels: Labels):
        self.labels = labels
        self.kept = [(i, t, t._data, t._data.copy()) for i, t in enumerate(inputs)
                     if isinstance(t, Tensor)]

    def check(self, culprit) -> None:
        """Raise naming ``culprit`` (a string, or a callable making it: only a failure needs it)
        if an input changed."""
        for i, t, data, copy in self.kept:
            if t._data is not data or not _same(data, copy, t._device.xp):
                culprit = culprit() if callable(culprit) else culprit
                raise GradcheckError(
                    f"{self.labels.prefix()}: {culprit} modified {self.labels.input(i, t)} in "
                    f"place: {_change(self.labels.inputs[i], copy, t._data)}. {INPUT_ADVICE}",
                    "inplace")


@contextmanager
def _hooked(kind: str, hook):
    """Add ``hook`` to this thread's ``"forward"`` hooks or backward ``"observers"`` (autograd's
    plug points, shared with trace and detect_anomaly) for the block."""
    get, put = ((autograd.thread_forward_hooks, autograd.set_thread_forward_hooks)
                if kind == "forward" else
                (autograd.thread_observers, autograd.set_thread_observers))
    previous = get()
    put(previous + (hook,))
    try:
        yield
    finally:
        put(previous)


def watched_forward(fn, inputs, labels: Labels):
    """``fn(*inputs)`` with the graph recorded, failing as soon as an op writes to an input."""
    kept = _Inputs(inputs, labels)

    def after_op(cls, *_):
        kept.check(lambda: f"{cls.__name__}.forward")

    with enable_grad(), _hooked("forward", after_op):
        outputs = fn(*inputs)
    kept.check(lambda: f"{labels.function} (outside any tinynet op: a write to .data or .numpy())")
    return outputs


class _Upstream:
    """Backward observer: copies each gradient array when it is made; the node it goes to must
    leave it as it was."""

    def __init__(self, seeds, kept: _Inputs, labels: Labels):
        self.kept, self.labels = kept, labels
        self.copies: dict = {}
        for s in seeds:
            self._keep(s)

    def _keep(self, array) -> None:
        self.copies[id(array)] = (array, array.copy())

    def __call__(self, node: Node, grad_out, grads_in) -> None:
        g = _raw(grad_out)
        kept = self.copies.get(id(g))
        if kept is not None and kept[0] is g and not _same(g, kept[1]):
            raise GradcheckError(
                f"{self.labels.prefix()}: {node.name}.backward modified its upstream gradient "
                f"in place: {_change('grad_out', kept[1], g)}. {UPSTREAM_ADVICE}", "inplace")
        self.kept.check(lambda: f"{node.name}.backward")
        for gi in grads_in:
            if gi is not None:
                self._keep(_raw(gi))


def graph(outputs) -> tuple[list[Node], list[Tensor]]:
    """The nodes and the leaf tensors of the graph behind ``outputs`` (an iterative walk)."""
    nodes, leaves, seen = [], [], set()
    stack = [o.grad_fn if o.grad_fn is not None else o for o in outputs]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, Tensor):
            leaves.append(v)
        else:
            nodes.append(v)
            stack.extend(p for p in v.parents if p is not None)
    return nodes, leaves


def _pattern(shape):
    """Upstream values for the watched backward: nonzero, of both signs, not all equal (so that
    ``g *= 3``, ``abs(g, out=g)`` or ``g[...] = 1`` all change them), and cheaper than an RNG."""
    host = backend.host_namespace()
    k = host.arange(numel(shape), dtype="float64").reshape(shape)
    return (0.5 + 0.25 * (k % 5)) * (1 - 2 * (k % 2))


def watched_backward(outputs, inputs, checked, labels: Labels) -> None:
    """One backward from fixed upstream gradients with every node watched, then the ``.grad``
    aliasing checks. The graph is retained (the analytic Jacobian reuses it)."""
    live = [o for o in outputs if o.requires_grad]
    if not live:
        return
    seeds = [Tensor(_pattern(o.shape), dtype=o.dtype, device=o.device) for o in live]
    seed_copies = [s._data.copy() for s in seeds]
    kept = _Inputs(inputs, labels)
    _, leaves = graph(live)
    saved = [leaf.grad for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    try:
        with _hooked("observers", _Upstream([s._data for s in seeds], kept, labels)):
            backward(live, seeds, retain_graph=True)
        kept.check("backward")
        for s, copy in zip(seeds, seed_copies):
            if not _same(s._data, copy):
                raise GradcheckError(
                    f"{labels.prefix()}: backward modified the upstream gradient it was given in "
                    f"place: {_change('grad_out', copy, s._data)}. {UPSTREAM_ADVICE}", "inplace")
        _check_aliasing(inputs, checked, seeds, labels)
    finally:
        for leaf, grad in zip(leaves, saved):
            leaf.grad = grad


def _check_aliasing(inputs, checked, seeds, labels: Labels) -> None:
    """No input's ``.grad`` may share memory with an input, an upstream gradient or another
    input's ``.grad``: an optimizer or ``zero_grad`` writing to it would change them too."""
    # (array, what it is): names are made only for a failure (inspect.signature is not free)
    others = [(t._data, lambda i=i: labels.input(i)) for i, t in enumerate(inputs)
              if isinstance(t, Tensor)]
    others += [(s._data, lambda: "the upstream gradient given to backward") for s in seeds]
    for i in checked:
        x = inputs[i]
        if x.grad_fn is not None or x.grad is None:
            continue  # a non-leaf input keeps no .grad
        g = x.grad._data
        if not isinstance(g, x.device.array_type):
            continue  # a NumPy scalar (0-d gradients may come as one) shares no memory
        for array, what in others:
            if isinstance(array, x.device.array_type) and bool(_xp(g).shares_memory(g, array)):
                name = labels.inputs[i]
                raise GradcheckError(
                    f"{labels.prefix()}: the gradient backward stored in {name}.grad shares "
                    f"memory with {what()}: an optimizer step or zero_grad() writing to "
                    f"{name}.grad would change it too. A backward must not return an input or "
                    f"a saved array itself; return a new array (or let the engine copy it).",
                    "inplace")
        others.append((g, lambda i=i: f"{labels.inputs[i]}.grad"))


__all__ = ["graph", "watched_backward", "watched_forward"]
