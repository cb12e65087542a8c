"""``tinynet train``: the command line that trains a model on a built-in dataset, end to end.

``tinynet train`` with no arguments trains ``tn.models.mlp`` on the embedded 8x8 digits on the CPU
with one BLAS thread (``--threads``): a seeded, stratified 70/15/15 train/validation/test split,
standardised pixels, the model in one line, a progress bar, a table of per-epoch train/validation
loss and accuracy under a legend (``*``: the best epoch so far, lowest val_loss), the test
accuracy of the best checkpoint, and a run folder holding ``config.json``, ``history.csv``,
``best.npz`` (and ``last.npz``) and ``learning_curves.png`` (with matplotlib), listed at the end.
Everything here is glue over ``tn.data``, ``tn.datasets``, ``tn.models`` and ``tn.train.fit``:
read those first; what the run folder guarantees at every instant, and what a resume checks, is
``run_folder.py``.

A bad value (``--epochs -1``, an unknown optimizer, a missing data folder, ``cuda`` without CuPy,
an unwritable ``--out``, a run to resume whose files do not fit the options) is reported as one
line on stderr with exit status 2, never a traceback; a write that fails mid-run (a full disk) as
one line with exit status 1.

Under an MPI launcher (``mpiexec -n 2 tinynet train``) every process joins a ``tn.distributed``
group and trains data-parallel: each rank reads its shard of every epoch, gradients are averaged,
``--batch-size`` is per rank, and rank 0 alone prints and writes the run folder. A failure on any
rank ends the whole job (``MPI_Abort``) rather than leaving the others waiting.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np  # host-side data preparation (splits, normalisation statistics)

import tinynet as tn
from tinynet import runtime
import tinynet.distributed as dist

from .run_folder import (
    HistoryFile,
    UsageError,
    WriteFailed,
    fork,
    make_run_dir,
    non_empty_path,
    one_line,
    resume_point,
    saved_args,
    start_writing,
    write_failed,
    write_json,
)

MODELS = ("mlp", "cnn", "linear", "gru")
DATASETS = ("digits", "spirals", "mnist", "mnist1d")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
AUGMENTS = ("none", "shift")
# A learning rate that works for each optimizer on the built-in datasets (used when --lr is not
# given); --optimizer adam with these defaults is what the quality bar in the README was measured on.
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 1e-3, "adagrad": 2e-2}
SPLIT = (0.70, 0.15, 0.15)  # train / validation / test fractions for datasets without a test set
# MNIST-1D: the paper's recipe (docs/mnist1d.md): Adam, lr 1e-2 constant, batch 100, 6,000 steps.
# Validation is a stratified tenth of the 4,000 training signals (the test set stays unseen until
# the end), so an epoch is 36 steps and 167 epochs are the recipe's 6,000 steps.
MNIST1D_VAL = 0.1
MNIST1D_DEFAULTS = {"lr": 1e-2, "batch_size": 100, "schedule": "none", "epochs": 167}
# What a resumed run cannot change: the checkpoint's model, optimizer and data were built from it.
FIXED_ON_RESUME = ("model", "dataset", "optimizer", "schedule", "batch_size", "augment", "seed",
                   "lr")
PLANNED_SCHEDULES = ("step", "cosine", "onecycle")  # their shape depends on the total epochs
EVAL_BATCH = 512  # validation and test batches: no gradients, so bigger batches are cheap


class TrainingFailed(Exception):
    """Training ran but produced no usable model (it diverged): one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _threads(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") \
            from None


def build_parser() -> argparse.ArgumentParser:
    """The ``tinynet`` parser with its ``train`` subcommand."""
    parser = _Parser(prog="tinynet", description="tinynet: train neural networks from scratch.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    train = commands.add_parser(
        "train", help="train a model on a built-in dataset",
        description="Train a model and write a run folder (config.json, history.csv, best.npz, "
                    "learning_curves.png). With no options: an MLP on the embedded 8x8 digits.")
    add = train.add_argument
    add("--model", choices=MODELS, default="mlp",
        help="network (default: mlp; linear and gru: the MNIST-1D paper's models, gru on mnist1d "
             "only)")
    add("--dataset", choices=DATASETS, default="digits",
        help="data (default: digits, embedded; mnist1d: the embedded MNIST-1D signals, trained "
             "with the paper's recipe)")
    add("--data-dir", metavar="DIR", type=non_empty_path,
        help="folder with the MNIST IDX files (for --dataset mnist)")
    add("--download", action="store_true",
        help="fetch the MNIST files missing from --data-dir first (checksum-verified)")
    add("--epochs", type=_positive_int, default=None,
        help="epochs (default: 30 mlp, 10 cnn; 167 on mnist1d, the paper's 6,000 steps)")
    add("--batch-size", type=_positive_int, default=None,
        help="mini-batch size (default: 32; 100 on mnist1d)")
    add("--lr", type=_positive_float, default=None,
        help="learning rate (default: per optimizer, 2e-3 for adam; 1e-2 for adam on mnist1d)")
    add("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer (default: adam)")
    add("--schedule", choices=SCHEDULES, default=None,
        help="learning-rate schedule (default: cosine; none on mnist1d)")
    add("--augment", choices=AUGMENTS, default=None,
        help="shift: add copies of the training images moved by one pixel up, down, left and "
             "right (default: shift for digits, none otherwise)")
    add("--patience", type=_non_negative_int, default=0,
        help="stop after this many epochs without a better validation loss (default: 0, off)")
    add("--seed", type=_non_negative_int, default=0, help="seed of split, weights, batch order")
    add("--device", default="cpu", help="cpu, cuda, cuda:N or standin (default: cpu; under "
        "mpiexec, cuda means each rank's own GPU when there is one per rank)")
    add("--backend", choices=dist.BACKENDS, default="auto",
        help="process group under an MPI launcher (default: auto: mpi, or nccl on CUDA with one "
             "GPU per rank)")
    add("--threads", type=_threads, default=None, metavar="N|auto",
        help="BLAS threads of the CPU math: a count, or auto (time a few steps with 1 and with "
             "all CPUs; more only when 10%% faster). Default: 1, which does not slow down when "
             "other processes load the CPU, unless OMP/OPENBLAS/MKL_NUM_THREADS is set")
    add("--out", metavar="DIR", type=non_empty_path,
        help="run folder (default: runs/<date-time>-<model>-<dataset>)")
    add("--resume", metavar="PATH", type=non_empty_path,
        help="continue a run from its checkpoint (last.npz, or the run folder); its config.json "
             "gives the defaults, so --epochs N trains on up to epoch N")
    add("--quiet", action="store_true", help="no progress bar or table: the result lines only")
    parser.train_parser = train  # parse_train_args sets its defaults from a resumed run
    from . import bench  # tinynet bench: its options and its code live in tinynet/bench/

    bench.add_parser(commands)
    return parser


def parse_train_args(argv: list) -> argparse.Namespace:
    """Parse ``train`` options; with ``--resume`` the run's config.json supplies the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "train" or args.resume is None:
        return args
    checkpoint = resume_point(args.resume)  # or the run folder, when it has none yet
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UsageError(f"--resume: no config.json next to {checkpoint}")
    train = parser.train_parser
    saved = saved_args(config_path, train, FIXED_ON_RESUME + ("epochs",))
    train.set_defaults(**saved)
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        train.set_defaults(out=str(folder))  # keep writing into the resumed run
    args = parser.parse_args(argv)
    args.resume = str(checkpoint)
    for key in FIXED_ON_RESUME:
        if saved.get(key) is not None and getattr(args, key) != saved[key]:
            raise UsageError(f"--resume: --{key.replace('_', '-')} {getattr(args, key)} differs "
                             f"from the run being resumed ({saved[key]})")
    if args.schedule in PLANNED_SCHEDULES and args.epochs != saved["epochs"]:
        raise UsageError(f"--resume: the {args.schedule} schedule was laid out for "
                         f"{saved['epochs']} epochs; resume with that --epochs, or train a new run")
    return args


def _fill_defaults(args: argparse.Namespace) -> None:
    """Defaults that depend on other options (epochs on the model, lr on the optimizer, all of
    them on mnist1d: the paper's recipe)."""
    recipe = args.dataset == "mnist1d"
    if args.epochs is None:
        args.epochs = MNIST1D_DEFAULTS["epochs"] if recipe else 10 if args.model == "cnn" else 30
    if args.batch_size is None:
        args.batch_size = MNIST1D_DEFAULTS["batch_size"] if recipe else 32
    if args.schedule is None:
        args.schedule = MNIST1D_DEFAULTS["schedule"] if recipe else "cosine"
    if args.lr is None:
        args.lr = MNIST1D_DEFAULTS["lr"] if recipe and args.optimizer == "adam" else \
            DEFAULT_LR[args.optimizer]
    if args.model == "gru" and not recipe:
        raise UsageError("--model gru reads a signal as a sequence: use --dataset mnist1d")
    if args.augment is None:
        args.augment = "shift" if args.dataset == "digits" else "none"
    if args.augment == "shift" and args.dataset in ("spirals", "mnist1d"):
        raise UsageError("--augment shift needs images: use --dataset digits or mnist")
    if args.model == "cnn" and args.dataset == "spirals":
        raise UsageError("--model cnn needs images: use --dataset digits or mnist")
    if args.data_dir is not None and args.dataset != "mnist":
        raise UsageError(f"--data-dir is only read with --dataset mnist (the {args.dataset} data "
                         "is built in)")
    if args.dataset == "mnist":
        if args.data_dir is None:
            raise UsageError("--dataset mnist needs --data-dir DIR (the folder with the IDX files; "
                             "add --download to fetch them into it)")
        if not Path(args.data_dir).is_dir() and not args.download:
            raise UsageError(f"--data-dir: no such folder: {args.data_dir} (add --download to "
                             "fetch MNIST into it)")


def _device(name: str) -> tn.Device:
    try:
        device = tn.device(name)
        tn.zeros(1, device=device)  # CuPy is imported lazily: touch the device to find out now
    except (ValueError, RuntimeError, ImportError) as error:
        raise UsageError(f"--device {name}: {str(error).splitlines()[0]}") from None
    return device


# --------------------------------------------------------------------------------------------
# Data: load, split, normalise
# --------------------------------------------------------------------------------------------

def _split_indices(labels: np.ndarray, fractions, seed: int) -> list:
    """Index arrays, one per fraction, each holding every class in its proportion:
    ``tn.data.stratified_split``, seeded by a ``tn.Generator``."""
    return [part.indices for part in tn.data.stratified_split(labels, fractions, labels, seed=seed)]


def _arrays(dataset) -> tuple:
    """The (x, y) host arrays of an array-backed ``TensorDataset``."""
    x, y = dataset.tensors
    return x.numpy(), y.numpy()


def _mnist(args: argparse.Namespace, train: bool) -> tuple:
    """One MNIST split from ``--data-dir`` (fetched first with ``--download``) as host arrays; a
    missing file's message names the flag, not the Python argument ``download=True``."""
    try:
        return _arrays(tn.datasets.mnist(args.data_dir, train=train, download=args.download))
    except FileNotFoundError as error:
        raise FileNotFoundError(str(error).replace("pass download=True", "add --download")) \
            from None


def load_data(args: argparse.Namespace) -> dict:
    """``{"train": (x, y), "val": (x, y), "test": (x, y), "normalise": {...}}`` on the host."""
    image = args.model == "cnn" and args.dataset != "mnist1d"
    try:
        if args.dataset == "digits":
            x, y = _arrays(tn.datasets.digits(as_image=image))
            splits = [(x[i], y[i]) for i in _split_indices(y, SPLIT, args.seed)]
        elif args.dataset == "spirals":
            x, y = _arrays(tn.datasets.spirals(seed=args.seed))
            splits = [(x[i], y[i]) for i in _split_indices(y, SPLIT, args.seed)]
        elif args.dataset == "mnist1d":
            train, test = tn.datasets.mnist1d()
            x, y = _arrays(train)
            train_idx, val_idx = _split_indices(y, (1 - MNIST1D_VAL, MNIST1D_VAL), args.seed)
            splits = [(x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), _arrays(test)]
        else:
            x, y = _mnist(args, train=True)
            test = _mnist(args, train=False)
            train_idx, val_idx = _split_indices(y, (11 / 12, 1 / 12), args.seed)  # 55k / 5k
            splits = [(x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), test]
    except (OSError, ValueError, RuntimeError) as error:  # missing, unreadable or corrupt files
        raise UsageError(f"--dataset {args.dataset}: {str(error).splitlines()[0]}") from None
    (x_train, y_train), val, test = splits
    # Standardise with the training set's statistics only (the test set stays unseen): one mean
    # and std for pixels, one per feature for point clouds such as the spirals.
    # MNIST-1D comes standardised, and the paper's recipe feeds it as it is.
    axis = 0 if args.dataset == "spirals" else None
    mean = x_train.mean(axis=axis, keepdims=True)
    std = x_train.std(axis=axis, keepdims=True) + 1e-8
    if args.dataset == "mnist1d":
        mean, std = np.zeros_like(mean), np.ones_like(std)
    normed = [((xs - mean) / std).astype(np.float32, copy=False) for xs, _ in splits]
    samples = {"train": len(y_train), "val": len(val[1]), "test": len(test[1])}
    if args.augment == "shift":
        normed[0], y_train = shift_augment(normed[0], y_train, background=float((-mean / std).flat[0]))
        samples["train_augmented"] = len(y_train)
    return {"samples": samples, "train": (normed[0], y_train), "val": (normed[1], val[1]),
            "test": (normed[2], test[1]), "num_classes": int(y.max()) + 1,
            "normalise": {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}}


def shift_augment(x: np.ndarray, y: np.ndarray, background: float) -> tuple:
    """The images ``x`` plus four copies moved by one pixel (up, down, left, right), labels alike.

    A digit moved by a pixel is still the same digit: five times the training data, and a model
    that no longer depends on exact pixel positions. ``x`` is ``(N, H*W)`` with square images or
    ``(N, C, H, W)``; the uncovered edge is filled with ``background``.
    """
    shape = x.shape
    if x.ndim == 2:
        side = math.isqrt(shape[1])
        x = x.reshape(len(x), 1, side, side)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=background)
    h, w = x.shape[2:]
    copies = [x] + [padded[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]  # up, down, left, right
    x = np.concatenate(copies).reshape(len(copies) * len(x), *shape[1:])
    return np.ascontiguousarray(x, dtype=np.float32), np.concatenate([y] * len(copies))


def make_loader(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                device: tn.Device):
    dataset = tn.data.TensorDataset(tn.tensor(x, device=device), tn.tensor(y, device=device))
    if shuffle and dist.rank_and_size()[1] > 1:  # each rank: its shard of the same shuffled epoch
        sampler = tn.data.DistributedSampler(dataset, seed=seed)
        return tn.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    return tn.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed)


# --------------------------------------------------------------------------------------------
# Data-parallel runs (under mpiexec): the process group, and what each rank holds
# --------------------------------------------------------------------------------------------

def join_group(args: argparse.Namespace) -> bool:
    """Join a ``tn.distributed`` group when an MPI launcher started several processes (or
    ``--backend`` names one); returns whether this call created it."""
    if dist.is_initialized() or (args.backend == "auto" and dist.launcher_world_size() <= 1):
        return False  # one plain process: no group, exactly as without MPI
    try:
        tn.device(args.device)
    except ValueError as error:
        raise UsageError(f"--device {args.device}: {error}") from None
    try:
        dist.init_process_group(args.backend, device=args.device)
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"--backend {args.backend}: {str(error).splitlines()[0]}") from None
    return True


