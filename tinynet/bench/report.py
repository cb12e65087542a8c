"""The report of ``tinynet bench``: Markdown tables, the GPU-vs-CPU crossover and the plot.

Everything here reads the JSON document that ``tinynet.bench.run.run_bench`` (or
``merge_thread_runs``) returns and measures nothing, so a saved ``bench.json`` can be reported
again: ``markdown_table(json.load(open("bench.json")))``.

Figures are shown as they can be read: a spread only where there are several repeats, the
figures derived from the matmul peak only where the peak measurement held (a footnote says why
not), and the width sweep in its own table under its own heading.
"""

from __future__ import annotations

from pathlib import Path

_COLUMNS = ("samples | impl | device | threads | {epoch} | samples/s | it/s | "
            "data / fwd / bwd / opt s | GFLOP/s (% peak) | other us/step | peak MiB (traced) | "
            "loss first -> last | time / tinynet")
_PEAK_NOTE = ("Rows marked *: faster than the float32 matmul peak measured in the same run "
              "({peaks}), so that measurement came out low (a busy machine): % of peak and "
              "other us/step are not derived for them.")

MODEL_NAMES = {"mlp": "MLP 784-256-128-10", "cnn": "CNN", "mnist1d-cnn": "MNIST-1D CNN",
               "gru": "GRU: MNIST-1D's bidirectional GRU, hidden 6, 40 steps",
               "lstm": "LSTM 64-128, 50 steps"}


def threads_label(rec: dict) -> str:
    """The ``threads`` cell: what was asked (a count, ``auto: <chosen>``, ``default``), and in
    parentheses what the BLAS reported when that differs (or when nothing was asked)."""
    asked, got = rec.get("threads"), rec.get("blas_threads")
    if asked == "auto" and rec.get("threads_chosen"):
        return f"auto: {rec['threads_chosen']}"
    text = "default" if asked is None else str(asked)
    return text if got is None or got == asked else f"{text} ({got})"


def spread(stats: dict, fmt: str = ".3f") -> str:
    """``median (min-max)`` of a summary, or the one value when it was measured once."""
    median = format(stats["median"], fmt)
    if stats.get("repeats", 2) < 2:
        return median
    return f"{median} ({format(stats['min'], fmt)}-{format(stats['max'], fmt)})"


def _memory_cell(rec: dict) -> str:
    """Traced host peak in MiB; on a GPU the CuPy pool's total instead; '-' when neither."""
    if rec.get("peak_traced_mib") is not None:
        return f"{rec['peak_traced_mib']:.1f}"
    if rec.get("gpu_pool_bytes") is not None:
        return f"{rec['gpu_pool_bytes'] / (1 << 20):.1f} (GPU pool)"
    return "-"


def _peak_cells(rec: dict) -> tuple[str, str]:
    """The ``GFLOP/s (% peak)`` and ``other us/step`` cells."""
    rate, frac, overhead = rec["gflop_per_s"], rec["fraction_of_peak"], rec["overhead_us_per_step"]
    if rec.get("peak_exceeded"):
        return f"{rate:.1f} (-*)", "-*"
    return (f"{rate:.1f}" + ("" if frac is None else f" ({100 * frac:.0f}%)"),
            "-" if overhead is None else f"{overhead:.0f}")


def _row(rec: dict, first: list) -> str:
    ph = rec.get("phases_seconds")
    phases = " / ".join(f"{ph[k]:.3f}" for k in ph) if ph else "-"
    rate, overhead = _peak_cells(rec)
    ratio = rec["time_vs_tinynet"]
    cells = [*first, f"{rec['samples']:,}", rec["impl"], rec["device"], threads_label(rec),
             spread(rec["epoch_seconds"]), f"{rec['samples_per_s']:,.0f}",
             f"{rec['iterations_per_s']:,.0f}", phases, rate, overhead, _memory_cell(rec),
             f"{rec['loss_first']:.3f} -> {rec['loss_last']:.3f}",
             "-" if ratio is None else f"{ratio:.2f}"]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(records: list, lead: str, first, epochs: int) -> list:
    epoch = "epoch s" if epochs < 2 else f"epoch s (median, min-max of {epochs})"
    head = f"| {lead} | " + _COLUMNS.format(epoch=epoch) + " |"
    return [head, "|" + "---|" * head.count(" | ") + "---|"] + [_row(r, first(r)) for r in records]


def markdown_table(doc: dict) -> str:
    """The records as Markdown: epoch times by batch size, then the width sweep (each under a
    heading), footnotes, then what did not run and why."""
    epochs = doc.get("epochs_measured", 2)
    batch = [r for r in doc["records"] if r["series"] == "batch"]
    width = [r for r in doc["records"] if r["series"] == "width"]
    parts = []
    if batch:
        models = ", ".join(sorted({MODEL_NAMES.get(r["model"], r["model"]) for r in batch},
                                  reverse=True))
        parts += [f"Epoch time by batch size ({models}):", "",
                  *_table(batch, "model | batch", lambda r: [r["model"], r["batch_size"]],
                          epochs)]
    if width:
        samples = sorted({r["samples"] for r in width})
        per_epoch = f", {samples[0]:,} samples per epoch" if len(samples) == 1 else ""
        parts += ["" if parts else None, f"MLP width sweep (784-W-(W/2)-10{per_epoch}):", "",
                  *_table(width, "width | batch", lambda r: [r["width"], r["batch_size"]],
                          epochs)]
    flagged = [r for r in doc["records"] if r.get("peak_exceeded")]
    if flagged:
        peaks = ", ".join(sorted({f"{r['device']} {r['matmul_peak_gflop_per_s']:.1f} GFLOP/s"
                                  for r in flagged}))
        parts += ["", _PEAK_NOTE.format(peaks=peaks)]
    if doc["missing"]:
        parts.append("")
    for key, why in doc["missing"].items():
        parts.append(f"- {key}: not run ({why})")
    return "\n".join(p for p in parts if p is not None)


