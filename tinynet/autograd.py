"""Reverse-mode autograd: the backward walk over the recorded graph, ``Tensor.backward`` and
``tn.grad``.

How it fits together:

* Forward records the graph (``function.py``): every op's ``Function.apply`` leaves a
  :class:`~tinynet.function.Node` (the op's ``ctx``) as the output's ``grad_fn``, with edges to its
  inputs and the values its backward needs.
* ``Tensor.backward`` / :func:`grad` call :func:`run_backward`, which walks the nodes in reverse
  topological order with an explicit work list (no recursion: a 100,000-op chain is fine), calls
  each op's ``backward``, undoes broadcasting once (:func:`sum_to`), checks every gradient's shape
  and dtype against its input, and accumulates into leaves.
* A node with several outputs (``unbind``, ``split``: forward returned a tuple) collects one
  gradient per output (a list, None where none came) and runs its backward once, after all have
  arrived; a consumer's ``_slots`` says which output each of its inputs is (docs/autograd.md,
  section 17).
* Higher order: every ``backward`` is written once against ``ctx.xp``. In a first-order backward,
  ``ctx.xp`` is the device's array namespace and saved values are raw arrays, so training pays
  nothing for higher-order support. Under ``create_graph=True`` (``ctx.create_graph``) the same
  formula runs with ``ctx.xp`` = :data:`tinynet.ops.namespace.tensor_namespace` and saved inputs
  and outputs as Tensors, so the gradient computation is itself recorded and can be
  differentiated again.

The names of ``function.py`` (``Function``, ``Op``, ``Node``, grad mode) are importable from here
too: ``tinynet.autograd`` is the API of both halves.
"""

from __future__ import annotations

import threading

from . import backend
from .function import (  # noqa: F401 - re-exported: tinynet.autograd is the API of both halves
    Function, Node, Op, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
)
from .tensor import Tensor

# Debug tools (tinynet/debug.py: detect_anomaly, trace) plug in here. Each hook point is None
# while no thread uses it, so the cost is one lookup per op and per backward node; while some
# thread does, it runs the calling thread's own hooks (set_thread_forward_hooks/_observers), so a trace
# in one thread never sees, or slows with checks, another thread's ops.
_anomaly = None  # callable(cls, ctx, arrays, out, params) run on every forward (Function.apply)
_observers = None  # tuple of callables(node, grad_out, grads_in) run after each backward


class _ThreadHooks(threading.local):
    forward = ()  # this thread's forward hooks: hook(cls, ctx, arrays, out, params)
    observers = ()  # this thread's backward observers: observe(node, grad_out, grads_in)


_thread_hooks = _ThreadHooks()
_hook_lock = threading.Lock()
_threads_with = {"forward": 0, "observers": 0}  # how many threads have each kind installed


def _run_thread_forward(cls, ctx, arrays, out, params) -> None:
    for hook in _thread_hooks.forward:
        hook(cls, ctx, arrays, out, params)


def _run_thread_observers(node, grad_out, grads_in) -> None:
    for observe in _thread_hooks.observers:
        observe(node, grad_out, grads_in)


def thread_forward_hooks() -> tuple:
    """The forward hooks installed in this thread."""
    return _thread_hooks.forward


def set_thread_forward_hooks(hooks: tuple) -> None:
    """Install this thread's forward hooks (replacing its previous ones; () for none)."""
    global _anomaly
    with _hook_lock:
        _threads_with["forward"] += bool(hooks) - bool(_thread_hooks.forward)
        _thread_hooks.forward = tuple(hooks)
        _anomaly = _run_thread_forward if _threads_with["forward"] else None


def thread_observers() -> tuple:
    """The backward observers installed in this thread."""
    return _thread_hooks.observers


def set_thread_observers(observers: tuple) -> None:
    """Install this thread's backward observers (replacing its previous ones; () for none)."""
    global _observers
    with _hook_lock:
        _threads_with["observers"] += bool(observers) - bool(_thread_hooks.observers)
        _thread_hooks.observers = tuple(observers)
        _observers = (_run_thread_observers,) if _threads_with["observers"] else None


# --------------------------------------------------------------------------------------------
# The backward walk
# --------------------------------------------------------------------------------------------