def _rank_device(name: str) -> str:
    """With several ranks, ``cuda`` is each rank's own GPU (``cuda:<local rank>``) when the
    machine has one per rank; else the ranks share the GPUs there are."""
    if dist.rank_and_size()[1] == 1 or name not in ("cuda", "gpu") or not tn.cuda.is_available():
        return name
    return f"cuda:{dist.get_local_rank() % tn.cuda.device_count()}"


def _shard(x: np.ndarray, y: np.ndarray) -> tuple:
    """This rank's share of an evaluation set: every W-th sample from its rank on, no padding, so
    the metrics averaged over ranks (``evaluate`` does) are exactly the whole set's."""
    rank, world = dist.rank_and_size()
    return (x, y) if world == 1 else (x[rank::world], y[rank::world])


def _data_parallel_model(model: tn.nn.Module, seed: int) -> tn.nn.Module:
    """The same start on every rank (rank 0's weights), BatchNorm over the global batch, and a
    random stream of each rank's own for dropout from here on."""
    model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    dist.broadcast_parameters(model, src=0)
    dist.seed_per_rank(seed)
    return model


# --------------------------------------------------------------------------------------------
# Model, optimizer, schedule
# --------------------------------------------------------------------------------------------

def build_model(args: argparse.Namespace, x_train: np.ndarray, num_classes: int) -> tn.nn.Module:
    features = int(np.prod(x_train.shape[1:]))
    if args.dataset == "mnist1d":  # the paper's four models
        return {"linear": tn.models.mnist1d_linear, "mlp": tn.models.mnist1d_mlp,
                "cnn": tn.models.mnist1d_cnn, "gru": tn.models.mnist1d_gru}[args.model](
                    features, num_classes=num_classes)
    if args.model == "linear":
        return tn.models.mnist1d_linear(features, num_classes)
    if args.model == "cnn":
        _, channels, size, _ = x_train.shape
        return tn.models.cnn(in_channels=channels, num_classes=num_classes, image_size=size)
    hidden = (64, 64) if args.dataset == "spirals" else (256, 128)
    dropout = 0.0 if args.dataset == "spirals" else 0.2
    return tn.models.mlp(in_features=features, hidden=hidden, num_classes=num_classes,
                         dropout=dropout)


