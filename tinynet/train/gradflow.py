"""Gradient flow: how large the gradients, the weights and the updates are, layer by layer.

After ``loss.backward()``, :func:`gradient_flow` measures every parameter: the L2 norm of its
gradient, of its weight and, given a :func:`snapshot_parameters` taken before the optimizer step,
the update-to-weight ratio ``||w_after - w_before|| / ||w_before||`` (about 1e-3 is the usual
healthy value for SGD-like training; much larger moves too fast, much smaller barely learns).
:func:`check_flow` turns one measurement into readable warnings: *vanishing* gradients (a
parameter's gradient far smaller than the largest one in the model, the signature of a deep stack
of saturating sigmoids) and *exploding* ones (a huge or non-finite norm, or a total norm that
grew by a large factor since the previous measurement). :class:`GradientFlow` is the ``fit``
callback that records all this over training; :func:`plot_gradient_flow` draws it.

Read first: ``callbacks.py`` (the callback events and ``TrainingState``).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, TextIO

from .callbacks import Callback, TrainingState

__all__ = ["GradientFlow", "check_flow", "gradient_flow", "plot_gradient_flow",
           "snapshot_parameters"]


def _named_parameters(model) -> list[tuple[str, Any]]:
    """The trainable parameters of a Module (or of any iterable of ``(name, tensor)`` pairs)."""
    pairs = model.named_parameters() if hasattr(model, "named_parameters") else model
    return [(name, p) for name, p in pairs if p.requires_grad]


def _norms(arrays: list, xp) -> list[float]:
    """L2 norms of raw arrays, summed in float64 (a 1e-20 gradient squared underflows float32);
    all norms are copied to the host at once (one synchronisation on a GPU)."""
    if not arrays:
        return []
    norms = [xp.sqrt(xp.sum(xp.square(a.astype(xp.float64)))) for a in arrays]
    return [float(v) for v in xp.stack(norms).tolist()]


def snapshot_parameters(model) -> dict[str, Any]:
    """Copies of the trainable parameters' raw arrays, keyed by name: take one before
    ``optimizer.step()`` and pass it to :func:`gradient_flow` as ``before``."""
    return {name: p.data.copy() for name, p in _named_parameters(model)}


def gradient_flow(model, before: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per-parameter gradient norm, weight norm and (given ``before``) update-to-weight ratio.

    Args:
        model: a Module (its trainable parameters are measured, in ``named_parameters`` order).
        before: a :func:`snapshot_parameters` taken before the optimizer step.

    Returns:
        One dict per parameter: ``name``, ``shape``, ``grad_norm`` (``None`` when the parameter
        has no gradient), ``weight_norm`` and ``update_ratio`` (``||w - w_before|| /
        ||w_before||``; ``None`` without ``before`` or when ``w_before`` is all zeros).

    Example:
        >>> loss.backward(); before = snapshot_parameters(model); opt.step()
        >>> for layer in gradient_flow(model, before): print(layer["name"], layer["grad_norm"])
    """
    params = _named_parameters(model)
    if not params:
        return []
    xp = params[0][1].device.xp
    with_grad = [(name, p) for name, p in params if p.grad is not None]
    grad_norms = dict(zip([n for n, _ in with_grad],
                          _norms([p.grad.data for _, p in with_grad], xp)))
    weight_norms = _norms([p.data for _, p in params], xp)
    ratios: dict[str, float | None] = {}
    if before is not None:
        names = [n for n, _ in params if n in before]
        current = dict(params)
        updates = _norms([current[n].data - before[n] for n in names], xp)
        olds = _norms([before[n] for n in names], xp)
        ratios = {n: (u / o if o > 0 else None) for n, u, o in zip(names, updates, olds)}
    return [{"name": name, "shape": tuple(p.shape), "grad_norm": grad_norms.get(name),
             "weight_norm": w, "update_ratio": ratios.get(name)}
            for (name, p), w in zip(params, weight_norms)]


def _total(layers: list[dict]) -> float:
    return math.sqrt(sum(layer["grad_norm"] ** 2 for layer in layers
                         if layer["grad_norm"] is not None))


