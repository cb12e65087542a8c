"""MNIST-1D: 5,000 one-dimensional "digits" of length 40 that separate models (embedded + variants).

MNIST-1D (S. Greydanus and D. Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024,
arXiv:2011.14439; Apache-2.0) draws each sample from one of ten hand-made templates, then pads,
stretches, translates, shears and adds correlated and white noise, and resamples it to 40 points.
Logistic regression, an MLP, a CNN and a GRU score very differently on it (about 32, 68, 94 and 91%
in the paper), which is what the 8x8 digits cannot show.

- :func:`mnist1d` with its default arguments returns the paper's dataset from ``data/mnist1d.npz``,
  shipped in the package and checksummed: exactly the values the reference generator
  (``pip install mnist1d``) makes with its default arguments, rounded to float32 (see
  :func:`read_mnist1d_file` for why that rounding cannot matter).
- Any other argument (more samples, other noise, ``shuffle_seq=True`` ...) generates a variant with
  the reference package, when it is installed (the ``mnist1d`` extra).

Read ``embedded.py`` first (the same pattern for the 8x8 digits); ``tinynet/models.py`` holds the
paper's models and ``docs/mnist1d.md`` the paper's training recipe.
"""

from __future__ import annotations

import functools
import io
import random
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from .base import check_digest, digest, to_dataset

MNIST1D_FILE = "mnist1d.npz"
# SHA-256 of data/mnist1d.npz (written by write_mnist1d_file from the reference generator's output).
MNIST1D_SHA256 = "161719b7b698e80b18e833d92b09c38c8307d56697fc3b57508fff970b9c0a3d"

# The reference generator's defaults (mnist1d.data.get_dataset_args(), mnist1d 0.0.2): the
# embedded dataset is what these make.
MNIST1D_DEFAULTS = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": (36, 60),
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 0.02,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}
LAYOUTS = ("NL", "NCL", "NLC")
_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Inflated size of the arrays in the file is about 1 MB; anything claiming more is not our file.
_MAX_INFLATED_BYTES = 64 * 2**20
_INSTALL_HINT = ('pip install "tinynet[mnist1d]" (or pip install mnist1d; it pulls in SciPy, '
                 'Matplotlib and requests)')


# --- the embedded file -------------------------------------------------------------------------
def _byte_planes(x: np.ndarray) -> np.ndarray:
    """float32 (N, L) -> uint8 (4, N, L): plane k holds byte k of each little-endian float32.

    Signs and exponents vary little between samples, so grouping them in their own planes lets
    deflate shrink them; the mantissa planes are noise and stay as large as they are.
    """
    raw = np.ascontiguousarray(x, dtype="<f4").view(np.uint8)  # (N, 4 L)
    return np.ascontiguousarray(np.moveaxis(raw.reshape(*x.shape, 4), -1, 0))  # (4, N, L)


def _from_byte_planes(planes: np.ndarray) -> np.ndarray:
    """uint8 (4, N, L) -> float32 (N, L) in native byte order (inverse of ``_byte_planes``)."""
    raw = np.ascontiguousarray(np.moveaxis(planes, 0, -1))  # (N, L, 4)
    return raw.view("<f4")[..., 0].astype(np.float32)  # (N, L)


def write_mnist1d_file(path: str | Path, x_train: np.ndarray, y_train: np.ndarray,
                       x_test: np.ndarray, y_test: np.ndarray) -> str:
    """Write a dataset in the embedded file's format; return the file's SHA-256.

    The format is a NumPy ``.npz`` (a zip of ``.npy`` files, deflated, fixed timestamps so the
    same arrays give the same bytes): ``x_train``, ``x_test`` as uint8 ``(4, N, L)`` byte planes
    of little-endian float32 values, ``y_train``, ``y_test`` as uint8 ``(N,)``. This is how
    ``data/mnist1d.npz`` was made from ``mnist1d.data.make_dataset(get_dataset_args())``.
    """
    arrays = {"x_train": _byte_planes(x_train), "y_train": np.asarray(y_train, dtype=np.uint8),
              "x_test": _byte_planes(x_test), "y_test": np.asarray(y_test, dtype=np.uint8)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, array, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, npy.getvalue(), compresslevel=9)
    data = buffer.getvalue()
    Path(path).write_bytes(data)
    return digest(data)


