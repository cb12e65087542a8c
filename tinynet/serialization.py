"""Checkpoints: ``tn.save(obj, path)`` and ``tn.load(path, map_location=None)``, without pickle.

A checkpoint is a ``.npz`` file (a ZIP archive of ``.npy`` members, as ``numpy.savez`` writes) plus
one JSON member describing the structure. Format version 1:

* ``tinynet.json`` -- UTF-8 JSON: ``{"format": "tinynet.checkpoint", "version": 1,
  "tinynet_version": ..., "root": NODE}``. A NODE is one of
  ``{"type": "none"}``, ``{"type": "bool"|"int"|"str", "value": ...}``,
  ``{"type": "float", "value": number or "nan"/"inf"/"-inf"}``,
  ``{"type": "list"|"tuple", "items": [NODE, ...]}``,
  ``{"type": "dict"|"OrderedDict", "items": [[KEY_NODE, NODE], ...]}`` (keys are str, int or bool
  nodes, kept in order, so optimizer state dicts keep their integer keys),
  ``{"type": "tensor", "member": M, "dtype": "float32", "shape": [...], "device": "cuda:0",
  "requires_grad": false, "parameter": false}``, and
  ``{"type": "ndarray", "member": M, "dtype": ..., "shape": [...], "scalar": false}`` for host
  NumPy arrays (``scalar``: a NumPy scalar such as ``numpy.float32(1.5)``).
* one ``.npy`` member per distinct array, named after its key path for readability
  (``fc.weight.npy``, ``optimizer/state/0/momentum_buffer.npy``); the JSON is authoritative. Two
  tensors sharing one array are stored once and come back sharing one array.

So ``numpy.load("model.npz")["fc.weight"]`` reads a weight without tinynet. Nothing in the file is
ever unpickled: members are read with ``allow_pickle=False`` and a file carrying a pickled object
(an object array, a pickle, a PyTorch ``.pt``) is refused. Writes are atomic: the archive goes to a
temporary file in the destination directory, which is flushed, fsynced and then renamed over the
destination (``os.replace``), so a crash leaves either the old checkpoint or the new one.

Read next: ``nn/module.py`` (``state_dict``, ``load_state_dict``).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import zipfile
from collections import OrderedDict

from . import backend
from .backend import Device
from .nn.module import Parameter
from .tensor import Tensor

FORMAT_NAME = "tinynet.checkpoint"
FORMAT_VERSION = 1
STRUCTURE_MEMBER = "tinynet.json"
_CHUNK = 1 << 20  # bytes per os.write call

__all__ = ["FORMAT_VERSION", "CheckpointError", "load", "save"]


class CheckpointError(ValueError):
    """A file that is not a readable tinynet checkpoint (corrupt, truncated, pickled, too new)."""


# --------------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------------


def save(obj, path) -> None:
    """Write ``obj`` (nested dicts, lists and tuples of tensors, NumPy arrays, numbers, strings,
    bools and None: a state dict, an optimizer state dict, a training checkpoint) to ``path``.

    The file is replaced atomically: a crash mid-write leaves the previous file untouched. Tensors
    on a GPU are copied to the host for writing; they (and the model they belong to) stay where
    they are.

    Raises:
        TypeError: a value of another type (naming where it is, e.g. ``['optim']['lr_fn']``).

    Example:
        >>> tn.save({"model": model.state_dict(), "epoch": 3}, "ckpt.npz")
        >>> model.load_state_dict(tn.load("ckpt.npz")["model"])
    """
    path = os.fspath(path)
    arrays: dict = {}  # member name -> host array
    root = _Encoder(arrays).encode(obj)  # before touching the disk: a TypeError leaves no trace
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
              "tinynet_version": _tinynet_version(), "root": root}
    structure = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    _atomic_write(path, lambda f: _write_archive(f, structure, arrays))


class _Encoder:
    """Turns a Python object into a JSON node, collecting its arrays (host copies) by member."""

    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.members_by_array: dict = {}  # id(backend array) -> member name (shared arrays once)
        self.keepalive: list = []  # the arrays whose ids are keys above, so no id is reused

    def encode(self, obj, path: tuple = ()) -> dict:
        xp = backend.host_namespace()
        if obj is None:
            return {"type": "none"}
        if isinstance(obj, bool):
            return {"type": "bool", "value": obj}
        if isinstance(obj, Tensor):
            return {"type": "tensor", **self._array_node(obj.data, obj.device, path),
                    "device": str(obj.device), "requires_grad": obj.requires_grad,
                    "parameter": isinstance(obj, Parameter)}
        if isinstance(obj, (xp.ndarray, xp.generic)):  # before float: numpy.float64 is a float
            return {"type": "ndarray", **self._array_node(xp.asarray(obj), Device("cpu"), path),
                    "scalar": isinstance(obj, xp.generic)}
        if isinstance(obj, int):
            return {"type": "int", "value": int(obj)}
        if isinstance(obj, float):
            value = float(obj)
            return {"type": "float", "value": value if math.isfinite(value) else repr(value)}
        if isinstance(obj, str):
            return {"type": "str", "value": str(obj)}
        if isinstance(obj, (list, tuple)):
            return {"type": "tuple" if isinstance(obj, tuple) else "list",
                    "items": [self.encode(v, path + (i,)) for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)):  # bool is an int
                    raise TypeError(f"tn.save: dict key {k!r} at {_where(path)} is a "
                                    f"{type(k).__name__}; keys must be str, int or bool")
                items.append([self.encode(k, path), self.encode(v, path + (k,))])
            return {"type": "OrderedDict" if isinstance(obj, OrderedDict) else "dict",
                    "items": items}
        raise TypeError(f"tn.save cannot store a {type(obj).__name__} (at {_where(path)}): "
                        "checkpoints hold tensors, NumPy arrays, numbers, strings, bools, None "
                        "and dicts/lists/tuples of them")

    def _array_node(self, arr, device: Device, path: tuple) -> dict:
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"tn.save cannot store an array of dtype {arr.dtype} (at "
                            f"{_where(path)}): only numeric and bool arrays (never objects)")
        member = self.members_by_array.get(id(arr))
        if member is None:
            member = self._member_name(path)
            self.members_by_array[id(arr)] = member
            self.keepalive.append(arr)
            # An explicit copy to host memory: the tensor itself is never moved.
            self.arrays[member] = backend.transfer(arr, device, Device("cpu"))
        return {"member": member, "dtype": str(arr.dtype), "shape": list(arr.shape)}

    def _member_name(self, path: tuple) -> str:
        parts = [re.sub(r"[^A-Za-z0-9_.\-]", "_", str(p)) or "_" for p in path]
        parts = ["_" if p in (".", "..") else p for p in parts]
        base = "/".join(parts) or "root"
        name, n = f"{base}.npy", 1
        while name in self.arrays or name == STRUCTURE_MEMBER:
            name, n = f"{base}#{n}.npy", n + 1
        return name


def _write_archive(f, structure: bytes, arrays: dict) -> None:
    """The ZIP (``.npz``) layout: the structure first, then one ``.npy`` member per array."""
    xp = backend.host_namespace()
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(STRUCTURE_MEMBER, structure)
        for member, arr in arrays.items():
            with zf.open(member, "w", force_zip64=True) as out:
                xp.lib.format.write_array(out, arr, allow_pickle=False)


class _FdWriter:
    """A write-only file over a descriptor; every byte goes through ``os.write`` (no hidden buffer
    that could be lost), and ``tell`` lets ``zipfile`` stream members without seeking."""

    def __init__(self, fd: int):
        self.fd = fd
        self.position = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self.fd, view[done:done + _CHUNK])
        self.position += done
        return done

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass  # nothing is buffered here; _atomic_write fsyncs the descriptor


def _atomic_write(path: str, write) -> None:
    """Run ``write(file)`` into a temporary file next to ``path``, then rename it over ``path``.

    The temporary file lives in the same directory (a rename is only atomic within one file
    system), is fsynced before the rename (so the new name never points at data still in the
    page cache) and removed if anything fails. The directory is fsynced after the rename so the
    new entry survives a power loss.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a file made by open()
    try:
        try:
            write(_FdWriter(fd))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows: directories cannot be opened; the rename is already durable there
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the data itself is synced
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------