def check_flow(layers: list[dict], previous: list[dict] | None = None, vanishing: float = 1e-7,
               exploding: float = 1e3, growth: float = 100.0) -> list[dict[str, str]]:
    """Warnings about one :func:`gradient_flow` measurement, each ``{"kind", "name", "message"}``.

    Args:
        layers: the measurement.
        previous: the measurement before it (to see gradients growing fast).
        vanishing: a gradient norm below ``vanishing`` times the largest one in the model is
            vanishing (relative, so a converged model whose gradients are all small is not).
        exploding: a gradient norm above this (or not finite) is exploding.
        growth: the total gradient norm growing more than this factor since ``previous`` is
            exploding too.
    """
    flags = []
    norms = [(layer["name"], layer["grad_norm"]) for layer in layers
             if layer["grad_norm"] is not None]
    finite = [(n, g) for n, g in norms if math.isfinite(g)]
    largest_name, largest = max(finite, key=lambda ng: ng[1], default=(None, 0.0))
    for index, (name, norm) in enumerate(norms, start=1):
        where = f"{name} (parameter {index} of {len(norms)})"
        if not math.isfinite(norm):
            flags.append({"kind": "exploding", "name": name, "message":
                          f"exploding gradient: {where} has a non-finite gradient norm ({norm}); "
                          "lower the learning rate or clip gradients "
                          "(tn.nn.utils.clip_grad_norm_)"})
        elif norm > exploding:
            flags.append({"kind": "exploding", "name": name, "message":
                          f"exploding gradient: {where} has gradient norm {norm:.3g} > "
                          f"{exploding:g}; lower the learning rate or clip gradients "
                          "(tn.nn.utils.clip_grad_norm_)"})
        elif largest > 0 and norm < vanishing * largest:
            flags.append({"kind": "vanishing", "name": name, "message":
                          f"vanishing gradient: {where} has gradient norm {norm:.3g}, "
                          f"{norm / largest:.2g} of the largest ({largest_name}: {largest:.3g}); "
                          "deep stacks of sigmoid/tanh shrink gradients layer by layer: try "
                          "ReLU with Kaiming initialisation, normalisation or skip connections"})
    if previous is not None:
        before, now = _total(previous), _total(layers)
        if before > 0 and math.isfinite(now) and now > growth * before:
            flags.append({"kind": "exploding", "name": "*", "message":
                          f"exploding gradients: the total gradient norm grew {now / before:.3g}x "
                          f"since the previous record ({before:.3g} -> {now:.3g}); lower the "
                          "learning rate or clip gradients"})
    return flags


class GradientFlow(Callback):
    """Record :func:`gradient_flow` during ``fit`` and flag vanishing or exploding gradients.

    Args:
        every: ``"epoch"`` (measure the last batch of each epoch) or ``"iteration"`` (every batch).
        vanishing, exploding, growth: thresholds, as in :func:`check_flow`.
        verbose: print each warning the first time it concerns a parameter.
        stream: where to print (default ``sys.stdout``).

    Attributes:
        records: one dict per measurement: ``epoch``, ``iteration`` (within the epoch),
            ``step`` (batches since the start of this run), ``layers`` (the measurement) and
            ``flags`` (from :func:`check_flow`).

    Example:
        >>> flow = GradientFlow(every="iteration")
        >>> fit(model, loss_fn, opt, loader, 5, callbacks=[flow])
        >>> flow.flagged("vanishing"); plot_gradient_flow(flow.records, "flow.png")
    """

    rank_zero_only = True  # data-parallel: gradients are averaged, so rank 0's are every rank's

    def __init__(self, every: str = "epoch", vanishing: float = 1e-7, exploding: float = 1e3,
                 growth: float = 100.0, verbose: bool = True, stream: TextIO | None = None):
        if every not in ("epoch", "iteration"):
            raise ValueError(f"every must be 'epoch' or 'iteration', got {every!r}")
        self.every = every
        self.thresholds = {"vanishing": vanishing, "exploding": exploding, "growth": growth}
        self.verbose, self.stream = verbose, stream
        self.records: list[dict[str, Any]] = []
        self._before: dict | None = None
        self._step = 0
        self._reported: set[tuple[str, str]] = set()

    def flagged(self, kind: str | None = None) -> list[str]:
        """Names of the parameters flagged so far (``kind``: ``"vanishing"``/``"exploding"``)."""
        names = {f["name"] for r in self.records for f in r["flags"]
                 if kind is None or f["kind"] == kind}
        return sorted(names)

    def on_train_begin(self, state: TrainingState) -> None:
        self.records, self._step, self._reported = [], 0, set()

    def _measures_this_batch(self, state: TrainingState) -> bool:
        # Without a known length, every batch might be the last of the epoch.
        return (self.every == "iteration" or state.num_batches is None
                or state.iteration == state.num_batches)

    def on_batch_begin(self, state: TrainingState) -> None:
        # fit runs zero_grad, forward, backward and step after this event.
        self._step += 1
        measure = self._measures_this_batch(state)
        self._before = snapshot_parameters(state.model) if measure else None

    def on_batch_end(self, state: TrainingState) -> None:
        if self.every == "iteration":
            self._record(state)

    def on_epoch_end(self, state: TrainingState) -> None:
        if self.every == "epoch":  # the gradients are still those of the epoch's last batch
            self._record(state)

    def _record(self, state: TrainingState) -> None:
        layers = gradient_flow(state.model, self._before)
        previous = self.records[-1]["layers"] if self.records else None
        flags = check_flow(layers, previous, **self.thresholds)
        self.records.append({"epoch": state.epoch, "iteration": state.iteration,
                             "step": self._step, "layers": layers, "flags": flags})
        if self.verbose:
            for flag in flags:
                key = (flag["kind"], flag["name"])
                if key not in self._reported:
                    self._reported.add(key)
                    print(f"epoch {state.epoch} iteration {state.iteration}: {flag['message']}",
                          file=self.stream or sys.stdout)


