"""Start every rank from the same place: ``broadcast_parameters``, ``broadcast_optimizer_state``.

Data parallelism keeps the ranks' weights identical by applying identical updates; that only works
if they *start* identical. Seeding every rank alike (``tn.manual_seed``) gives the same initial
weights, but a checkpoint read by one rank, a rank-dependent seed or an initialisation that draws
from another stream would not: broadcasting rank 0's values makes the start identical by
construction (Horovod's ``broadcast_parameters`` / ``broadcast_optimizer_state``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..autograd import no_grad
from ..creation import empty
from ..optim.optimizer import Optimizer
from ..tensor import Tensor
from .collectives import _check_src, all_gather_object, broadcast, broadcast_object
from .group import default_group


def broadcast_parameters(params, src: int = 0) -> None:
    """Overwrite, on every rank, parameters and buffers with rank ``src``'s values.

    Args:
        params: a ``tn.nn.Module`` (its ``state_dict()``: parameters and persistent buffers such as
            BatchNorm's running statistics), a state dict ``{name: Tensor}``, or ``(name, Tensor)``
            pairs (``model.named_parameters()``). Every rank must pass the same names and shapes.
        src: the rank whose values everyone gets.

    Raises:
        ValueError: the ranks hold different names or shapes (checked before anything is sent).

    Example:
        >>> tn.manual_seed(dist.get_rank())            # different initial weights per rank...
        >>> model = tn.models.mlp()
        >>> dist.broadcast_parameters(model, src=0)    # ...now rank 0's everywhere
    """
    _check_src("broadcast_parameters", src, default_group())
    named = _named_tensors(params)
    layout = [(name, tuple(t.shape), str(t.dtype)) for name, t in named]
    layouts = all_gather_object(layout)  # every rank sees every layout: all decide alike
    odd = [r for r, theirs in enumerate(layouts) if theirs != layouts[src]]
    if odd:
        differ = [a[0] for a, b in zip(layouts[odd[0]], layouts[src]) if a != b]
        raise ValueError(f"broadcast_parameters: rank {odd[0]} holds other tensors than rank "
                         f"{src} (names, shapes or dtypes differ: "
                         f"{', '.join(differ[:5]) or 'a different number of tensors'})")
    with no_grad():
        for _, t in named:
            broadcast(t, src)


def _named_tensors(params) -> list[tuple[str, Tensor]]:
    if hasattr(params, "state_dict") and hasattr(params, "named_parameters"):
        params = params.state_dict()
    items = params.items() if isinstance(params, Mapping) else params
    if not isinstance(items, Iterable):
        raise TypeError(f"broadcast_parameters: expected a Module, a state dict or (name, "
                        f"tensor) pairs, got {type(params).__name__}")
    out = []
    for item in items:
        name, t = item
        if not isinstance(t, Tensor):
            raise TypeError(f"broadcast_parameters: {name!r} is a {type(t).__name__}, not a "
                            f"Tensor")
        out.append((str(name), t))
    return out


def broadcast_optimizer_state(optimizer: Optimizer, src: int = 0) -> None:
    """Give every rank rank ``src``'s optimizer state: hyper-parameters of every group (``lr``,
    ``momentum``, ...), step counts and state tensors (moments, momentum buffers).

    A rank whose optimizer has not stepped yet receives the state tensors too (they are made on
    each parameter's device), so after a resume read on one rank, every rank continues alike.

    Example:
        >>> if dist.get_rank() == 0:
        ...     opt.load_state_dict(tn.load("opt.npz"))
        >>> dist.broadcast_optimizer_state(opt, src=0)
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"broadcast_optimizer_state: expected a tn.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    _check_src("broadcast_optimizer_state", src, default_group())
    rank = default_group().rank
    mine = optimizer.state_dict()
    skeleton = broadcast_object(_skeleton(mine) if rank == src else None, src)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    counts = all_gather_object(len(params))  # every rank decides alike
    expected = sum(len(g["params"]) for g in skeleton["param_groups"])
    if any(c != expected for c in counts):
        raise ValueError(f"broadcast_optimizer_state: the ranks' optimizers hold {counts} "
                         f"parameters; rank {src}'s holds {expected}")
    state: dict[int, dict[str, Any]] = {}
    with no_grad():
        for index, values in skeleton["state"].items():
            entry = state[index] = {}
            for key, value in values.items():
                if isinstance(value, _TensorSpec):
                    t = mine["state"].get(index, {}).get(key) if rank == src else None
                    if t is None:  # not created here yet: a buffer to receive into
                        t = value.empty_like(params[index])
                    broadcast(t, src)
                    entry[key] = t
                else:
                    entry[key] = value
    if rank != src:
        optimizer.load_state_dict({"state": state, "param_groups": skeleton["param_groups"]})


class _TensorSpec:
    """A state tensor in the skeleton: its shape and dtype (the values travel by broadcast)."""

    def __init__(self, t: Tensor):
        self.shape, self.dtype = tuple(t.shape), str(t.dtype)

    def empty_like(self, param: Tensor) -> Tensor:
        return empty(*self.shape, dtype=self.dtype, device=param.device)


def _skeleton(state_dict: dict) -> dict:
    """The state dict with each tensor replaced by its :class:`_TensorSpec` (small, picklable)."""
    state = {index: {k: (_TensorSpec(v) if isinstance(v, Tensor) else v)
                     for k, v in values.items()}
             for index, values in state_dict["state"].items()}
    return {"state": state, "param_groups": state_dict["param_groups"]}