def run_backward(roots, root_grads, retain_graph: bool, create_graph: bool, capture=None):
    """Propagate ``root_grads`` from ``roots`` back through the recorded graph.

    Kahn's algorithm, backwards: a vertex (a Node, or a leaf Tensor) runs once every consumer of
    its output has sent its gradient, so it runs once, with the sum.

    With ``capture=None`` (``Tensor.backward``), gradients accumulate into every leaf's ``.grad``.
    Otherwise (``tn.grad``), ``capture`` is a dict whose keys are the vertices (Node or leaf Tensor)
    of the requested inputs; their total gradients are stored in it and no ``.grad`` is touched.
    """
    pending = _count_consumers(roots)  # vertex -> consumers that have not sent their gradient yet
    needed = None if capture is None else _needed_for(capture, pending)
    grads = _seed(roots, root_grads)  # vertex -> the sum of the gradients received so far
    ready = [v for v in grads if pending[v] == 0][::-1]
    owned: dict = {}  # leaf -> True when its pending gradient is an array nobody else holds
    tensor_xp = _tensor_namespace() if create_graph else None

    with set_grad_enabled(create_graph):  # under create_graph, backward itself is recorded
        while ready:
            v = ready.pop()
            g = grads.pop(v, None)
            if needed is not None and v not in needed:
                g = None  # tn.grad: nothing asked for lies below v; don't run its hooks or backward
            if type(v) is not Node:  # a leaf: its total gradient has arrived
                if g is not None:
                    _deliver_to_leaf(v, g, create_graph, capture, owned.pop(v, False))
                continue
            grads_in = None
            if g is not None:
                if v._hooks is not None or v._retained is not None or capture is not None:
                    g = _observe_node_grad(v, g, create_graph, capture)
                if needed is None or needed[v]:
                    grads_in = _call_backward(v, g, tensor_xp)
            slots = v._slots  # inputs that are outputs of multi-output nodes (usually None)
            for i, p in enumerate(v.parents):  # hand each input its gradient; wake the ready ones
                if p is None:
                    continue
                gi = None if grads_in is None else grads_in[i]
                if gi is not None:
                    shape, dtype = v.metas[i]
                    if gi.shape != shape or gi.dtype != dtype or not shape:
                        gi = _fit_to_input(v, i, gi)
                    if slots is not None and i in slots:
                        _add_to_output(grads, p, slots[i], gi, shape, v.device)
                    elif p in grads:
                        total = grads[p] + gi
                        grads[p] = total if shape else _as_array(total, v.device)
                        owned[p] = True  # a sum the engine just made
                    else:
                        grads[p] = gi
                        if type(p) is not Node:  # may a leaf keep this array without a copy?
                            owned[p] = v.fn.fresh_grads and gi is not g \
                                and getattr(gi, "base", 0) is None
                pending[p] -= 1
                if pending[p] == 0:
                    ready.append(p)
            if not retain_graph:
                v.release()


def _add_to_output(grads: dict, node: Node, k: int, gi, shape: tuple, device) -> None:
    """Add ``gi`` to the gradient of output ``k`` of the multi-output ``node``: its entry in
    ``grads`` is a list with one gradient per output (None until one arrives)."""
    per_output = grads.get(node)
    if per_output is None:
        per_output = grads[node] = [None] * node.n_outputs
    total = per_output[k]
    if total is None:
        per_output[k] = gi
    else:
        total = total + gi
        per_output[k] = total if shape else _as_array(total, device)


def _count_consumers(roots, check_freed: bool = True) -> dict:
    """For every vertex reachable from ``roots``: how many edges lead into it from the graph
    (``check_freed=False``: also through freed nodes, for tools that only read the structure)."""
    pending: dict = {}
    stack = []
    for t in roots:
        v = t.grad_fn if t.grad_fn is not None else t
        if v not in pending:
            pending[v] = 0
            stack.append(v)
    while stack:
        v = stack.pop()
        if type(v) is Node:
            if check_freed:
                v.check_not_freed()
            for p in v.parents:
                if p is None:
                    continue
                if p in pending:
                    pending[p] += 1
                else:
                    pending[p] = 1
                    stack.append(p)
    return pending


def _seed(roots, root_grads) -> dict:
    grads: dict = {}
    for t, g in zip(roots, root_grads):
        v = t.grad_fn if t.grad_fn is not None else t
        if t._output_nr is not None and v is t.grad_fn:  # an output of a multi-output node
            _add_to_output(grads, v, t._output_nr, g, t._data.shape, t.device)
        else:
            grads[v] = _as_array(grads[v] + g, t.device) if v in grads else g
    return grads