def _record_label(record: dict) -> str:
    """What a line of the gradient-norm plot shows: when its record was measured."""
    if "epoch" not in record:
        return "measurement"
    label = f"epoch {record['epoch']}"
    if record.get("iteration") is not None:
        label += f", batch {record['iteration']}"
    return label


def _legend_rows(n: int, most: int = 8) -> set[int]:
    """Which of ``n`` lines get a legend entry: all up to ``most``, else ``most`` evenly spread
    ones, the first and the last included."""
    if n <= most:
        return set(range(n))
    return {round(k * (n - 1) / (most - 1)) for k in range(most)}


def plot_gradient_flow(records: list[dict], path: str | os.PathLike, title: str | None = None):
    """Draw gradient flow to an image file: gradient norm per parameter (one line per record,
    light = early, dark = late, labelled with its epoch and batch in the legend; log scale) and,
    when known, the update-to-weight ratio over time (one line per parameter).

    ``records`` is :attr:`GradientFlow.records`, or a single :func:`gradient_flow` result.
    Needs matplotlib (``pip install "tinynet[plot]"``); draws off-screen (Agg). Returns the
    matplotlib ``Figure``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('plot_gradient_flow needs matplotlib: pip install "tinynet[plot]"'
                          ) from exc
    if records and "layers" not in records[0]:
        records = [{"step": 0, "layers": records}]
    if not records or not records[0]["layers"]:
        raise ValueError("no gradient-flow records: nothing to plot")
    has_ratio = any(layer["update_ratio"] for r in records for layer in r["layers"])
    fig = Figure(figsize=(11, 4) if has_ratio else (6, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if has_ratio else 1, squeeze=False)[0]
    names = [layer["name"] for layer in records[0]["layers"]]
    ax = axes[0]
    shown = _legend_rows(len(records))
    for i, record in enumerate(records):
        shade = 0.85 - 0.75 * (i / max(len(records) - 1, 1))  # early records light, late dark
        norms = [layer["grad_norm"] if layer["grad_norm"] else float("nan")
                 for layer in record["layers"]]
        ax.plot(range(len(norms)), norms, marker="o", markersize=3, color=str(shade),
                label=_record_label(record) if i in shown else "_nolegend_")
    ax.legend(fontsize=7, title=None if len(shown) == len(records)
              else f"{len(shown)} of {len(records)} records", title_fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel("gradient norm")
    ax.set_title(title or "gradient norm per parameter (input -> output)")
    if has_ratio:
        ax = axes[1]
        steps = [r["step"] for r in records]
        for j, name in enumerate(names):
            ratios = [r["layers"][j]["update_ratio"] or float("nan") for r in records]
            # matplotlib cycles through 10 colours: a new dash style for each round of them
            ax.plot(steps, ratios, label=name, linestyle=("-", "--", ":")[j // 10 % 3])
        ax.axhline(1e-3, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("||update|| / ||weight||")
        ax.set_title("update-to-weight ratio (dashed: 1e-3)")
        # Every line named: inside the axes for a few, outside on the right in columns of 20
        # for many (a deep network's 26 parameters).
        if len(names) <= 12:
            ax.legend(fontsize=7)
        else:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      ncol=-(-len(names) // 20), borderaxespad=0.0)
            fig.set_size_inches(11 + 1.3 * -(-len(names) // 20), 4)
    fig.tight_layout()
    fig.savefig(path)
    return fig
