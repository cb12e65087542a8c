"""How forward records the graph: grad mode, the graph node (:class:`Node`, an op's ``ctx``),
``Function`` and ``Op``.

* ``Function.apply`` runs an op's ``forward`` on raw backend arrays and, when grad mode is on and an
  input requires grad, records a :class:`Node`: the op's ``ctx``, holding its edges to the inputs
  and what ``backward`` needs. Tensors are the op's positional arguments; everything else (an
  axis, a shape) is a keyword parameter, so ``backward`` returns exactly one gradient per
  positional input.
* What backward needs is saved by intent: ``ctx.save_inputs(0)``, ``ctx.save_output()``,
  ``ctx.save_constant(mask)`` (or PyTorch's ``ctx.save_for_backward(...)``, sorted into those three
  kinds once, when forward returns). Under ``create_graph`` saved inputs and the output come back
  as Tensors, constants as raw arrays.
* Grad mode (``no_grad``, ``enable_grad``, ``set_grad_enabled``) decides whether ``apply`` records;
  it is per thread.

``autograd.py`` walks the recorded graph backwards. Read ``ops/elementwise.py`` for ops built on
this.
"""

from __future__ import annotations

import threading

from . import backend
from .tensor import Tensor, _plain

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

_FREED = ("{}: trying to backward through the graph a second time (or to read saved values after "
          "they were freed). The graph is freed by backward(); pass retain_graph=True to the first "
          "backward() to keep it.")