def _needed_for(capture: dict, pending: dict) -> dict:
    """For ``tn.grad``: the vertices that are requested inputs or lie above one. Maps each to
    whether its backward must run (True when a requested input lies strictly below it)."""
    consumers: dict = {}
    for v in pending:
        if type(v) is Node:
            for p in v.parents:
                if p is not None:
                    consumers.setdefault(p, []).append(v)
    needed = {}
    for k in capture:  # a key is a vertex, or (node, output index) for an output of a node
        v = k[0] if type(k) is tuple else k
        if v in pending:
            needed[v] = False
    stack = list(needed)
    while stack:
        for c in consumers.get(stack.pop(), ()):
            if c not in needed:
                stack.append(c)
            needed[c] = True
    return needed


def _observe_node_grad(v: Node, g, create_graph: bool, capture):
    """A non-leaf's total gradient: run its hooks, keep it for retain_grad(), capture it for
    tn.grad. Returns the gradient to propagate (a hook may replace it)."""
    if v.n_outputs is not None:
        return _observe_outputs_grads(v, g, create_graph, capture)
    if v._hooks:
        g = _call_hooks(v._hooks, g, create_graph, v.device)
    if capture is None:
        if v._retained is not None:
            _retain(v._retained, g, create_graph, v.device)
    elif v in capture:
        capture[v] = g
    return g


def _observe_outputs_grads(v: Node, grads: list, create_graph: bool, capture) -> list:
    """:func:`_observe_node_grad` for a multi-output node: per output that got a gradient."""
    hooks, retained = v._hooks or {}, v._retained or {}
    for k, g in enumerate(grads):
        if g is None:
            continue
        if hooks.get(k):
            g = grads[k] = _call_hooks(hooks[k], g, create_graph, v.device)
        if capture is None:
            if k in retained:
                _retain(retained[k], g, create_graph, v.device)
        elif (v, k) in capture:
            capture[(v, k)] = g
    return grads


def _call_backward(v: Node, g, tensor_xp):
    """Run ``v``'s backward (on Tensors, with the tensor namespace, under create_graph); check it
    returned one gradient per positional input."""
    if tensor_xp is not None:
        v.create_graph = True
        v.xp = tensor_xp.on(v.device)  # creation functions need the device
        try:
            # a multi-output node's gradients are a list: one per output, or None
            out = v.fn.backward(v, *g) if type(g) is list else v.fn.backward(v, g)
        finally:
            v.create_graph = False
            v.xp = v.device.xp
    elif type(g) is list:
        out = v.fn.backward(v, *g)
    else:
        out = v.fn.backward(v, g)
    if type(out) is not tuple:
        out = (out,)
    if len(out) != len(v.parents) and (len(out) < len(v.parents)
                                       or any(e is not None for e in out[len(v.parents):])):
        raise RuntimeError(f"{v.name}.backward returned {len(out)} gradient(s) for "
                           f"{len(v.parents)} input(s); return one per positional input (None "
                           "for an input that gets no gradient)")
    if _observers is not None:
        for observe in _observers:
            observe(v, tuple(g) if type(g) is list else g, out)
    return out


def sum_to(grad, shape: tuple, op: str = "?"):
    """Undo broadcasting: sum ``grad`` down to ``shape``. Works on arrays and on Tensors."""
    gshape = grad.shape
    if gshape == shape:
        return grad
    lead = len(gshape) - len(shape)
    axes = list(range(lead))
    ok = lead >= 0
    for i, s in enumerate(shape if ok else ()):
        gs = gshape[i + lead]
        if s == 1:
            if gs != 1:
                axes.append(i + lead)
        elif s != gs:
            ok = False
    if not ok:
        raise RuntimeError(f"{op}.backward: gradient of shape {tuple(gshape)} cannot be summed "
                           f"to its input's shape {shape}")
    grad = grad.sum(axis=tuple(axes), keepdims=True)
    return grad.reshape(shape) if lead else grad