def build_optimizer(args: argparse.Namespace, model: tn.nn.Module):
    params = list(model.parameters())
    if args.optimizer == "sgd":
        return tn.optim.SGD(params, lr=args.lr, momentum=0.9, nesterov=True)
    if args.optimizer == "adam":
        return tn.optim.Adam(params, lr=args.lr)
    if args.optimizer == "adamw":
        return tn.optim.AdamW(params, lr=args.lr)
    if args.optimizer == "rmsprop":
        return tn.optim.RMSprop(params, lr=args.lr)
    return tn.optim.Adagrad(params, lr=args.lr)


def build_schedule(args: argparse.Namespace, optimizer, steps_per_epoch: int):
    sched = tn.optim.lr_scheduler
    if args.schedule == "step":
        return sched.StepLR(optimizer, step_size=max(1, args.epochs // 3), gamma=0.1)
    if args.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if args.schedule == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                steps_per_epoch=steps_per_epoch)
    if args.schedule == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
    return None


def describe_model(model: tn.nn.Module) -> str:
    """The layers in one line: ``Flatten -> Linear(64, 256) -> ReLU -> Dropout(0.2) -> ...``."""
    def short(layer) -> str:
        name = type(layer).__name__
        if isinstance(layer, tn.nn.Linear):
            return f"{name}({layer.in_features}, {layer.out_features})"
        if isinstance(layer, (tn.nn.Conv1d, tn.nn.Conv2d)):
            k = "x".join(str(k) for k in layer.kernel_size)
            return f"{name}({layer.in_channels}, {layer.out_channels}, {k})"
        if isinstance(layer, tn.nn.GRU):
            both = ", bidirectional" if layer.bidirectional else ""
            return f"{name}({layer.input_size}, {layer.hidden_size}{both})"
        for attr in ("p", "num_features", "kernel_size"):  # Dropout, BatchNorm, pooling
            if isinstance(getattr(layer, attr, None), (int, float)):
                return f"{name}({getattr(layer, attr)})"
        return name
    return " -> ".join(short(layer) for layer in model.children())


# --------------------------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------------------------

# One BLAS thread unless asked otherwise: the models here are small enough that a second thread
# gains little when the machine is idle, and OpenBLAS threads that wait for a busy core make a
# step several times slower under load (docs/training.md section 10 has the measurements).
DEFAULT_THREADS = 1


def set_threads(args: argparse.Namespace, make_trial) -> str:
    """Set NumPy's BLAS thread count as ``--threads`` asks; returns the line to print about it.

    For ``auto``, ``make_trial()`` gives a function that times a few training steps
    (microseconds per step), and the bench's rule picks: one thread unless all CPUs are 10%
    faster. Without ``--threads`` the count is ``DEFAULT_THREADS``, unless a thread variable was
    set before start (then it is left alone). OpenBLAS's count is changed at run time (its own C
    function, or threadpoolctl), before the first training step.
    """
    from .bench import THREAD_ENV_VARS, faster_thread_count

    asked, why = args.threads, ""
    if asked is None:
        preset = next((k for k in THREAD_ENV_VARS if os.environ.get(k)), None)
        if preset is not None:
            return f"BLAS threads: {runtime.blas_thread_count() or '?'} (from {preset})"
        asked, why = DEFAULT_THREADS, " (the default; --threads auto|N to change)"
    if asked == "auto":
        if args.device.startswith("cuda"):  # the GPU does the math: the host needs no threads
            asked, why = 1, " (auto: the GPU does the math)"
        elif dist.rank_and_size()[1] > 1:  # W ranks of a C-core machine: C / W threads each
            local = dist.default_group().local_world_size
            asked = max(1, (os.cpu_count() or 1) // local)
            why = f" (auto: {os.cpu_count()} cores shared by {local} ranks on this machine)"
        else:
            chosen, trial = faster_thread_count(make_trial())
            timings = ", ".join(f"{n}: {us:,.0f} us" for n, us in trial.items())
            return f"BLAS threads: {chosen} (auto: per step {timings})"
    if not runtime.set_blas_threads(asked):
        return (f"BLAS threads: could not set {asked} at run time (NumPy's BLAS is not OpenBLAS "
                f"and threadpoolctl is not installed): set OMP_NUM_THREADS={asked} before "
                f"starting; using {runtime.blas_thread_count() or 'the default'}")
    return f"BLAS threads: {asked}{why}"


def trial_steps(args: argparse.Namespace, data: dict, device: tn.Device):
    """A function timing a few training steps (us per step) of a throwaway copy of the model,
    with its own weights and optimizer: the run's own stay untouched (and seeded alike)."""
    from .bench import trial_step_us

    x, y = data["train"]
    model = build_model(args, x, data["num_classes"]).to(device)
    optimizer = build_optimizer(args, model)
    return lambda: trial_step_us(model, optimizer, tn.nn.CrossEntropyLoss(), x, y,
                                 args.batch_size, device)


# --------------------------------------------------------------------------------------------
# Run folder and output
# --------------------------------------------------------------------------------------------

RUN_FILES = {  # what the run folder holds, as the end of the output lists it
    "best.npz": "the weights of the best epoch (lowest val_loss): the test accuracy is theirs",
    "config.json": "the options, sample counts, normalisation and result of this run",
    "history.csv": "the table above, one row per epoch",
    "last.npz": "weights, optimizer and schedule after the last epoch (for --resume)",
    "learning_curves.png": "loss (log scale), accuracy and learning rate per epoch",
}
TABLE_LEGEND = ("loss, accuracy: training set, mean over the epoch's batches (dropout and "
                "augmentation on); val_loss, val_acc: validation set after the epoch; *: the "
                "lowest val_loss so far, i.e. the best epoch (its weights are kept in best.npz)")
TABLE_HEADER = (f"{'epoch':>5}  {'loss':>8}  {'accuracy':>8}  {'val_loss':>8}  "
                f"{'val_acc':>8}  {'lr':>9}  {'time':>6}")


def format_row(row: dict, best: bool) -> str:
    """One line of the per-epoch table (``*``: the best validation loss so far)."""
    def num(key, spec):
        value = row.get(key)
        return format(value, spec) if value is not None else format("-", spec.split(".")[0] + "s")
    return (f"{row['epoch']:>5}  {num('loss', '8.4f')}  {num('accuracy', '8.4f')}  "
            f"{num('val_loss', '8.4f')}  {num('val_accuracy', '8.4f')}  {num('lr', '9.2e')}  "
            f"{row.get('time', 0.0):5.2f}s" + ("  *" if best else ""))


class EpochTable(tn.train.callbacks.Callback):
    """Prints one table row per finished epoch; the row with the best val_loss so far gets ``*``."""

    rank_zero_only = True  # one table for the job

    def __init__(self, best: float = math.inf):
        self.best = best

    def on_train_begin(self, state) -> None:
        if not state.stop_training and state.epoch < state.epochs:  # else no row follows
            print(textwrap.fill(TABLE_LEGEND, 100), flush=True)
            print(TABLE_HEADER, flush=True)

    def on_epoch_end(self, state) -> None:
        val = state.logs.get("val_loss")
        improved = val is not None and val < self.best
        if improved:
            self.best = val
        print(format_row(state.logs, improved), flush=True)


# --------------------------------------------------------------------------------------------
# The train command
# --------------------------------------------------------------------------------------------

def train(args: argparse.Namespace) -> dict:
    """Run ``tinynet train`` with parsed options; returns the final test metrics."""
    _fill_defaults(args)
    rank, world = dist.rank_and_size()
    device = _device(_rank_device(args.device))
    data = load_data(args)
    x_train, y_train = data["train"]
    if args.batch_size > data["samples"]["train"]:
        raise UsageError(f"--batch-size {args.batch_size} is larger than the training set "
                         f"({data['samples']['train']} samples)")
    say = (lambda *a: None) if args.quiet or rank > 0 else print
    threads = set_threads(args, lambda: trial_steps(args, data, device))  # before any step
    tn.manual_seed(args.seed)  # weights and dropout masks (after the trial steps of auto)
    model = build_model(args, x_train, data["num_classes"]).to(device)
    if world > 1:
        model = _data_parallel_model(model, args.seed)
    train_loader = make_loader(x_train, y_train, args.batch_size, True, args.seed, device)
    val_loader = make_loader(*_shard(*data["val"]), EVAL_BATCH, False, args.seed, device)
    test_loader = make_loader(*_shard(*data["test"]), EVAL_BATCH, False, args.seed, device)
    optimizer = build_optimizer(args, model)
    if world > 1:
        optimizer = dist.DistributedOptimizer(optimizer)
    scheduler = build_schedule(args, optimizer, len(train_loader))
    loss_fn = tn.nn.CrossEntropyLoss()

    start_epoch, history, resumed = 0, None, None
    if args.resume is not None:
        resumed = Path(args.resume)
    if resumed is not None and not resumed.is_dir():  # a folder: killed before a checkpoint
        try:
            start_epoch, history = tn.train.resume(resumed, model, optimizer, scheduler,
                                                   train_loader)
        except (ValueError, OSError) as error:
            raise UsageError(f"--resume: {one_line(error)}") from None
        if start_epoch > args.epochs:
            raise UsageError(f"--resume: --epochs {args.epochs} is below the {start_epoch} epochs "
                             f"the checkpoint has done; pass --epochs {start_epoch} or more")
    run_dir = None
    if rank == 0:
        run_dir = make_run_dir(args, None if resumed is None else
                               resumed if resumed.is_dir() else resumed.parent)
        if resumed is not None:
            fork(resumed, run_dir)
    if world > 1:
        run_dir = dist.broadcast_object(run_dir, src=0)  # rank 0 named it
    config = {"args": {k: v for k, v in vars(args).items() if k != "command"},
              "samples": data["samples"],
              "num_classes": data["num_classes"], "normalise": data["normalise"],
              "parameters": sum(p.numel() for p in model.parameters()),
              "blas_threads": runtime.blas_thread_count(), "world_size": world,
              "backend": dist.get_backend() if world > 1 else None, "tinynet": tn.__version__}
    if rank == 0:
        start_writing(run_dir, config)  # without a result: the run is in progress

    samples = data["samples"]
    shifted = (f" (x5 with one-pixel shifts: {samples['train_augmented']})"
               if args.augment == "shift" else "")
    say(f"{args.dataset}: {samples['train']} train{shifted}, {samples['val']} val, "
        f"{samples['test']} test samples")
    layers = describe_model(model).replace(", ", ",\xa0")  # wrap between layers only
    say(textwrap.fill(f"{args.model}, {config['parameters']:,} parameters on {device}: {layers}",
                      100, subsequent_indent="    ").replace("\xa0", " "))
    say(f"{args.optimizer} lr {args.lr:g}, {args.schedule} schedule; {args.epochs} epochs of "
        f"{len(train_loader)} iterations (batch size {args.batch_size}, reshuffled every epoch)")
    if world > 1:
        say(f"data-parallel on {world} ranks ({dist.get_backend()}): each takes its shard of "
            f"every epoch; {args.batch_size} samples per rank, {args.batch_size * world} per step")
    say(threads)
    callbacks = [tn.train.callbacks.NaNGuard()]  # stops, naming the epoch and iteration
    if args.patience:
        callbacks.append(tn.train.callbacks.EarlyStopping(monitor="val_loss",
                                                          patience=args.patience))
    callbacks += [tn.train.callbacks.ModelCheckpoint(run_dir, monitor="val_loss"),
                  HistoryFile(run_dir / "history.csv")]  # after the checkpoints it describes
    if not args.quiet and rank == 0:
        best = min((r["val_loss"] for r in history.epochs), default=math.inf) if history else \
            math.inf
        # The bar erases itself at the end of each epoch, then the table prints the epoch's row.
        # Into a file or pipe (a log) no bar at all: tqdm would leave every redraw there.
        callbacks.append(tn.train.callbacks.ProgressBar(
            leave=False, use_tqdm=None if sys.stderr.isatty() else False))
        callbacks.append(EpochTable(best))
    start = time.perf_counter()
    step_per = "iteration" if args.schedule == "onecycle" else "epoch"
    try:
        with np.errstate(all="ignore"):  # a diverging run: NaNGuard says where, in one line
            history = tn.train.fit(model, loss_fn, optimizer, train_loader, args.epochs,
                                   val_loader=val_loader, scheduler=scheduler,
                                   callbacks=callbacks, device=device, progress=False,
                                   start_epoch=start_epoch, history=history, step_per=step_per)
        elapsed = time.perf_counter() - start
        if resumed is not None and len(history.epochs) == start_epoch:
            _say_why_nothing_trained(history, start_epoch, args.epochs)
        return _finish(run_dir, config, history, model, test_loader, loss_fn, device, elapsed,
                       say)
    except OSError as error:
        raise write_failed(error, run_dir) from None



def _say_why_nothing_trained(history, start_epoch: int, epochs: int) -> None:
    """A resumed run that trained no epoch: it had done all of them, or had stopped early."""
    if start_epoch == epochs:
        print(f"nothing to train: the run has done its {epochs} epochs; pass --epochs above "
              f"{epochs} to train on")
    elif history.stopped_epoch == start_epoch:  # EarlyStopping, before the first epoch
        print(f"nothing to train: {history.stop_reason}; a larger --patience, or --patience 0, "
              "trains on")


def _finish(run_dir: Path, config: dict, history, model, test_loader, loss_fn, device,
            elapsed: float, say) -> dict:
    """The end of a run: its history and curves, the test accuracy of best.npz, and the result
    in config.json (written last: a result means the run finished). Rank 0 writes; every rank
    evaluates the best weights on its shard of the test set."""
    rank, world = dist.rank_and_size()
    if rank == 0:
        history.to_csv(run_dir / "history.csv")
    has_best = (run_dir / "best.npz").is_file() if rank == 0 else None
    if world > 1:
        has_best = dist.broadcast_object(has_best, src=0)  # rank 0 wrote it: every rank agrees
    if not has_best or not history.epochs:
        raise TrainingFailed("no epoch ended with a finite validation loss; try a smaller --lr")
    best_epoch = None
    if rank == 0:
        checkpoint = tn.load(run_dir / "best.npz")
        model.load_state_dict(checkpoint["model"])
        best_epoch = int(checkpoint["epoch"])
    if world > 1:
        dist.broadcast_parameters(model, src=0)  # no shared folder needed to read it
        best_epoch = dist.broadcast_object(best_epoch, src=0)
    test = tn.train.evaluate(model, test_loader, loss_fn=loss_fn, device=device)
    result = {"test_accuracy": float(test["accuracy"]), "test_loss": float(test["loss"]),
              "best_epoch": best_epoch, "epochs_run": len(history.epochs),
              "train_seconds": round(elapsed, 2)}
    options = config["args"]
    if rank == 0:
        try:
            history.plot(run_dir / "learning_curves.png",
                         title=f"{options['model']} on {options['dataset']}: test accuracy "
                               f"{result['test_accuracy']:.4f} with the best epoch "
                               f"({result['best_epoch']}, lowest val_loss)")
        except ImportError:
            say("learning_curves.png not written: matplotlib is not installed "
                "(pip install \"tinynet[plot]\")")
    config["result"] = result
    if rank == 0:
        write_json(run_dir / "config.json", config)  # last: a result means the run finished
        print(f"test accuracy {result['test_accuracy']:.4f} (loss {result['test_loss']:.4f}) "
              f"with the best checkpoint, lowest val_loss (epoch {result['best_epoch']}); "
              f"trained in {elapsed:.1f} s")
        print(f"run folder: {run_dir}")
        for name in sorted(p.name for p in run_dir.iterdir() if p.is_file()):
            say(f"  {name:<20} {RUN_FILES.get(name, '')}".rstrip())
    return result


def main(argv: list | None = None) -> int:
    """Entry point of the ``tinynet`` console script; returns the exit status.

    In a job of several ranks, a failure on any of them ends them all (``MPI_Abort``) with its
    exit status, instead of leaving the others waiting for it.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    joined: list = []  # [True] once this call has created a process group
    code = _run(argv, joined)
    if any(joined):
        if code != 0 and dist.get_world_size() > 1:
            dist.abort(code)
        dist.destroy_process_group()
    return code


def _run(argv: list, joined: list) -> int:
    try:
        args = parse_train_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        if args.command == "bench":
            from . import bench

            return bench.main(args, argv)
        # The command owns its process: keep freed memory for the next step's temporaries instead
        # of page-faulting it in again every step (tinynet/runtime.py; glibc only).
        runtime.keep_freed_memory()
        joined.append(join_group(args))
        train(args)
    except SystemExit as stop:  # argparse: --help (0) or a bad option (2, message printed)
        return stop.code if isinstance(stop.code, int) else 2
    except UsageError as error:
        print(f"tinynet train: error{_which_rank()}: {error}", file=sys.stderr)
        return 2
    except WriteFailed as error:
        print(f"tinynet train: error: {error}", file=sys.stderr)
        return 1
    except TrainingFailed as error:
        print(f"tinynet train: training failed{_which_rank()}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tinynet train: interrupted{_which_rank()}", file=sys.stderr)
        return 130
    return 0


def _which_rank() -> str:
    rank, world = dist.rank_and_size()
    return f" (rank {rank} of {world})" if world > 1 else ""


if __name__ == "__main__":
    sys.exit(main())