class Node:
    """One recorded application of an op. It is the ``ctx`` that ``forward`` and ``backward`` share.

    What an op uses: ``ctx.xp`` (array namespace), ``ctx.needs_input_grad`` (one bool per
    positional input), ``ctx.create_graph`` (True while backward runs under ``create_graph``), the
    save methods below, and any attribute it sets itself (``ctx.axis = ...``). The engine uses
    ``fn``, ``parents`` (one entry per positional input: the parent Node, the leaf Tensor, or None
    when that input gets no gradient) and ``metas`` (each tensor input's shape and dtype).

    Saving, in ``forward``; reading, in ``backward``:

    ====================================  ==========================  ============================
    forward                               backward                    under ``create_graph``
    ====================================  ==========================  ============================
    ``ctx.save_inputs(0, 2)``             ``ctx.saved_inputs``        Tensors (gradients flow)
    ``ctx.save_output()``                 ``ctx.saved_output``        a Tensor on this node
    ``ctx.save_constant(mask, index)``    ``ctx.saved_constants``     raw arrays: constants
    ``ctx.save_for_backward(*arrays)``    ``ctx.saved_tensors``       each as what it is (below)
    ====================================  ==========================  ============================

    ``save_for_backward`` is PyTorch's spelling. When forward returns, each array it was given is
    sorted once into an input (the very object forward received as positional input ``i``), the
    output (the object forward returned), or a constant (anything else: a value derived inside
    forward). ``ctx.saved_as`` tells which, e.g. ``("input 0", "constant")``. Under
    ``create_graph`` a constant stays a raw array, so no gradient flows through it: a backward
    that reads a derived array (``s = sigmoid(x)`` saved in forward) is right to first order but
    its second derivative misses ``ds/dx``. Recompute such values in backward from saved inputs.

    Each saved input and output is saved with its version (``Tensor._version``); the accessors
    above check that no in-place write reached it since, and raise PyTorch's error otherwise.

    A multi-output node (forward returned a tuple of arrays: ``unbind``, ``split``) has
    ``n_outputs`` and ``out_metas`` (each output's shape and dtype); its outputs are Tensors that
    share it as ``grad_fn`` and tell which output they are by ``_output_nr``. A consumer of such
    an output keeps ``_slots`` (input index -> output index) so that backward adds its gradient
    to the right output; ``saved_output`` is then the tuple of outputs.
    """

    # Defaults live on the class, so recording an op sets only what differs (this is the hot path).
    parents = ()
    metas = ()
    needs_input_grad = ()
    create_graph = False
    _saves = False  # True once forward called a save method (one check for ops that save nothing)
    _keep_inputs = ()  # indices passed to save_inputs
    _keep_output = False
    _inputs = ()  # the saved input arrays, in the order of _keep_inputs
    _output = None
    _constants = ()
    _for_backward = ()  # save_for_backward's arrays, and what each one is (index, -1 output, None)
    _for_backward_kinds = ()
    _versions = ()  # [(version counter, its value when saved, input index or -1: the output)]
    _freed = False
    _hooks = None  # hooks on the output (a multi-output node: {output index: [hooks]})
    _retained = None  # weakref to the output after retain_grad() ({output index: weakref})
    n_outputs = None  # None: one output; an int: forward returned a tuple of that many arrays
    out_metas = ()  # a multi-output node: each output's (shape, dtype)
    _slots = None  # {input index: output index} for inputs that are outputs of multi-output nodes
    _created = None  # under detect_anomaly: (user's "file:line", input arrays)

    def __init__(self, fn, device):
        self.fn = fn
        self.device = device
        self.xp = device.xp

    @property
    def name(self) -> str:
        return self.fn.name

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"

    # --- saving (forward) ---------------------------------------------------------------------
    def save_inputs(self, *indices: int) -> None:
        """Keep the positional inputs ``indices`` for backward (``ctx.saved_inputs``)."""
        self._keep_inputs = indices
        self._saves = True

    def save_output(self, *which: int) -> None:
        """Keep the op's output for backward (``ctx.saved_output``). A multi-output op reads all
        its outputs back (a tuple); ``which`` names those backward really reads (default: all),
        so that writing in place to another one is not refused."""
        self._keep_output = which or True
        self._saves = True

    def save_constant(self, *arrays) -> None:
        """Keep arrays derived in forward (a mask, an index) as constants of the derivative."""
        self._constants = arrays
        self._saves = True

    def save_for_backward(self, *arrays) -> None:
        """PyTorch's spelling: keep ``arrays``; read them back as ``ctx.saved_tensors``. Each is
        sorted into an input, the output or a constant when forward returns (see the class)."""
        self._for_backward = arrays
        self._saves = True

    # --- reading (backward) -------------------------------------------------------------------
    @property
    def saved_inputs(self) -> tuple:
        if self._freed:  # checked inline: this and saved_output are read by most backwards
            raise RuntimeError(_FREED.format(self.name))
        for counter, version, which in self._versions:  # nothing written in place since saved
            if counter[0] != version:
                self._modified(counter, version, which)
        if not self.create_graph:
            return self._inputs
        return tuple(self._input_tensor(i, a) for i, a in zip(self._keep_inputs, self._inputs))

    @property
    def saved_output(self):
        if self._freed:
            raise RuntimeError(_FREED.format(self.name))
        for counter, version, which in self._versions:
            if counter[0] != version:
                self._modified(counter, version, which)
        if not self.create_graph:
            return self._output
        if self.n_outputs is not None:
            return self._output_tensors()
        return Tensor._make(self._output, self.device, True, self)

    def _output_tensors(self) -> tuple:
        """Under create_graph, a multi-output node's saved outputs as Tensors on this node."""
        out = []
        for k, array in enumerate(self._output):
            t = Tensor._make(array, self.device, True, self)
            t._output_nr = k
            out.append(t)
        return tuple(out)

    @property
    def saved_constants(self) -> tuple:
        self.check_not_freed()
        return self._constants

    @property
    def saved_tensors(self) -> tuple:
        self.check_not_freed()
        for counter, version, which in self._versions:
            if counter[0] != version:
                self._modified(counter, version, which)
        if not self.create_graph:
            return self._for_backward
        out = []
        for array, kind in zip(self._for_backward, self._for_backward_kinds):
            if kind is None:
                out.append(array)
            elif kind < 0:
                out.append(Tensor._make(self._output, self.device, True, self))
            else:
                out.append(self._input_tensor(kind, array))
        return tuple(out)

    @property
    def saved_as(self) -> tuple:
        """What each of ``saved_tensors`` is: ``"input i"``, ``"output"`` or ``"constant"``."""
        return tuple("constant" if k is None else "output" if k < 0 else f"input {k}"
                     for k in self._for_backward_kinds)

    def _input_tensor(self, i: int, array):
        """Under create_graph: saved input ``i`` as the tensor it was, so gradients flow through
        it (the leaf itself, or a tensor on the parent node); a raw array if it needs no grad."""
        parent = self.parents[i]
        if parent is None:
            return array
        if type(parent) is Node:
            t = Tensor._make(array, self.device, True, parent)
            if self._slots is not None and i in self._slots:
                t._output_nr = self._slots[i]  # one output of a multi-output parent
            return t
        return parent

    def _sort_for_backward(self, arrays: list, raw_out, out) -> None:
        """Sort save_for_backward's arrays once, by identity, while forward's objects are alive."""
        kinds = []
        for a in self._for_backward:
            if a is raw_out or a is out:
                kinds.append(-1)
                self._output = out
            else:
                kinds.append(next((i for i, arg in enumerate(arrays) if arg is a), None))
        self._for_backward_kinds = tuple(kinds)

    def _record_versions(self, args: tuple, out: Tensor) -> None:
        """Note the version of every tensor saved (inputs and output), once forward returned:
        ``_versions`` holds (counter, its value now, input index or -1 for the output)."""
        indices = self._keep_inputs
        if self._for_backward_kinds:  # save_for_backward's inputs and output count too
            indices = tuple(dict.fromkeys(indices + tuple(
                k for k in self._for_backward_kinds if k is not None)))
        versions = []
        for i in indices:
            a = out if i < 0 else args[i]
            if isinstance(a, Tensor):
                counter = a._counter
                if counter is None:  # inlined _version_counter(): this runs for most ops
                    counter = a._counter = [0]
                versions.append((counter, counter[0], i))
        if self._keep_output and -1 not in indices:
            counter = out._counter
            if counter is None:
                counter = out._counter = [0]
            versions.append((counter, counter[0], -1))
        self._versions = versions

    def _modified(self, counter, version: int, which: int):
        """Raise PyTorch's error for a saved tensor written in place after it was saved."""
        if which < 0 and self.n_outputs is not None:
            k = -1 - which
            what, (shape, dtype) = f"output {k}", self.out_metas[k]
        elif which < 0:
            what, (shape, dtype) = "the output", (self._output.shape, self._output.dtype)
        else:
            parent = self.parents[which]
            name = getattr(parent, "name", None) if type(parent) is not Node else None
            what = f"input {which}" + (f" ({name!r})" if name else "")
            shape, dtype = self.metas[which]
        raise RuntimeError(
            f"{self.name}.backward: one of the variables needed for gradient computation has been "
            f"modified by an inplace operation: [{what} of {self.name}, shape {tuple(shape)}, "
            f"{dtype}] is at version {counter[0]}; expected version {version} instead. It "
            "was written in place (t += ..., t[i] = ..., zero_(), an optimizer step, or a write "
            "through a view of it) after the forward pass saved it: run the forward again after "
            "the write, or write to a clone()")

    def check_not_freed(self) -> None:
        if self._freed:
            raise RuntimeError(_FREED.format(self.name))

    def release(self) -> None:
        """Drop the saved values (after a backward without retain_graph)."""
        if self._saves:
            self._inputs = self._output = self._constants = self._for_backward = None
            self._versions = ()
        self._freed = True