def read_mnist1d_file(path: str | Path, sha256: str = MNIST1D_SHA256) -> tuple[np.ndarray, ...]:
    """Parse and verify an MNIST-1D file: ``(x_train, y_train, x_test, y_test)`` on the host.

    x float32 (N, L), y uint8 (N,). The values are the reference generator's float64 values
    rounded to the nearest float32: that is exactly what the paper's training code trains on (it
    wraps the arrays in ``torch.Tensor``, which is float32), and the float32 values are the same
    whether they come from the published ``mnist1d_data.pkl`` or from the generator run today
    (whose float64 values differ from the pickle's in the last bit or two).

    Raises:
        ChecksumError: the file's SHA-256 is not ``sha256`` (checked before anything is inflated).
        ValueError: the file passes the checksum but is not in this format (only possible with a
            custom ``sha256``).
    """
    raw = Path(path).read_bytes()
    check_digest(raw, sha256, path)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not an MNIST-1D file (.npz, a zip archive): {exc}") from exc
    if inflated > _MAX_INFLATED_BYTES:
        raise ValueError(f"{path}: the archive would inflate to {inflated} bytes, more than "
                         f"the {_MAX_INFLATED_BYTES} an MNIST-1D file needs")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        if sorted(npz.files) != sorted(_KEYS):
            raise ValueError(f"{path}: expected arrays {list(_KEYS)}, got {npz.files}")
        arrays = {key: npz[key] for key in _KEYS}
    out = []
    for split in ("train", "test"):
        planes, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if planes.dtype != np.uint8 or planes.ndim != 3 or planes.shape[0] != 4:
            raise ValueError(f"{path}: x_{split} must be uint8 byte planes (4, N, L), got "
                             f"{planes.dtype} {planes.shape}")
        if labels.dtype != np.uint8 or labels.shape != planes.shape[1:2]:
            raise ValueError(f"{path}: y_{split} must be uint8 ({planes.shape[1]},), got "
                             f"{labels.dtype} {labels.shape}")
        out += [_from_byte_planes(planes), labels]
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _embedded_arrays() -> tuple[np.ndarray, ...]:
    # Parsed once per process (a few milliseconds); callers get copies, never these arrays.
    with resources.as_file(resources.files(__package__) / "data" / MNIST1D_FILE) as path:
        return read_mnist1d_file(path)


