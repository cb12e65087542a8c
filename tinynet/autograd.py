"""Reverse-mode autograd: the recorded graph, ``Function``, grad mode and the backward walk.

How it fits together:

* ``Function.apply`` runs an op's ``forward`` on raw backend arrays and, when grad mode is on and an
  input requires grad, records a :class:`Node`: the op's ``ctx``, holding what ``backward`` needs.
* ``Tensor.backward`` / :func:`grad` call :func:`run_backward`, which walks the nodes in reverse
  topological order with an explicit work list (no recursion: a 100,000-op chain is fine), calls
  each op's ``backward``, undoes broadcasting once (:func:`sum_to`), checks every gradient's shape
  and dtype against its input, and accumulates into leaves.
* Higher order: every ``backward`` is written once against ``ctx.xp``. In a first-order backward,
  ``ctx.xp`` is the device's array namespace and ``ctx.saved_tensors`` are raw arrays, so training
  pays nothing for higher-order support. Under ``create_graph=True`` the same formula runs with
  ``ctx.xp`` = :class:`tinynet.ops.namespace.TensorNamespace` and saved values as Tensors, so the
  gradient computation is itself recorded and can be differentiated again.

Read ``ops/elementwise.py`` next for what an op looks like.
"""

from __future__ import annotations

import threading

from .tensor import Tensor, _plain

# Debug tools (tinynet/debug.py) plug in here; None when off, so the cost is one global lookup.
_anomaly = None  # callable(cls, ctx, arrays, out) run on every forward output (detect_anomaly)
_observers = None  # tuple of callables(node, grad_out, grads_in) run after each backward (trace)

# --------------------------------------------------------------------------------------------
# Grad mode
# --------------------------------------------------------------------------------------------


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


class set_grad_enabled:
    """Turn graph recording on or off; as a context manager, restore the old mode on exit."""

    def __init__(self, mode: bool):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False


