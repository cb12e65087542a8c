"""``DistributedOptimizer``: average the gradients over the ranks, then take the wrapped step.

Data-parallel SGD in one sentence: every rank computes the gradient of the mean loss over *its*
``b`` samples, the ranks average those ``W`` gradients, and every rank applies the same update to
the same weights. The average of ``W`` means over ``b`` samples each is the mean over all
``B = W * b`` samples, so the step is the one a single process would take on the global batch of
``B``; the weights stay identical on every rank without ever being sent (docs/distributed.md).

The wrapper is Horovod's ``hvd.DistributedOptimizer``: it shares the wrapped optimizer's parameter
groups and state (so schedules, ``state_dict`` and checkpoints see the optimizer itself) and adds
the averaging in ``step``. The averaging packs the gradients into flat buckets (``buffer.py``), one
all-reduce per bucket; with ``overlap=True`` each bucket is started from gradient hooks while
backward is still running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ..autograd import enable_grad
from ..optim.optimizer import Optimizer
from .buffer import DEFAULT_BUCKET_CAP_MB, GradientBuckets
from .group import default_group


class DistributedOptimizer(Optimizer):
    """Wrap ``optimizer`` so that ``step()`` first averages every gradient over all ranks.

    Args:
        optimizer: any ``tn.optim`` optimizer over the model's parameters.
        bucket_cap_mb: the most megabytes of gradients per all-reduce (``math.inf``: one flat
            buffer; the default, 25 MB, is PyTorch DDP's).
        overlap: start each bucket's all-reduce from gradient hooks as soon as backward has
            produced its gradients, instead of all of them in ``step()``. Use it with buckets
            smaller than the model, so that early buckets travel while backward goes on.
        backward_passes_per_step: with ``overlap``, how many ``backward()`` calls accumulate into
            the gradients before each ``step()`` (the hooks start the all-reduce on the last).

    Hyper-parameters, ``param_groups``, ``state`` and ``state_dict()`` are the wrapped optimizer's,
    so a learning-rate schedule or a checkpoint works exactly as without the wrapper.

    Example:
        >>> opt = dist.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=0.1))
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()   # same on every rank
    """

    def __init__(self, optimizer: Optimizer, bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB,
                 overlap: bool = False, backward_passes_per_step: int = 1):
        if not isinstance(optimizer, Optimizer) or isinstance(optimizer, DistributedOptimizer):
            raise TypeError(f"DistributedOptimizer wraps a tn.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        if (isinstance(backward_passes_per_step, bool) or not isinstance(backward_passes_per_step,
                                                                          int)
                or backward_passes_per_step < 1):
            raise ValueError(f"DistributedOptimizer: backward_passes_per_step must be a positive "
                             f"integer, got {backward_passes_per_step!r}")
        self.optimizer = optimizer
        self.bucket_cap_mb = bucket_cap_mb
        self.overlap = bool(overlap)
        self.backward_passes_per_step = backward_passes_per_step
        self._group = default_group()
        self._buckets: GradientBuckets | None = None
        self._layout: tuple = ()
        self._hooks: list = []
        self._passes: dict[int, int] = {}
        self._skip = False
        self._build()
        if self.overlap and self._group.world_size > 1:
            self._register_hooks()

    # --- the wrapped optimizer's state, shared --------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state dict (the same layout as without the wrapper)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)
        self._build()
        if self.overlap and self._group.world_size > 1:
            self._register_hooks()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    # --- averaging, then the step ----------------------------------------------------------------
    def synchronize(self) -> None:
        """Average the gradients now (Horovod's name). For work between averaging and the update,
        such as gradient clipping: ``opt.synchronize(); clip_grad_norm_(...);`` then
        ``with opt.skip_synchronize(): opt.step()``."""
        if self._group.world_size == 1:
            return  # one rank: its gradients are the mean already (no copies, no hooks)
        if self._layout != _layout(self._params()):
            self._build()  # parameters moved or were cast since: new buffers
        if self.overlap:
            self._buckets.finish(self._group)
            self._passes.clear()
        else:
            self._buckets.average(self._group)

    @contextlib.contextmanager
    def skip_synchronize(self):
        """Inside, ``step()`` does not average again (the gradients were synchronized already)."""
        self._skip = True
        try:
            yield
        finally:
            self._skip = False

    def step(self, closure: Callable[[], Any] | None = None):
        """Average the gradients over all ranks (unless inside ``skip_synchronize``), then take
        the wrapped optimizer's step. Returns the closure's loss, or None."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if not self._skip:
            self.synchronize()
        self.optimizer.step()
        return loss

    # --- buffers and hooks ------------------------------------------------------------------------
    def _params(self) -> list:
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.requires_grad]

    def _build(self) -> None:
        params = self._params()
        self._buckets = GradientBuckets(params, self.bucket_cap_mb)
        self._layout = _layout(params)

    def _register_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = [p.register_hook(self._hook_for(p)) for p in self._params()]

    def _hook_for(self, p):
        key = id(p)

        def hook(grad):
            passes = self._passes.get(key, 0) + 1
            self._passes[key] = passes
            if passes % self.backward_passes_per_step == 0:
                if self._layout != _layout(self._params()):
                    self._build()
                self._buckets.mark_ready(self._group, p, grad._data)
            return None  # the gradient itself is unchanged; step() replaces it by the mean

        return hook

    @property
    def buckets(self) -> GradientBuckets:
        """The flat gradient buffers (their sizes show how the gradients travel)."""
        return self._buckets

    def __repr__(self) -> str:
        inner = repr(self.optimizer).replace("\n", "\n  ")
        return (f"DistributedOptimizer(world_size={self._group.world_size}, "
                f"buckets={len(self._buckets.buckets)}, overlap={self.overlap},\n  {inner})")


def _layout(params: list) -> tuple:
    """What the buffers depend on: each parameter's identity, device, dtype and shape."""
    return tuple((id(p), p.device, p.dtype, p.shape) for p in params)