# --- variants through the reference generator --------------------------------------------------
def generate_mnist1d(**args) -> tuple[np.ndarray, ...]:
    """Run the reference generator: ``(x_train, y_train, x_test, y_test)`` as it returns them.

    ``args`` override :data:`MNIST1D_DEFAULTS`; x is float64 (N, L), y int64 (N,). The generator
    seeds NumPy's and Python's global random streams (``mnist1d.utils.set_seed``); both are put
    back as they were afterwards, so generating a dataset changes no one else's random numbers.

    Raises:
        ModuleNotFoundError: the ``mnist1d`` package is not installed (the message says how).
    """
    unknown = sorted(set(args) - set(MNIST1D_DEFAULTS))
    if unknown:
        raise TypeError(f"generate_mnist1d: unknown argument(s) {unknown}; the generator takes "
                        f"{sorted(MNIST1D_DEFAULTS)}")
    try:
        from mnist1d.data import make_dataset
        from mnist1d.utils import ObjectView
    except ModuleNotFoundError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "generate=True"
        raise ModuleNotFoundError(
            f"mnist1d({given}): generating an MNIST-1D variant needs the reference generator, "
            f"the mnist1d package ({exc.name!r} is missing): {_INSTALL_HINT}. Without it, "
            "mnist1d() with the default arguments returns the embedded paper dataset.",
            name=exc.name) from exc
    settings = {**MNIST1D_DEFAULTS, **args}
    settings["padding"] = list(settings["padding"])
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(settings))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def _check_variant(args: dict) -> None:
    """Reject arguments the generator would turn into an empty split or an obscure error."""
    n = args["num_samples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 10:
        raise ValueError(f"mnist1d: num_samples must be an integer >= 10 (the generator makes "
                         f"num_samples // 10 samples of each of the 10 classes), got {n!r}")
    total = n // 10 * 10
    n_train = int(total * args["train_split"])
    if not 0 < n_train < total:
        raise ValueError(f"mnist1d: train_split={args['train_split']!r} of {total} samples gives "
                         f"{n_train} training and {total - n_train} test samples; both must be "
                         "at least 1")
    for name in ("template_len", "max_translation", "final_seq_length"):
        value = args[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"mnist1d: {name} must be a positive integer, got {value!r}")
    padding = tuple(args["padding"])
    if len(padding) != 2 or not all(isinstance(p, int) and p >= 0 for p in padding) \
            or padding[0] > padding[1]:
        raise ValueError(f"mnist1d: padding must be two integers (low, high) with "
                         f"0 <= low <= high, got {args['padding']!r}")


# --- the public function -----------------------------------------------------------------------
def mnist1d(*, num_samples: int = 5000, train_split: float = 0.8, template_len: int = 12,
            padding: tuple[int, int] = (36, 60), scale_coeff: float = 0.4,
            max_translation: int = 48, corr_noise_scale: float = 0.25,
            iid_noise_scale: float = 0.02, shear_scale: float = 0.75, shuffle_seq: bool = False,
            final_seq_length: int = 40, seed: int = 42, layout: str = "NL",
            generate: bool = False, device=None):
    """MNIST-1D: the paper's 4,000 training and 1,000 test signals of length 40, 10 classes.

    With the default arguments the data come from the file shipped in the package (no extra
    dependency). Changing any generator argument -- or ``generate=True`` -- runs the reference
    generator instead (``pip install "tinynet[mnist1d]"``); the defaults below are its own.

    Args:
        num_samples: samples in both splits together; ``num_samples // 10`` of each class.
        train_split: fraction of the (shuffled) samples in the training split; the rest is test.
        template_len, padding, scale_coeff, max_translation, corr_noise_scale, iid_noise_scale,
            shear_scale: the generator's transformations (see ``docs/data.md``).
        shuffle_seq: permute the 40 positions of every signal with one fixed random
            permutation (the paper's "shuffled" row: models with a spatial prior lose it).
        final_seq_length: length L of each signal.
        seed: the generator's seed.
        layout: ``"NL"`` gives X of shape (N, L); ``"NCL"`` (N, 1, L) for ``Conv1d``;
            ``"NLC"`` (N, L, 1) for a ``batch_first`` recurrent layer.
        generate: run the generator even for the default arguments (to check the embedded copy).
        device: where the tensors live (default: tinynet's default device).

    Returns:
        ``(train, test)``, two ``TensorDataset(X, y)``: X float32 (standardised: mean 0 and
        standard deviation 1 over both splits), y int64 in 0..9. The samples are already in a
        random order.

    Raises:
        ChecksumError: the packaged file is corrupted (its SHA-256 is checked on load).
        ModuleNotFoundError: a variant is asked for and the ``mnist1d`` package is missing.
        ValueError: ``layout`` is not one of ``"NL"``, ``"NCL"``, ``"NLC"``, or a generator
            argument would give an empty split.

    Example:
        >>> train, test = tn.datasets.mnist1d()
        >>> len(train), len(test), train.tensors[0].shape
        (4000, 1000, (4000, 40))
    """
    if layout not in LAYOUTS:
        raise ValueError(f"mnist1d: layout must be one of {LAYOUTS} (N samples, C=1 channel, "
                         f"L positions), got {layout!r}")
    args = {"num_samples": num_samples, "train_split": train_split, "template_len": template_len,
            "padding": padding, "scale_coeff": scale_coeff, "max_translation": max_translation,
            "corr_noise_scale": corr_noise_scale, "iid_noise_scale": iid_noise_scale,
            "shear_scale": shear_scale, "shuffle_seq": shuffle_seq,
            "final_seq_length": final_seq_length, "seed": seed}
    changed = {k: v for k, v in args.items()
               if (tuple(v) if k == "padding" else v) != MNIST1D_DEFAULTS[k]}
    if changed or generate:
        _check_variant(args)
        x_train, y_train, x_test, y_test = generate_mnist1d(**changed)
    else:
        x_train, y_train, x_test, y_test = _embedded_arrays()
    shape = {"NL": (-1,), "NCL": (1, -1), "NLC": (-1, 1)}[layout]
    return tuple(
        to_dataset(x.astype(np.float32).reshape(len(x), *shape), y.astype(np.int64),
                   device=device)
        for x, y in ((x_train, y_train), (x_test, y_test)))