RESULT_DTYPES = {
    "same": "the dtype of the (promoted) inputs",
    "float": "floating inputs keep their dtype; integer and bool inputs become the default float "
             "dtype (float32) first",
    "bool": "bool (comparisons and logic)",
    "int64": "int64 (indices)",
    "sum": "floating inputs keep their dtype; integer and bool inputs accumulate in int64",
}
"""The result-dtype rules an op class declares as ``result_dtype`` (one rule per op; docs/ops.md
lists each op's)."""


class Function:
    """Base class of every op: a static ``forward`` and ``backward`` side by side.

    ``forward(ctx, *inputs, **params)`` receives raw backend arrays (NumPy or CuPy) for Tensor
    inputs and returns one array, or a tuple of arrays: then ``apply`` records one node and
    returns a tuple of Tensors, and ``backward(ctx, *grads)`` receives one gradient per output
    (``None`` for an output that got no gradient), once all have arrived (docs/autograd.md,
    section 17). ``backward(ctx, grad_out)`` returns one gradient per positional
    input (``None`` for an input without one; extra trailing ``None``\\ s are accepted, so one
    backward serves ``apply(x, 2.0)`` and ``apply(x, scale=2.0)``). Write array math through
    ``ctx.xp`` and the same ``backward`` works on the GPU and under ``create_graph=True``.

    Class attributes an op may declare:

    * ``differentiable = False``: the output never requires grad (comparisons, argmax).
    * ``moves_device = True``: the output lives on another device; forward sets
      ``ctx.out_device`` (the device move, ``ToDeviceOp``).
    * ``fresh_grads = True``: backward returns only new arrays, the upstream gradient itself or
      views of it, never an array forward kept, so the engine may hand such a gradient to a leaf
      without copying it. Built-in ops declare it (see :class:`Op`); the default is the safe one.
    * ``result_dtype``: the dtype rule of the output (:data:`RESULT_DTYPES`). ``apply`` enforces
      ``"float"`` (integer and bool tensor inputs become the default float dtype, float32, before
      ``forward``, as PyTorch promotes ``exp``, ``sigmoid`` ... of integers) and ``"sum"``
      (integer results become int64); the others say what ``forward`` returns.
    * ``views_input = True``: forward may return a view of input 0's memory (reshape, permute,
      basic indexing); when it does, the output shares input 0's version counter, so a write
      through either is seen by values saved from the other.

    Example:
        >>> class Cube(tn.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         ctx.save_inputs(0)
        ...         return x ** 3
        ...     @staticmethod
        ...     def backward(ctx, grad_out):
        ...         (x,) = ctx.saved_inputs
        ...         return grad_out * 3 * x ** 2
        >>> y = Cube.apply(tn.tensor([2.0], requires_grad=True))
    """

    differentiable = True
    moves_device = False
    fresh_grads = False
    result_dtype = "same"
    views_input = False
    name = "Function"  # how graphs, errors and traces name the op: the class name ...
    _name_suffix = ""  # ... without this suffix

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.removesuffix(cls._name_suffix) if cls._name_suffix \
                else cls.__name__
        if cls.result_dtype not in RESULT_DTYPES:
            raise TypeError(f"{cls.__name__}.result_dtype must be one of {sorted(RESULT_DTYPES)}, "
                            f"got {cls.result_dtype!r}")
        cls._to_float = cls.result_dtype == "float"
        cls._ints_to_int64 = cls.result_dtype == "sum"

    @staticmethod
    def forward(ctx, *args, **params):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **params) -> Tensor:
        # 1. Unwrap inputs, check they share a device, and note the would-be graph edges: each
        #    tensor input's node (or the leaf itself) when it requires grad; its shape and dtype.
        device = None
        arrays = []
        needs = []
        parents = []
        metas = []
        slots = None
        record = False
        to_float = cls._to_float
        for a in args:
            if isinstance(a, Tensor):
                if device is None:
                    device = a._device
                elif a._device is not device:
                    raise _device_mismatch(cls.name, args)
                data = a._data
                if to_float and data.dtype.kind in "biu":  # the result-dtype rule "float"
                    data = data.astype(backend.get_default_dtype())
                arrays.append(data)
                metas.append((data.shape, data.dtype))
                if a._requires_grad:
                    record = True
                    needs.append(True)
                    if a._output_nr is not None:  # one output of a multi-output node
                        if slots is None:
                            slots = {}
                        slots[len(parents)] = a._output_nr
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
            raise TypeError(f"{cls.name}: needs at least one Tensor input")
        record = record and _grad_mode.enabled and cls.differentiable
        ctx = Node(cls, device)
        ctx.needs_input_grad = tuple(needs) if record else (False,) * len(needs)

        # 2. Forward on raw arrays.
        try:
            out = cls.forward(ctx, *arrays, **params)
        except (ValueError, TypeError, IndexError) as exc:
            raise _plain(exc)(f"{cls.name}: {exc} (input shapes: {_shapes(args)})") from exc
        if cls.moves_device:
            device = ctx.out_device
        raw_out = out
        if type(out) is not (device._array_type or device.array_type):
            if type(out) is tuple:  # several outputs: one node, a tuple of Tensors
                return _apply_multi(cls, ctx, args, arrays, params, out, device, record,
                                    parents, metas, slots)
            out = device.xp.asarray(out)  # NumPy returns scalars for 0-d results; keep arrays
        if cls._ints_to_int64 and out.dtype.kind in "biu" and out.dtype != "int64":
            out = out.astype("int64")  # the result-dtype rule "sum" (NumPy gives uint64 for uint8)
        if _autograd._anomaly is not None:  # detect_anomaly's forward check (tinynet/debug.py)
            _autograd._anomaly(cls, ctx, arrays, out, params)
        if not record:
            result = Tensor._make(out, device)
            if cls.views_input:
                _share_if_view(result, args[0])
            return result
        _check_float_output(cls, out)

        # 3. Record the edges, and keep what forward asked to save (with the versions it had).
        ctx.parents = tuple(parents)
        ctx.metas = tuple(metas)
        if slots is not None:
            ctx._slots = slots
        result = Tensor._make(out, device, True, ctx)
        if cls.views_input:
            _share_if_view(result, args[0])
        if ctx._saves:
            if ctx._keep_inputs:
                ctx._inputs = tuple([arrays[i] for i in ctx._keep_inputs])
            if ctx._keep_output:
                ctx._output = out
            if ctx._for_backward:
                ctx._sort_for_backward(arrays, raw_out, out)
            ctx._record_versions(args, result)
        return result