def load(path, map_location=None):
    """Read a checkpoint written by :func:`save`.

    Args:
        path: the file.
        map_location: where tensors go. ``None``: the device each was saved from. A device
            (``"cpu"``, ``"standin"``, ``"cuda:1"``, a ``tn.Device``): all of them there. A dict
            ``{"cuda:0": "cpu"}``: saved device -> device (others stay as saved). A callable:
            ``map_location(saved_device_name) -> device``.

    Raises:
        CheckpointError: the file is not a tinynet checkpoint, is truncated or corrupt, carries a
            pickled object, or was written by a newer format version.
        RuntimeError: a tensor was saved on a device that cannot be used here (a GPU checkpoint
            on a machine without one): the message suggests ``map_location="cpu"``.

    Example:
        >>> state = tn.load("ckpt.npz", map_location="cpu")   # a GPU checkpoint on a laptop
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    _check_header(path, head)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if STRUCTURE_MEMBER not in names:
                _refuse_foreign_zip(path, names)
            header = json.loads(_read_member(path, zf, STRUCTURE_MEMBER).decode("utf-8"))
            _check_version(path, header)
            decoder = _Decoder(path, zf, map_location)
            return decoder.decode(header["root"])
    except _MapLocationFailed as exc:  # the caller's map_location, not the file, went wrong
        raise exc.original from None
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError,
            UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint is truncated or corrupt "
                              f"({type(exc).__name__}: {exc})") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's structure is malformed "
                              f"({type(exc).__name__}: {exc})") from exc


def _read_member(path: str, zf: zipfile.ZipFile, member: str) -> bytes:
    """The whole member (so its CRC-32 is checked). A damaged header can make ``zipfile`` ask for
    a password or an unknown compression method: that is a corrupt file too."""
    try:
        return zf.read(member)
    except (RuntimeError, NotImplementedError) as exc:
        raise CheckpointError(f"{path}: the checkpoint is truncated or corrupt (member "
                              f"{member!r}: {exc})") from exc


def _check_header(path: str, head: bytes) -> None:
    if head == b"PK\x03\x04":
        return
    if not head:
        raise CheckpointError(f"{path}: the file is empty (not a tinynet checkpoint)")
    if head[:1] == b"\x80":  # the PROTO opcode that starts every pickle since protocol 2
        raise CheckpointError(f"{path}: refusing to load a pickle file; tinynet never unpickles "
                              "(unpickling runs arbitrary code). Checkpoints are .npz files "
                              "written by tn.save")
    if head == b"\x93NUM":
        raise CheckpointError(f"{path}: a single .npy array, not a tinynet checkpoint; read it "
                              "with numpy.load")
    if head in (b"PK\x05\x06", b"PK\x07\x08"):
        raise CheckpointError(f"{path}: the checkpoint is truncated or corrupt (an empty or "
                              "spanned ZIP archive)")
    raise CheckpointError(f"{path}: not a tinynet checkpoint (a ZIP/.npz archive was expected; "
                          f"the file starts with {head!r}); it may be truncated or corrupt")


def _refuse_foreign_zip(path: str, names: list) -> None:
    if any(n.endswith(".pkl") for n in names):
        raise CheckpointError(f"{path}: refusing to load a pickled archive (it holds "
                              f"{next(n for n in names if n.endswith('.pkl'))}, as a PyTorch .pt "
                              "file does); tinynet never unpickles. In PyTorch, save "
                              "{k: v.numpy() for k, v in state_dict.items()} with numpy.savez "
                              "and read that with numpy.load instead")
    raise CheckpointError(f"{path}: a ZIP archive without {STRUCTURE_MEMBER}, so not a tinynet "
                          "checkpoint (a plain .npz from numpy.savez is read with numpy.load)")


def _check_version(path: str, header) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: {STRUCTURE_MEMBER} does not describe a tinynet checkpoint")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written in checkpoint format version {version} (by "
                              f"tinynet {header.get('tinynet_version')}); this tinynet reads up "
                              f"to version {FORMAT_VERSION}: upgrade tinynet")


class _Decoder:
    """Rebuilds the object from the JSON nodes, reading each array member once."""

    def __init__(self, path: str, zf: zipfile.ZipFile, map_location):
        self.path = path
        self.zf = zf
        self.map_location = map_location
        self.host_arrays: dict = {}  # member -> host array
        self.device_arrays: dict = {}  # (member, device) -> array (shared tensors stay shared)

    def decode(self, node: dict, where: tuple = ()):
        kind = node["type"]
        if kind == "none":
            return None
        if kind in ("bool", "int", "str"):
            value = node["value"]
            expected = {"bool": bool, "int": int, "str": str}[kind]
            if type(value) is not expected:
                raise TypeError(f"a {kind} node holds {value!r}")
            return value
        if kind == "float":
            return float(node["value"])
        if kind in ("list", "tuple"):
            items = [self.decode(v, where + (i,)) for i, v in enumerate(node["items"])]
            return tuple(items) if kind == "tuple" else items
        if kind in ("dict", "OrderedDict"):
            out = OrderedDict() if kind == "OrderedDict" else {}
            for key_node, value_node in node["items"]:
                if key_node["type"] not in ("str", "int", "bool"):
                    raise TypeError(f"a dict key of type {key_node['type']}")
                key = self.decode(key_node, where)
                out[key] = self.decode(value_node, where + (key,))
            return out
        if kind == "ndarray":
            arr = self._host_array(node, where)
            return arr[()] if node.get("scalar") else arr
        if kind == "tensor":
            return self._tensor(node, where)
        raise TypeError(f"unknown node type {kind!r}")

    def _host_array(self, node: dict, where: tuple):
        member = node["member"]
        arr = self.host_arrays.get(member)
        if arr is None:
            raw = _read_member(self.path, self.zf, member)
            try:
                arr = backend.host_namespace().load(io.BytesIO(raw), allow_pickle=False)
            except ValueError as exc:
                if "pickle" in str(exc) or "Object arrays" in str(exc):
                    raise CheckpointError(
                        f"{self.path}: member {member!r} (at {_where(where)}) holds pickled "
                        "Python objects; refusing to load it (tinynet never unpickles)") from exc
                raise
            if not isinstance(arr, backend.host_namespace().ndarray):
                raise TypeError(f"member {member!r} is not a .npy array")
            self.host_arrays[member] = arr
        if str(arr.dtype) != node["dtype"] or list(arr.shape) != list(node["shape"]):
            raise CheckpointError(f"{self.path}: member {member!r} (at {_where(where)}) holds "
                                  f"{arr.dtype} {tuple(arr.shape)}, the structure says "
                                  f"{node['dtype']} {tuple(node['shape'])}: the file is corrupt")
        return arr

    def _tensor(self, node: dict, where: tuple) -> Tensor:
        host = self._host_array(node, where)
        saved = node["device"]
        target = self._target_device(saved)
        key = (node["member"], target)
        arr = self.device_arrays.get(key)
        if arr is None:
            try:
                arr = backend.transfer(host, Device("cpu"), target)
            except RuntimeError as exc:
                raise RuntimeError(f"{self.path}: the tensor at {_where(where)} was saved on "
                                   f"{saved}, which is not usable here ({exc}); pass "
                                   "map_location='cpu' to load it on the CPU") from exc
            self.device_arrays[key] = arr
        if node.get("parameter"):
            return Parameter(Tensor._make(arr, target), requires_grad=bool(node["requires_grad"]))
        return Tensor._make(arr, target, requires_grad=bool(node["requires_grad"]))

    def _target_device(self, saved: str) -> Device:
        where_to = self.map_location
        if where_to is None:
            return Device(saved)  # a bad name here is a corrupt file
        try:
            if isinstance(where_to, (str, Device)):
                return Device(where_to)
            if isinstance(where_to, dict):
                return Device(where_to.get(saved, saved))
            if callable(where_to):
                return Device(where_to(saved))
            raise TypeError("map_location must be None, a device, a dict or a callable, got "
                            f"{type(where_to).__name__}")
        except Exception as exc:
            raise _MapLocationFailed(exc) from exc


class _MapLocationFailed(Exception):
    """Carries an error raised by the caller's ``map_location`` past the corrupt-file handling."""

    def __init__(self, original: Exception):
        super().__init__(str(original))
        self.original = original


def _where(path: tuple) -> str:
    """A key path as the user would index it: ``['model']['fc.weight']`` or ``[0][2]``."""
    return "".join(f"[{p!r}]" for p in path) or "the top level"


def _tinynet_version() -> str:
    from . import __version__  # noqa: PLC0415 - the package imports this module

    return __version__
