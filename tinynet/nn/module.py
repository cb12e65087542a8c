"""``Module`` and ``Parameter``: the building blocks of models, with ``torch.nn``'s names and rules.

A Module owns parameters (``Parameter``, a leaf tensor that requires grad), buffers (tensors
that are state but not trained, such as BatchNorm's running mean) and sub-modules, each registered
by plain attribute assignment, in registration order. ``state_dict`` keys are PyTorch's
(``0.weight``, ``bn.running_mean``), so weights move between tinynet and PyTorch by name.

Read next: ``container.py`` (Sequential, ModuleList, ModuleDict), ``hooks.py``, ``layers.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator, NamedTuple

from .. import backend
from ..autograd import is_grad_enabled, no_grad
from ..tensor import Tensor
from .hooks import RemovableHandle, watch_inputs, watch_outputs


class Parameter(Tensor):
    """A tensor that is a trainable weight of a Module: a leaf with ``requires_grad=True``.

    Example:
        >>> w = tn.nn.Parameter(tn.randn(3, 2))
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = Tensor._make(backend.Device("cpu").xp.empty((0,), dtype=backend.float32),
                                backend.Device("cpu"))
        if not isinstance(data, Tensor):
            data = Tensor(data)
        self._data = data._data
        self._device = data._device
        self._requires_grad = False
        self.grad = None
        self.grad_fn = None
        self._hooks = None
        self.name = None
        self._counter = data._version_counter()  # same memory as data: same version counter
        self._output_nr = None
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns: keys the module has that the state dict lacks, and keys
    the state dict has that the module lacks (both empty after a strict load)."""

    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of every layer and model.

    Subclasses set parameters, buffers and sub-modules as attributes in ``__init__`` (after calling
    ``super().__init__()``) and define ``forward``. Call the module, not ``forward``: ``__call__``
    also runs the hooks.

    Example:
        >>> class TwoLayer(tn.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1 = tn.nn.Linear(4, 8)
        ...         self.fc2 = tn.nn.Linear(8, 2)
        ...     def forward(self, x):
        ...         return self.fc2(self.fc1(x).relu())
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    # --- registration by attribute ------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attribute {name!r}")
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, (Parameter, Module)):  # the name moves to its table
            table = params if isinstance(value, Parameter) else modules
            for other in (params, buffers, modules, d):
                if other is not table:
                    other.pop(name, None)
            d["_non_persistent"].discard(name)
            table[name] = value
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a Tensor or None expected)")
            buffers[name] = value
        elif name in params or name in modules:
            if value is not None:
                kind = "parameter" if name in params else "child module"
                raise TypeError(f"cannot assign {type(value).__name__} as {kind} {name!r} "
                                f"({'a Parameter' if name in params else 'a Module'} or None "
                                "expected)")
            (params if name in params else modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: parameters, buffers and sub-modules live here.
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list:
        registered = (self.__dict__.get(t, ()) for t in ("_parameters", "_buffers", "_modules"))
        return sorted(set(super().__dir__()).union(*registered))

    def _check_name(self, method: str, name, table: dict) -> None:
        """State-dict keys are dotted paths, so a name must be a non-empty string without dots that
        does not shadow a plain attribute or method (PyTorch's rules)."""
        if not isinstance(name, str):
            raise TypeError(f"{method}: a name is a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f'{method}: name {name!r} must be non-empty and contain no "."')
        if name not in table and hasattr(self, name):
            raise KeyError(f"{method}: attribute {name!r} already exists")

    def _register(self, method: str, table: str, name: str, value, kind: type) -> None:
        """What every ``register_*`` does: check that ``__init__`` ran, that ``name`` can be a
        state-dict key, and that ``value`` is a ``kind`` or None; then put it in ``table``."""
        if table not in self.__dict__:
            raise AttributeError(f"call super().__init__() before {method}()")
        entries = self.__dict__[table]
        self._check_name(method, name, entries)
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{method}: {name!r} must be a {kind.__name__} or None, got "
                            f"{type(value).__name__}")
        entries[name] = value

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` as ``name``, like ``self.name = param`` (None reserves the name)."""
        self._register("register_parameter", "_parameters", name, param, Parameter)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register state that is not trained (saved in the state dict unless not persistent)."""
        self._register("register_buffer", "_buffers", name, tensor, Tensor)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child called ``name`` (same as ``self.name = module``)."""
        self._register("add_module", "_modules", name, module, Module)

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path ``target`` (``"body.0"``; ``""`` is ``self``)."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(self).__name__} has no submodule {target!r} "
                                     f"({type(module).__name__} has no child {part!r})")
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"body.0.weight"``)."""
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        param = module._parameters.get(name)
        if param is None:
            raise AttributeError(f"{type(self).__name__} has no parameter {target!r}")
        return param

    # --- traversal (registration order, never set order) --------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator:
        """(name, module) for this module and every descendant, depth first in registration order.

        A module registered in two places is yielded once (under its first name) unless
        ``remove_duplicate=False``, which ``state_dict`` uses: PyTorch lists shared weights under
        every name they are reachable by.
        """
        memo = set() if memo is None else memo
        stack = [(prefix, self, ())]
        while stack:  # iterative: deep nets (a 1,000-block Sequential) are fine
            name, module, ancestors = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            elif id(module) in ancestors:
                raise RuntimeError(f"module {name!r} ({type(module).__name__}) contains itself")
            yield name, module
            if not remove_duplicate:
                ancestors = ancestors + (id(module),)
            children = [(f"{name}.{k}" if name else k, m, ancestors)
                        for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator:
        for _, m in self.named_children():
            yield m

    def _named_members(self, table: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator:
        """(dotted name, tensor) for every non-None entry of each module's ``table``
        (``"_parameters"`` or ``"_buffers"``), here and below if ``recurse``; a tensor shared by
        two modules (or two names) comes once, under its first name, unless ``remove_duplicate``
        is False. The one walk behind ``named_parameters`` and ``named_buffers``."""
        seen = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        for mod_name, module in modules:
            for name, t in getattr(module, table).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_name}.{name}" if mod_name else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator:
        """(dotted name, Parameter), each parameter once even if shared by two modules (unless
        ``remove_duplicate=False``, as in PyTorch)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator:
        """(dotted name, buffer), as :meth:`named_parameters`."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many scalars the parameters hold (only those requiring grad if asked)."""
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    # --- modes, devices, gradients -------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout active, BatchNorm updating its statistics) here and below."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode is a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode here and below (same as ``train(False)``)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter of this module and its children."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``None``), or zero it (``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._make(p.grad.device.xp.zeros_like(p.grad.data), p.grad.device)

    def to(self, device=None, dtype=None) -> Module:
        """Move (and/or cast floating) parameters and buffers in place; returns ``self``.

        ``model.to("cuda")``, ``model.to(tn.float64)``. Parameters stay the same objects, so an
        optimizer built before the move still holds them.
        """
        if dtype is None and device is not None and not isinstance(device, (str, backend.Device)):
            device, dtype = None, device
        dev = None if device is None else backend.Device(device)
        if dev is not None:
            dev.xp  # noqa: B018 - fails here (CuPy missing, no GPU) before anything has moved
        dtype = None if dtype is None else backend.as_dtype(dtype)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to only casts to floating dtypes, got {dtype} (integer "
                            "buffers such as counters keep their dtype)")

        def convert(t: Tensor) -> None:
            arr = t.data
            if dtype is not None and arr.dtype.kind == "f" and arr.dtype != dtype:
                arr = arr.astype(dtype)
            if dev is not None and t.device is not dev:
                arr = backend.transfer(arr, t.device, dev)
                t._device = dev
            t._data = arr

        with no_grad():
            for p in self.parameters():
                convert(p)
                if p.grad is not None:  # the gradient follows its parameter, as in PyTorch
                    convert(p.grad)
            for b in self.buffers():
                convert(b)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Module:
        return self.to(f"cuda:{index}")

    def float(self) -> Module:
        return self.to(backend.float32)

    def double(self) -> Module:
        return self.to(backend.float64)

    def apply(self, fn: Callable) -> Module:
        """Call ``fn(module)`` on every sub-module, then on ``self`` (post-order: each module's
        children first, in registration order), e.g. for custom initialisation. As in PyTorch, a
        module registered under two parents is visited under each."""
        order = []
        stack = [(self, False, ())]
        while stack:  # iterative post-order
            module, expanded, ancestors = stack.pop()
            if expanded:
                order.append(module)
                continue
            if id(module) in ancestors:
                raise RuntimeError(f"{type(module).__name__} contains itself")
            stack.append((module, True, ancestors))
            inner = ancestors + (id(module),)
            stack.extend((m, False, inner) for m in reversed(list(module.children())))
        for m in order:
            fn(m)
        return self

    # --- calling, hooks ------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._backward_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)  # the usual case: no hooks to run
        for hook in list(self._forward_pre_hooks.values()):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        backward_state = None
        if self._backward_hooks and is_grad_enabled():
            args, backward_state = watch_inputs(self, args)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            new = hook(self, args, out)
            if new is not None:
                out = new
        if backward_state is not None:
            watch_outputs(backward_state, out)
        return out

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args)`` runs before forward; it may return replacement args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args, output)`` runs after forward; it may return a replacement output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` runs when the gradient with respect to the
        module's output has been computed (``grad_output``) and, once available, with respect to
        its tensor inputs (``grad_input``; ``None`` for inputs that do not require grad). Returning
        a tuple replaces ``grad_input`` (for a module with one input that requires grad, the usual
        case; with several, the replacement reaches the input whose gradient completes last)."""
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    # --- state dict ----------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (PyTorch's keys), in registration order.

        Values are detached tensors sharing memory with the module (``keep_vars=True`` gives the
        Parameters themselves)."""
        out = OrderedDict()
        for mod_name, module in self.named_modules(prefix=prefix.rstrip("."),
                                                   remove_duplicate=False):
            base = f"{mod_name}." if mod_name else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out[base + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into this module's parameters and buffers, in place (the objects stay the
        same, so an optimizer holding them keeps working; values are cast to each target's dtype
        and moved to its device).

        With ``strict=True`` every problem (missing keys, unexpected keys, shape mismatches, values
        that are not arrays) is listed in one error and nothing is changed. With ``strict=False``
        the keys both sides have are loaded (shape mismatches are still an error). Returns
        ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict expects a dict, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, bad_values, staged = [], [], []
        for k, target in own.items():
            if k not in state_dict:
                continue
            try:  # convert everything first: a bad value must not leave a half-loaded model
                arr = _converted(state_dict[k], target)
            except (TypeError, ValueError) as exc:
                bad_values.append(f"{k}: {exc}")
                continue
            if tuple(arr.shape) != tuple(target.shape):
                mismatched.append(f"{k}: checkpoint {tuple(arr.shape)}, model "
                                  f"{tuple(target.shape)}")
            staged.append((target, arr))
        problems = []
        if missing and strict:
            problems.append("missing keys: " + ", ".join(missing))
        if unexpected and strict:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if bad_values:
            problems.append("values that are not arrays: " + "; ".join(bad_values))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems))
        with no_grad():
            for target, arr in staged:
                target[...] = arr  # setitem: the write bumps the tensor's version
        return IncompatibleKeys(missing, unexpected)

    # --- display -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """One line describing this module's own settings; layers override it (``in_features=...``).
        By default: the shapes of the module's own parameters."""
        return ", ".join(f"{n}: {tuple(p.shape)}" for n, p in self._parameters.items()
                         if p is not None)

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        extra = self.extra_repr()
        head = f"{type(self).__name__}({extra}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def summary(self) -> str:
        """A table of parameters (name, shape, count, trainable) and the totals."""
        rows = [f"{'parameter':40s} {'shape':>18s} {'count':>10s} trainable"]
        for name, p in self.named_parameters():
            rows.append(f"{name:40s} {str(tuple(p.shape)):>18s} {p.numel():>10d} "
                        f"{'yes' if p.requires_grad else 'no'}")
        rows.append(f"total {self.num_parameters()} parameters, "
                    f"{self.num_parameters(trainable_only=True)} trainable")
        return "\n".join(rows)


def _converted(value, target: Tensor):
    """A checkpoint value as an array on ``target``'s device with its dtype (not yet written)."""
    if isinstance(value, Tensor):
        arr, src = value.data, value.device
    else:  # a NumPy array or a number, as ``np.load`` gives
        arr, src = backend.host_array(value), backend.Device("cpu")
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"got {type(value).__name__}")
    arr = backend.transfer(arr, src, target.device)
    if arr.dtype != target.dtype:
        arr = arr.astype(target.dtype)
    return arr