class no_grad:
    """Context manager and decorator: ops inside record nothing. The mode is restored even if the
    block raises.

    Example:
        >>> with tn.no_grad():
        ...     y = model(x)      # y.requires_grad is False, no graph is kept
    """

    _mode = False

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False

    def __call__(self, func):
        def wrapper(*args, **kwargs):
            with type(self)():
                return func(*args, **kwargs)

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        wrapper.__wrapped__ = func
        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator: record the graph inside, even within ``no_grad``."""

    _mode = True


# --------------------------------------------------------------------------------------------
# The graph node (an op's ctx) and Function
# --------------------------------------------------------------------------------------------

class Node:
    """One recorded application of an op. It is the ``ctx`` that ``forward`` and ``backward`` share.

    Attributes an op may use: ``ctx.xp`` (array namespace), ``ctx.needs_input_grad`` (one bool per
    positional input), ``ctx.save_for_backward(*arrays)`` / ``ctx.saved_tensors``, and any
    attribute it sets itself (``ctx.axis = ...``). The engine uses ``fn``, ``parents`` (one entry
    per positional input: the parent Node, the leaf Tensor, or None) and ``metas`` (input shape and
    dtype).
    """

    # Defaults live on the class, so recording an op sets only what differs (this is the hot path).
    parents = ()
    metas = ()
    needs_input_grad = ()
    n_args = 0
    _to_save = ()
    _saved = ()  # the saved arrays, as forward gave them (what a first-order backward reads)
    _arg_ids = ()  # id() of each forward argument and of the output, to recognise saved arrays
    _out_ids = ()
    _tensor_mode = False
    _freed = False
    _hooks = None
    _retained = None  # weakref to the output tensor after retain_grad()
    _created = None  # under detect_anomaly: (user's "file:line", input arrays)

    def __init__(self, fn, device):
        self.fn = fn
        self.device = device
        self.xp = device.xp

    @property
    def name(self) -> str:
        return self.fn.__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"

    def save_for_backward(self, *arrays) -> None:
        """Keep arrays for backward. Inputs and the output given here become Tensors again under
        ``create_graph=True``; anything else (a mask, an index) is a constant of the derivative."""
        self._to_save = arrays

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(
                f"{self.name}: trying to backward through the graph a second time (or to read "
                "saved values after they were freed). The graph is freed by backward(); pass "
                "retain_graph=True to the first backward() to keep it.")
        if not self._tensor_mode:
            return self._saved
        return tuple(self._as_tensor(array) for array in self._saved)

    def _as_tensor(self, array):
        """Under create_graph: a saved array as the Tensor it was, so gradients flow through it.

        Found by identity (ids recorded at forward time; the arrays are alive, so ids are unique):
        the op's output becomes a tensor on this node; an input that requires grad becomes a tensor
        on its parent (the leaf itself, or a tensor whose grad_fn is the parent node); anything
        else (a mask, an index, an input without grad) is a constant of the derivative.
        """
        key = id(array)
        if key in self._out_ids:
            return Tensor._make(self.device.xp.asarray(array), self.device, True, self)
        for i, arg_id in enumerate(self._arg_ids[:len(self.parents)]):
            if arg_id == key:
                parent = self.parents[i]
                if parent is None:
                    return array
                if type(parent) is Node:
                    return Tensor._make(array, self.device, True, parent)
                return parent
        return array

    def _release(self) -> None:
        self._saved = None
        self._freed = True


class Function:
    """Base class of every op: a static ``forward`` and ``backward`` side by side.

    ``forward(ctx, *inputs, **params)`` receives raw backend arrays (NumPy or CuPy) for Tensor
    inputs and returns one array. ``backward(ctx, grad_out)`` returns one gradient per positional
    input (``None`` for inputs without one; trailing non-tensor inputs may be left out). Write
    array math through ``ctx.xp`` and the same ``backward`` works on the GPU and under
    ``create_graph=True``.

    Example:
        >>> class Cube(tn.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         ctx.save_for_backward(x)
        ...         return x ** 3
        ...     @staticmethod
        ...     def backward(ctx, grad_out):
        ...         (x,) = ctx.saved_tensors
        ...         return grad_out * 3 * x ** 2
        >>> y = Cube.apply(tn.tensor([2.0], requires_grad=True))
    """

    differentiable = True  # False: the output never requires grad (comparisons, argmax)
    moves_device = False  # True: forward sets ctx.out_device (only ToDevice)

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        # 1. Unwrap inputs, check they share a device, and note the would-be graph edges: each
        #    input's node (or the leaf itself) when it requires grad, with its shape and dtype.
        device = None
        arrays = []
        needs = []
        parents = []
        metas = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                if device is None:
                    device = a._device
                elif a._device is not device:
                    raise _device_mismatch(cls.__name__, args)
                data = a._data
                arrays.append(data)
                metas.append((data.shape, data.dtype))
                if a._requires_grad:
                    record = True
                    needs.append(True)
                    parents.append(a.grad_fn or a)
                else:
                    needs.append(False)
                    parents.append(None)
            else:
                arrays.append(a)
                needs.append(False)
                parents.append(None)
                metas.append(None)
        if device is None:
            raise TypeError(f"{cls.__name__}: needs at least one Tensor input")
        record = record and _grad_mode.enabled and cls.differentiable
        ctx = Node(cls, device)
        ctx.n_args = len(args)
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(needs)

        # 2. Forward on raw arrays.
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except (ValueError, TypeError, IndexError) as exc:
            raise _plain(exc)(f"{cls.__name__}: {exc} (input shapes: {_shapes(args)})") from exc
        if cls.moves_device:
            device = ctx.out_device
        raw_out = out
        if type(out) is not (device._array_type or device.array_type):
            out = device.xp.asarray(out)  # NumPy returns scalars for 0-d results; keep arrays
        if _anomaly is not None:
            _anomaly(cls, ctx, arrays, out)
        if not record:
            return Tensor._make(out, device)
        if out.dtype.kind not in "fc":
            raise TypeError(f"{cls.__name__}: returned dtype {out.dtype}, which cannot carry a "
                            "gradient; mark the Function differentiable = False")

        # 3. Record. Trailing parameters (axis, ...) get no edge; the saved arrays are kept as
        #    forward gave them, with ids to find their tensors again under create_graph.
        while metas[-1] is None:
            parents.pop()
            metas.pop()
        ctx.parents = tuple(parents)
        ctx.metas = tuple(metas)
        if ctx._to_save:
            ctx._saved = ctx._to_save
            ctx._to_save = ()
            ctx._arg_ids = tuple(map(id, arrays))
            ctx._out_ids = (id(raw_out), id(out))
        return Tensor._make(out, device, True, ctx)


def _shapes(args) -> str:
    return ", ".join(f"{tuple(a.shape)} {a.dtype}" if isinstance(a, Tensor) else repr(a)
                     for a in args)


def _device_mismatch(op, args):
    devices = [f"{a.device} {tuple(a.shape)}" for a in args if isinstance(a, Tensor)]
    return RuntimeError(f"{op}: expected all tensors on the same device, got tensors on "
                        f"{' and '.join(devices)}; move them explicitly with .to(device)")


# --------------------------------------------------------------------------------------------
# The backward walk
# --------------------------------------------------------------------------------------------


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


def run_backward(roots, root_grads, retain_graph: bool, create_graph: bool, capture=None):
    """Propagate ``root_grads`` from ``roots`` back through the recorded graph.

    With ``capture=None`` (``Tensor.backward``), gradients accumulate into every leaf's ``.grad``.
    Otherwise (``tn.grad``), ``capture`` is a dict whose keys are the vertices (Node or leaf Tensor)
    of the requested inputs; their total gradients are stored in it and no ``.grad`` is touched.
    """
    # 1. Count, for every vertex, how many edges lead into it from the part of the graph we walk.
    deps: dict = {}
    stack = []
    for t in roots:
        v = t.grad_fn if t.grad_fn is not None else t
        if v not in deps:
            deps[v] = 0
            stack.append(v)
    while stack:
        v = stack.pop()
        if type(v) is Node:
            if v._freed:
                v.saved_tensors  # noqa: B018 - raises the "backward a second time" error
            for p in v.parents:
                if p is None:
                    continue
                if p in deps:
                    deps[p] += 1
                else:
                    deps[p] = 1
                    stack.append(p)
    needed = None if capture is None else _needed_for(capture, deps)

    # 2. Seed the roots' gradients.
    grads: dict = {}
    for t, g in zip(roots, root_grads):
        v = t.grad_fn if t.grad_fn is not None else t
        grads[v] = grads[v] + g if v in grads else g
    ready = [v for v in grads if deps[v] == 0]
    ready.reverse()
    tensor_xp = _tensor_namespace() if create_graph else None
    builtin = _builtin_ops()
    owned: dict = {}  # leaf -> True when its pending gradient array is one nobody else holds

    # 3. Walk in reverse topological order: a vertex runs once all its consumers have sent theirs.
    with set_grad_enabled(create_graph):
        while ready:
            v = ready.pop()
            g = grads.pop(v, None)
            if needed is not None and v not in needed:
                g = None  # tn.grad: nothing asked for lies below v; don't run its hooks or backward
            if type(v) is not Node:  # a leaf tensor
                if g is not None:
                    _deliver_to_leaf(v, g, create_graph, capture, owned.pop(v, False))
                continue
            grads_in = None
            if g is not None:
                if v._hooks:
                    g = _call_hooks(v._hooks, g, create_graph, v.device)
                if capture is None:
                    if v._retained is not None:
                        _retain(v, g, create_graph)
                elif v in capture:
                    capture[v] = g
                if needed is None or needed[v]:
                    grads_in = _call_backward(v, g, tensor_xp)
                    if _observers is not None:
                        for observe in _observers:
                            observe(v, g, grads_in)
            metas = v.metas
            for i, p in enumerate(v.parents):
                if p is None:
                    continue
                if grads_in is not None:
                    gi = grads_in[i]
                    if gi is not None:
                        shape, dtype = metas[i]
                        if gi.shape != shape or gi.dtype != dtype:
                            gi = _check_grad(v, i, gi)
                        if p in grads:
                            grads[p] = grads[p] + gi
                            owned[p] = True  # a sum the engine just made
                        else:
                            grads[p] = gi
                            if type(p) is not Node:
                                owned[p] = _is_fresh(v, gi, g, builtin)
                deps[p] -= 1
                if deps[p] == 0:
                    ready.append(p)
            if not retain_graph:
                v._release()


def _needed_for(capture: dict, deps: dict) -> dict:
    """For ``tn.grad``: the vertices that are requested inputs or lie above one. Maps each to
    whether its backward must run (True when a requested input lies strictly below it)."""
    consumers: dict = {}
    for v in deps:
        if type(v) is Node:
            for p in v.parents:
                if p is not None:
                    consumers.setdefault(p, []).append(v)
    needed = {k: False for k in capture if k in deps}
    stack = list(needed)
    while stack:
        for c in consumers.get(stack.pop(), ()):
            if c not in needed:
                stack.append(c)
            needed[c] = True
    return needed


def _call_backward(v: Node, g, tensor_xp):
    if tensor_xp is not None:
        v._tensor_mode = True
        v.xp = tensor_xp
        try:
            out = v.fn.backward(v, g)
        finally:
            v._tensor_mode = False
            v.xp = v.device.xp
    else:
        out = v.fn.backward(v, g)
    if not isinstance(out, tuple):
        out = (out,)
    if len(out) == len(v.parents):
        return out
    # One gradient per positional input; trailing parameters may be left out, and extra Nones are
    # accepted so that one backward serves both apply(x, 2.0) and apply(x, scale=2.0).
    extra = out[v.n_args:]
    if len(out) < len(v.parents) or any(e is not None for e in extra):
        raise RuntimeError(f"{v.name}.backward returned {len(out)} gradient(s) for {v.n_args} "
                           f"input(s); return one per input (None for non-tensor inputs)")
    return out


def _check_grad(v: Node, i: int, gi):
    """Undo broadcasting, then insist on the input's exact shape and dtype (naming the op)."""
    shape, dtype = v.metas[i]
    if gi.shape != shape:
        gi = sum_to(gi, shape, v.name)
    if gi.dtype != dtype:
        raise RuntimeError(f"{v.name}.backward: gradient for input {i} has dtype {gi.dtype}, "
                           f"expected {dtype} (the input's dtype)")
    return gi


_BUILTIN_OPS: frozenset | None = None


def _builtin_ops() -> frozenset:
    global _BUILTIN_OPS
    if _BUILTIN_OPS is None:
        from .ops import OPS  # noqa: PLC0415 - ops import this module

        _BUILTIN_OPS = frozenset(OPS)
    return _BUILTIN_OPS


def _is_fresh(v: Node, gi, g, builtin: frozenset) -> bool:
    """True when ``gi`` (a gradient v's backward returned) is an array nobody else holds.

    Built-in ops return either a new array or, for identity-like ops, the upstream gradient ``g``
    itself or a view of it; a user's Function might return anything (a saved array), so its
    results are never trusted.
    """
    return v.fn in builtin and gi is not g and getattr(gi, "base", 0) is None


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
        leaf.grad = Tensor._make(leaf.grad._data + g, leaf._device)
    else:
        leaf.grad._data += g


def _retain(v: Node, g, create_graph: bool):
    t = v._retained()
    if t is None:
        return
    if not create_graph:
        g = Tensor._make(g.copy(), v.device)
    t.grad = g if t.grad is None else t.grad + g


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
            arr = out.device.xp.ones(out._data.shape, dtype=out._data.dtype)
        else:
            if isinstance(g, Tensor):
                if g._device is not out._device:
                    raise RuntimeError(f"backward: gradient on {g.device}, output on {out.device}")
                if create_graph:
                    grads.append(g)
                    continue
                arr = g._data
            else:
                arr = out.device.xp.asarray(g, dtype=out._data.dtype)
            if arr.shape != out._data.shape:
                raise RuntimeError(f"backward: gradient shape {tuple(arr.shape)} does not match "
                                   f"the output shape {tuple(out.shape)}")
            arr = arr.astype(out._data.dtype, copy=False)
        grads.append(Tensor._make(arr, out._device) if create_graph else arr)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad``. See ``Tensor.backward``."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
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
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if allow_unused is None:
        allow_unused = materialize_grads
    for t in outputs:
        if not t.requires_grad:
            raise RuntimeError("tn.grad: an output does not require grad and has no grad_fn")
    keys = []
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("tn.grad: one of the differentiated Tensors does not require grad")
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