def fixed_cost_table(doc: dict) -> str:
    """The fixed cost per training step as a small Markdown table ('' when not measured)."""
    rows = doc.get("fixed_step_us") or []
    if not rows:
        return ""
    sizes = "-".join(str(s) for s in rows[0]["sizes"])
    title = (f"Fixed cost per training step (MLP {sizes}, batch {rows[0]['batch_size']}: forward, "
             "loss read, zero_grad, backward, SGD momentum step; inputs already on the device):")
    lines = [title, "",
             "| impl | device | threads | us/step (median of each repeat; min-max) | "
             "mean us/step | steps |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        us = row["us_per_step"]
        lines.append(f"| {row['impl']} | {row['device']} | {threads_label(row)} | "
                     f"{spread(us, '.0f')} | {row['mean_us_per_step']:.0f} | "
                     f"{us['repeats']} x {row['steps']:,} |")
    return "\n".join(lines)


def crossover_table(doc: dict) -> str:
    """Where tinynet on the GPU beats tinynet on the CPU: over batch sizes per model, and over
    widths per sweep batch size, for each thread setting."""
    recs = {(r["series"], r["model"], str(r["threads"]), r["width"], r["batch_size"],
             r["device"]): r["epoch_seconds"]["median"]
            for r in doc["records"] if r["impl"] == "tinynet"}
    if not {"cpu", "cuda"} <= {k[-1] for k in recs}:
        why = doc["missing"].get("cuda", "the cuda device was not asked for")
        return ("Crossover (GPU vs CPU, over batch sizes and widths): needs a GPU run on both "
                f"devices ({why}).")
    lines = ["| series | model | threads | width | batch | cpu s | cuda s | faster |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict = {}  # (series, model, threads[, batch]) -> [(swept value, width, batch)]
    for series, model, threads, width, batch, _ in sorted(recs, key=str):
        group = (series, model, threads) + ((batch,) if series == "width" else ())
        point = ((width, width, batch) if series == "width" else (batch, width, batch))
        if point not in groups.setdefault(group, []):
            groups[group].append(point)
    for group, points in groups.items():
        series, model, threads = group[:3]
        cross = None
        for _, width, batch in sorted(points):
            cpu = recs.get((series, model, threads, width, batch, "cpu"))
            gpu = recs.get((series, model, threads, width, batch, "cuda"))
            if cpu is None or gpu is None:
                continue
            if gpu < cpu and cross is None:
                cross = width if series == "width" else batch
            lines.append(f"| {series} | {model} | {threads} | {width or '-'} | {batch} | "
                         f"{cpu:.3f} | {gpu:.3f} | {'cuda' if gpu < cpu else 'cpu'} |")
        what = "width" if series == "width" else "batch"
        lines.append(f"| {series} | {model} | {threads} | crossover {what}: "
                     f"{cross if cross else 'none in range'} | | | | |")
    return "\n".join(lines)


IMPL_COLORS = {"tinynet": "tab:blue", "numpy": "tab:green", "torch": "tab:orange"}


def plot(doc: dict, path: Path) -> str:
    """Epoch time against batch size (one panel per model) and, after a width sweep, against
    width (log-log); one line per implementation and device (and thread setting and sweep batch
    when there are several). A note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return "plot not written: matplotlib is not installed"
    records = doc["records"]
    thread_labels = sorted({str(r["threads"]) for r in records})
    several_threads = len(thread_labels) > 1
    panels = [(m, "batch") for m in sorted({r["model"] for r in records if r["series"] == "batch"})]
    if any(r["series"] == "width" for r in records):
        panels.append(("mlp", "width"))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 4),
                             squeeze=False)
    for ax, (model, series) in zip(axes[0], panels):
        recs = [r for r in records if r["model"] == model and r["series"] == series]
        several_batches = series == "width" and len({r["batch_size"] for r in recs}) > 1
        lines: dict = {}
        for r in recs:
            label = f"{r['impl']} ({r['device']}"
            label += f", threads {r['threads']}" if several_threads else ""
            label += f", b{r['batch_size']})" if several_batches else ")"
            x = r["width"] if series == "width" else r["batch_size"]
            lines.setdefault(label, []).append((x, r["epoch_seconds"]["median"]))
        for label, pts in sorted(lines.items()):
            pts.sort()
            # one colour per implementation in every panel; dashed on a GPU; one marker per
            # thread setting
            impl = label.split(" ", 1)[0]
            style = "--" if "(cuda" in label else "-"
            marker = next((m for t, m in zip(thread_labels, "osD^v") if f"threads {t}," in label
                           or f"threads {t})" in label), "o")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker=marker, label=label,
                    color=IMPL_COLORS.get(impl))
        if series == "width":
            samples = sorted({r["samples"] for r in recs})
            ax.set(xlabel="width W (784-W-W/2-10)", title=f"mlp width sweep ({samples[0]:,} "
                   "samples/epoch)" if len(samples) == 1 else "mlp width sweep")
        else:
            ax.set(xlabel="batch size", title=model)
        ax.set(xscale="log", yscale="log", ylabel="epoch seconds")
        ticks = sorted({x for pts in lines.values() for x, _ in pts})
        ax.set_xticks(ticks, [str(t) for t in ticks])  # the values run, not powers of ten
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot: {path}"