def _check_float_output(cls, out) -> None:
    """A recorded output must be floating: only real floating-point values carry a gradient."""
    if out.dtype.kind != "f":
        raise TypeError(f"{cls.name}: returned dtype {out.dtype}, which cannot carry a "
                        "gradient (tinynet differentiates real floating-point values only); "
                        "mark the Function differentiable = False")


class Op(Function):
    """Base of tinynet's built-in primitives (``tinynet/ops/``).

    Their class names end in ``Op`` (``MulOp``, ``LinearOp``), which keeps them apart from the
    layers of ``tn.nn`` (``nn.Linear``) and from the functions users call (``tn.mul``); graphs,
    errors and traces name them without the suffix (``<MulBackward>``). Every built-in backward
    returns fresh gradients (see ``Function.fresh_grads``).
    """

    fresh_grads = True
    name = "Op"
    _name_suffix = "Op"


def _apply_multi(cls, ctx: Node, args: tuple, arrays: list, params: dict, outs: tuple, device,
                 record: bool, parents: list, metas: list, slots) -> tuple:
    """The rest of ``Function.apply`` for a forward that returned a tuple of arrays: one node,
    ``len(outs)`` output Tensors sharing it as ``grad_fn`` (each knows its ``_output_nr``)."""
    array_type = device._array_type or device.array_type
    outs = tuple(o if type(o) is array_type else device.xp.asarray(o) for o in outs)
    if cls._ints_to_int64:
        outs = tuple(o.astype("int64") if o.dtype.kind in "biu" and o.dtype != "int64" else o
                     for o in outs)
    if _autograd._anomaly is not None:
        _autograd._anomaly(cls, ctx, arrays, outs, params)
    if not record:
        results = tuple(Tensor._make(o, device) for o in outs)
        if cls.views_input:
            for r in results:
                _share_if_view(r, args[0])
        return results
    for o in outs:
        _check_float_output(cls, o)
    ctx.parents = tuple(parents)
    ctx.metas = tuple(metas)
    if slots is not None:
        ctx._slots = slots
    ctx.n_outputs = len(outs)
    ctx.out_metas = tuple((o.shape, o.dtype) for o in outs)
    results = []
    for k, o in enumerate(outs):
        r = Tensor._make(o, device, True, ctx)
        r._output_nr = k
        if cls.views_input:
            _share_if_view(r, args[0])
        results.append(r)
    if ctx._saves:
        if ctx._keep_inputs:
            ctx._inputs = tuple([arrays[i] for i in ctx._keep_inputs])
        if ctx._keep_output:
            ctx._output = outs
        if ctx._for_backward:  # an output given to save_for_backward is kept as a constant
            ctx._sort_for_backward(arrays, None, None)
        keep_output, ctx._keep_output = ctx._keep_output, False
        ctx._record_versions(args, None)
        ctx._keep_output = keep_output
        if keep_output:  # each read output's version, as output -1 - k
            which = keep_output if type(keep_output) is tuple else range(len(results))
            ctx._versions = ctx._versions + [
                (results[k]._version_counter(), results[k]._version_counter()[0], -1 - k)
                for k in which]
    return tuple(results)


def _share_if_view(result: Tensor, x: Tensor) -> None:
    """``result`` of a ``views_input`` op shares ``x``'s version counter when its array is a view
    of ``x``'s memory (a reshape that had to copy, or advanced indexing, gives a new array)."""
    base = result._data.base
    if base is None:
        return
    xd = x._data
    if base is xd or base is xd.base or x._device.xp.may_share_memory(result._data, xd):
        result._counter = x._version_counter()


def _shapes(args) -> str:
    return ", ".join(f"{tuple(a.shape)} {a.dtype}" if isinstance(a, Tensor) else repr(a)
                     for a in args)


def _device_mismatch(op, args):
    devices = [f"{a.device} {tuple(a.shape)}" for a in args if isinstance(a, Tensor)]
    return RuntimeError(f"{op}: expected all tensors on the same device, got tensors on "
                        f"{' and '.join(devices)}; move them explicitly with .to(device)")


# The debug tools' hook points (forward and backward) live together in autograd.py, which imports
# this module; bound here once both exist.
from . import autograd as _autograd  # noqa: E402