def _fit_to_input(v: Node, i: int, gi):
    """Undo broadcasting, then insist on the input's exact shape and dtype (naming the op); a
    0-d gradient is a 0-d array, never a NumPy scalar."""
    shape, dtype = v.metas[i]
    if gi.shape != shape:
        gi = sum_to(gi, shape, v.name)
    if gi.dtype != dtype:
        raise RuntimeError(f"{v.name}.backward: gradient for input {i} has dtype {gi.dtype}, "
                           f"expected {dtype} (the input's dtype)")
    return gi if shape else _as_array(gi, v.device)


def _as_array(g, device):
    """``g`` as an array of ``device`` (or the Tensor it is, under create_graph): NumPy returns
    scalars for 0-d results, and a gradient must stay an array (``x.grad.zero_()``)."""
    if type(g) is device.array_type or isinstance(g, Tensor):
        return g
    return device.xp.asarray(g)


def _tensor_namespace():
    from .ops.namespace import tensor_namespace  # noqa: PLC0415 - ops import this module

    return tensor_namespace


def _call_hooks(hooks, grad, create_graph, device):
    """Run tensor hooks: each sees the gradient as a Tensor and may return a replacement."""
    g = grad if create_graph else Tensor._make(grad, device)
    for hook in hooks:
        new = hook(g)
        if new is not None:
            if not isinstance(new, Tensor) or new.shape != g.shape or new.dtype != g.dtype \
                    or new.device is not g.device:
                raise RuntimeError(f"a gradient hook must return None or a Tensor of shape "
                                   f"{tuple(g.shape)}, dtype {g.dtype} on {g.device}; got {new!r}")
            g = new
    return g if create_graph else g._data


def _deliver_to_leaf(leaf: Tensor, g, create_graph: bool, capture, owned: bool = False):
    if leaf._hooks:
        g = _call_hooks(leaf._hooks, g, create_graph, leaf._device)
        owned = False  # a hook may hand back an array it keeps
    if capture is not None:
        if leaf in capture:
            capture[leaf] = g
        return
    if create_graph:
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif leaf.grad is None:
        # .grad must be an array nobody else holds: users and optimizers modify it in place. A
        # gradient may be shared (``a + b`` sends the same array to both inputs; reshape sends a
        # view); only an array the engine knows to be fresh is stored without a copy.
        leaf.grad = Tensor._make(g if owned else g.copy(), leaf._device)
    elif leaf.grad.requires_grad:
        leaf.grad = Tensor._make(_as_array(leaf.grad._data + g, leaf._device), leaf._device)
    else:
        leaf.grad._data += g


def _retain(ref, g, create_graph: bool, device):
    t = ref()
    if t is None:
        return
    if not create_graph:
        g = Tensor._make(g.copy(), device)
    t.grad = g if t.grad is None else t.grad + g


# --------------------------------------------------------------------------------------------
# Entry points: Tensor.backward and tn.grad
# --------------------------------------------------------------------------------------------


def _root_grads(outputs, grad_outputs, create_graph):
    """Gradients to start from: ones for scalars, else the given ones (checked)."""
    grads = []
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; got an output of "
                    f"shape {tuple(out.shape)}: pass a gradient of that shape (e.g. "
                    f"backward(tn.ones_like(y)))")
            # a fresh array where the gradient may become a user-visible .grad (create_graph)
            arr = (out._device.xp.ones(out._data.shape, dtype=out._data.dtype) if create_graph
                   else _ones_seed(out._device, out._data.shape, out._data.dtype))
        else:
            if isinstance(g, Tensor):
                if g._device is not out._device:
                    raise RuntimeError(f"backward: gradient on {g.device}, output on {out.device}")
                if create_graph:
                    grads.append(g)
                    continue
                arr = g._data
            else:
                arr = _gradient_array(g, out)
            if arr.shape != out._data.shape:
                raise RuntimeError(f"backward: gradient shape {tuple(arr.shape)} does not match "
                                   f"the output shape {tuple(out.shape)}")
            arr = arr.astype(out._data.dtype, copy=False)
        grads.append(Tensor._make(arr, out._device) if create_graph else arr)
    return grads


def _gradient_array(g, out: Tensor):
    """A gradient given as an array of the output's device, a list or a number: as an array of
    the output's dtype (a host array for a device output must be moved explicitly)."""
    try:
        device = backend.device_of(g)
    except TypeError:
        device = None  # a list or a number: host data, converted as tn.tensor would
    if device is not None and device is not out.device:
        raise RuntimeError(f"backward: gradient is an array on {device}, the output is on "
                           f"{out.device}; move it explicitly with tn.tensor(g, device=...)")
    try:
        return out.device.xp.asarray(g, dtype=out._data.dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"backward: the gradient must be a Tensor, an array or numbers, got "
                        f"{type(g).__name__}: {exc}") from None


