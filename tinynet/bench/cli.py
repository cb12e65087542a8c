"""``tinynet bench``: its options, the checks on them, and the run from options to report files.

``main(args, argv)`` is what ``tinynet bench`` calls; ``benchmarks/epoch.py`` calls it too, passing
its own ``child_command`` and ``extra_environment`` (nothing is configured by changing this
package's globals).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import tinynet as tn

from ..runtime import keep_freed_memory
from .report import crossover_table, fixed_cost_table, markdown_table, plot
from .run import SWEEP_SAMPLES, merge_thread_runs, run_bench
from .threads import DEFAULT_CHILD_COMMAND, pin_threads, run_thread_children

DEVICES = ("cpu", "cuda", "standin")
MODELS = ("mlp", "cnn", "mnist1d-cnn", "gru", "lstm")


def _csv(kind, minimum: int | None = None):
    """An argparse type: a comma-separated list of ``kind``, each at least ``minimum``."""
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, "
                                             f"got {text!r}") from None
        if minimum is not None and any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"every value must be at least {minimum}, got {text}")
        return values
    return parse


def thread_settings(text: str) -> list:
    """``--threads``: comma-separated positive counts and/or ``auto``, without repeats."""
    settings = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part != "auto" and not (part.isdigit() and int(part) > 0):
            raise argparse.ArgumentTypeError(
                f"expected positive thread counts or auto, got {part!r}")
        value = part if part == "auto" else int(part)
        if value not in settings:
            settings.append(value)
    if not settings:
        raise argparse.ArgumentTypeError("expected positive thread counts or auto")
    return settings


def add_parser(commands) -> None:
    """Add the ``bench`` subcommand to the ``tinynet`` subparsers ``commands``."""
    bench = commands.add_parser(
        "bench", help="time training epochs: tinynet vs NumPy and PyTorch, CPU vs GPU",
        description="Time MLP and CNN (or GRU, LSTM) training epochs (median of measured epochs "
                    "after a warm-up) "
                    "for tinynet, a hand-written NumPy MLP and PyTorch, on the CPU and a GPU; "
                    "optionally an MLP width sweep; the fixed cost of one training step.")
    add = bench.add_argument
    add("--device", type=_csv(str), default=None,
        help="comma-separated: cpu, cuda, standin (default: cpu, and cuda when CuPy sees a GPU; "
             "naming cuda without one is an error)")
    add("--model", type=_csv(str), default=["mlp", "cnn"],
        help="mlp, cnn, mnist1d-cnn (the MNIST-1D paper's CNN; with --batch-sizes 100, its "
             "recipe's batch), gru (MNIST-1D's bidirectional GRU), lstm (LSTM 64->128 over 50 "
             "steps) (default: mlp,cnn)")
    add("--batch-sizes", type=_csv(int, 1), default=[32, 128, 512], help="default: 32,128,512")
    add("--epochs", type=int, default=None, help="measured epochs (default 3; 1 with --quick)")
    add("--quick", action="store_true", help="a few hundred samples: a smoke test in seconds")
    add("--out", metavar="DIR", default=None, help="folder for bench.json, bench.md, bench.png")
    add("--threads", type=thread_settings, default=None,
        help="BLAS (and torch) threads: a count, a comma list (one process per count, e.g. 1,2) "
             "or auto (per tinynet record: 1 or all threads, whichever a short trial finds "
             "faster)")
    add("--widths", type=_csv(int, 2), default=[],
        help="MLP width sweep: 784-W-(W/2)-10 for each W, e.g. 256,512,1024,2048,4096 "
             "(default: no sweep)")
    add("--sweep-batch", type=_csv(int, 1), default=[512],
        help="batch sizes of the width sweep (default: 512)")
    add("--sweep-samples", type=int, default=None,
        help=f"samples per epoch of the width sweep (default {SWEEP_SAMPLES:,}; "
             "a few hundred with --quick)")
    add("--no-fixed", action="store_true",
        help="skip the fixed cost per training step (16-16-16-10 MLP, batch 8)")
    add("--default-malloc", action="store_true",
        help="leave glibc's allocator as it is (by default freed memory is kept for reuse, as "
             "tinynet train does: tinynet.runtime.keep_freed_memory)")
    add("--records-only", action="store_true", help=argparse.SUPPRESS)  # children of --threads


class UsageError(Exception):
    """A bad option value: one line on stderr and exit status 2."""


def _devices(asked: list | None) -> tuple[list, dict]:
    """The devices to run and what was left out (with why). Named devices must be usable: a
    ``cuda`` that cannot run is an error, with the install hint. The default is the CPU, and CUDA
    when it can run (noted as missing otherwise)."""
    if asked is None:
        if tn.cuda.is_available():
            return ["cpu", "cuda"], {}
        return ["cpu"], {"cuda": _cuda_reason()}
    for name in asked:
        if name not in DEVICES:
            raise UsageError(f"unknown device {name!r}: use {', '.join(DEVICES)}")
    if "cuda" in asked and not tn.cuda.is_available():
        raise UsageError(f"--device cuda: {_cuda_reason()}")
    return list(dict.fromkeys(asked)), {}


def _cuda_reason() -> str:
    """Why CUDA cannot run here (the device's own message: what to install, or that no GPU is
    seen)."""
    try:
        tn.zeros(1, device="cuda")
    except RuntimeError as error:
        return str(error).splitlines()[0]
    return "CuPy sees no CUDA device"


def _check(args) -> tuple[list, dict]:
    for name in args.model:
        if name not in MODELS:
            raise UsageError(f"unknown model {name!r}")
    if args.sweep_samples is not None and args.sweep_samples < 1:
        raise UsageError("--sweep-samples must be positive")
    return _devices(args.device)


def main(args, argv: list, *, child_command=DEFAULT_CHILD_COMMAND,
         extra_environment=None) -> int:
    """Run ``tinynet bench`` with parsed ``args``; returns the exit status.

    Args:
        args: the parsed options.
        argv: the command line, to rerun it in child processes (``--threads a,b``).
        child_command: how a child process starts; the options after ``bench`` are appended.
        extra_environment: a function returning more fields for the records' environment.
    """
    try:
        devices, missing = _check(args)
    except UsageError as error:
        print(f"tinynet bench: error: {error}", file=sys.stderr)
        return 2
    if not args.default_malloc:
        # All implementations run in this process, so all get the same allocator.
        keep_freed_memory()
    if args.threads is not None and len(args.threads) > 1:
        docs = run_thread_children(args.threads, argv, child_command)
        if isinstance(docs, int):
            return docs
        doc = merge_thread_runs(docs, extra_environment)
    else:
        setting = args.threads[0] if args.threads else None
        if isinstance(setting, int):
            status = pin_threads(setting, argv, child_command)
            if status is not None:
                return status
        epochs = args.epochs or (1 if args.quick else 3)
        doc = run_bench(args.model, devices, args.batch_sizes, epochs, args.quick,
                        say=lambda *a: print(*a, file=sys.stderr), widths=args.widths,
                        sweep_batches=args.sweep_batch, sweep_samples=args.sweep_samples,
                        threads=setting, fixed=not args.no_fixed, missing=missing,
                        extra_environment=extra_environment)
    out = Path(args.out or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    if args.records_only:  # a child of --threads a,b: the parent writes the report
        return 0
    parts = [markdown_table(doc), fixed_cost_table(doc), crossover_table(doc)]
    table = "\n\n".join(p for p in parts if p)
    print(table)
    (out / "bench.md").write_text(table + "\n")
    print(plot(doc, out / "bench.png"))
    print(f"records: {out / 'bench.json'}")
    return 0