def _per_output(grads, outputs: list, single: bool, what: str) -> list:
    """One gradient per output. For a single output (``y.backward(g)``) ``grads`` is its gradient
    whatever it is (a Tensor, an array, a list of numbers); for a sequence of outputs it is a
    sequence of as many gradients (or None)."""
    if grads is None:
        return [None] * len(outputs)
    if single:
        return [grads]
    if isinstance(grads, Tensor) or not isinstance(grads, (list, tuple)):
        grads = [grads]
    if len(grads) != len(outputs):
        raise RuntimeError(f"{what}: got {len(grads)} gradient(s) for {len(outputs)} output(s); "
                           "give one per output (None for a scalar output)")
    return list(grads)


_SEEDS: dict = {}  # (device, shape, dtype) -> the ones that start backward() from a scalar


def _ones_seed(device, shape: tuple, dtype):
    """The implicit gradient of a scalar output, ones, made once per device and dtype and shared
    (one launch less per step on a GPU). Backward formulas never write into their ``grad_out``
    (principle 3); on the CPU and the stand-in the shared array is read-only, so one that did
    would fail in the tests."""
    key = (device, shape, dtype)
    seed = _SEEDS.get(key)
    if seed is None:
        seed = device.xp.ones(shape, dtype=dtype)
        if device.type != "cuda":
            seed.flags.writeable = False
        _SEEDS[key] = seed
    return seed


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad``. See ``Tensor.backward``."""
    single = isinstance(tensors, Tensor)
    tensors = [tensors] if single else list(tensors)
    grad_tensors = _per_output(grad_tensors, tensors, single, "backward")
    for t in tensors:
        if not t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn: nothing to differentiate (did you build it under no_grad "
                               "or from tensors without requires_grad=True?)")
    retain_graph = create_graph if retain_graph is None else retain_graph
    roots = _root_grads(tensors, grad_tensors, create_graph)
    run_backward(tensors, roots, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated into .grad).

    Follows ``torch.autograd.grad``: with ``create_graph=True`` the result is itself differentiable
    (gradients of gradients, Hessian-vector products). An input the outputs do not depend on raises
    unless ``allow_unused=True`` (then its gradient is ``None``) or ``materialize_grads=True`` (then
    it is zeros).

    Example:
        >>> x = tn.tensor(3.0, requires_grad=True)
        >>> (dx,) = tn.grad(x ** 3, x, create_graph=True)   # 3x^2 = 27
        >>> (dxx,) = tn.grad(dx, x)                          # 6x = 18
    """
    single_output = isinstance(outputs, Tensor)
    outputs = [outputs] if single_output else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    grad_outputs = _per_output(grad_outputs, outputs, single_output, "tn.grad")
    if allow_unused is None:
        allow_unused = materialize_grads
    for t in outputs:
        if not t.requires_grad:
            raise RuntimeError("tn.grad: an output does not require grad and has no grad_fn")
    keys = []
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("tn.grad: one of the differentiated Tensors does not require grad")
        if t._output_nr is not None and t.grad_fn is not None:
            keys.append((t.grad_fn, t._output_nr))  # one output of a multi-output node
        else:
            keys.append(t.grad_fn if t.grad_fn is not None else t)
    capture = {k: None for k in keys}
    retain_graph = create_graph if retain_graph is None else retain_graph
    roots = _root_grads(outputs, grad_outputs, create_graph)
    run_backward(outputs, roots, retain_graph, create_graph, capture=capture)
    result = []
    for t, k in zip(inputs, keys):
        g = capture[k]
        if g is None:
            if materialize_grads:
                g = t.device.xp.zeros(t._data.shape, dtype=t._data.dtype)
            elif not allow_unused:
                raise RuntimeError("tn.grad: one of the differentiated Tensors appears to not have "
                                   "been used in the graph; set allow_unused=True if this is the "
                                   "desired behaviour")
            else:
                result.append(None)
                continue
        if not isinstance(g, Tensor):
            g = Tensor._make(g, t._device)
        result.append(g)
    return tuple(result)
