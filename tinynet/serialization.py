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
ever unpickled, and nothing in it is trusted before it is checked: members must be stored
uncompressed (so what ``load`` allocates is bounded by the file's size), each ``.npy`` header must
agree with the JSON and with the member's size before its array is allocated, the JSON may nest at
most ``MAX_DEPTH`` containers, and only numeric and bool dtypes load. Anything else (a pickle, an
object or string array, a compressed member, a header claiming more data than the member holds, a
field of the wrong type) is a :class:`CheckpointError` naming the file, the member and where in
the structure it sits. Writes go through ``atomic.replace_file``: a crash at any instant leaves
either the old checkpoint or the new one, a symlink keeps pointing at the checkpoint, and the file
keeps its mode.

Read next: ``nn/module.py`` (``state_dict``, ``load_state_dict``).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import zipfile
from collections import OrderedDict

from . import atomic, backend
from .backend import Device
from .nn.module import Parameter
from .tensor import Tensor

FORMAT_NAME = "tinynet.checkpoint"
FORMAT_VERSION = 1
STRUCTURE_MEMBER = "tinynet.json"
MAX_DEPTH = 100  # containers nested in one checkpoint (a state dict needs about 5)
# The JSON depth MAX_DEPTH containers take: a dict node's value sits 3 levels below it (node,
# "items" list, [key, value] pair), and a leaf's "shape" list one more; 3 for header and root.
MAX_JSON_DEPTH = 3 * MAX_DEPTH + 3
_MAX_NPY_HEADER = 10_000  # bytes, NumPy's own default bound for a .npy header
_READ_CHUNK = 1 << 20  # bytes per read of a member
_FLOAT_WORDS = ("nan", "inf", "-inf")

__all__ = ["FORMAT_VERSION", "MAX_DEPTH", "CheckpointError", "load", "save"]


class CheckpointError(ValueError):
    """A file that is not a readable tinynet checkpoint (corrupt, truncated, pickled, too new,
    or holding something a checkpoint never holds)."""


# --------------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------------


def save(obj, path) -> None:
    """Write ``obj`` (nested dicts, lists and tuples of tensors, NumPy arrays, numbers, strings,
    bools and None: a state dict, an optimizer state dict, a training checkpoint) to ``path``.

    The file is replaced atomically: a crash mid-write leaves the previous file untouched. Saving
    onto a symlink replaces the file it points to, and a replaced file keeps its mode. Tensors on
    a GPU are copied to the host for writing; they (and the model they belong to) stay where
    they are.

    A name ending in ``.pt``/``.pth`` gets a warning: the file is still a tinynet checkpoint,
    which ``torch.load`` cannot read (PyTorch's format is a ZIP of pickles, and tinynet never
    pickles).

    Raises:
        TypeError: a value of another type (naming where it is, e.g. ``['optim']['lr_fn']``), or
            a ``path`` that is not a path.
        ValueError: an empty ``path``, or containers nested more than ``MAX_DEPTH`` deep (a list
            that holds itself).
        OSError: the file cannot be written (the message names ``path``).

    Example:
        >>> tn.save({"model": model.state_dict(), "epoch": 3}, "ckpt.npz")
        >>> model.load_state_dict(tn.load("ckpt.npz")["model"])
    """
    path = atomic.checked_path(path, "tn.save")
    if os.path.splitext(path)[1].lower() in (".pt", ".pth"):
        warnings.warn(f"tn.save: {path!r} is named like a PyTorch file, but it will be a tinynet "
                      "checkpoint (a .npz archive of .npy arrays): torch.load cannot read it, "
                      "tn.load and numpy.load can (docs/porting.md shows how to load it into "
                      "PyTorch). Name it .npz to avoid the confusion", UserWarning, stacklevel=2)
    arrays: dict = {}  # member name -> host array
    root = _Encoder(arrays).encode(obj)  # before touching the disk: a TypeError leaves no trace
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
              "tinynet_version": _tinynet_version(), "root": root}
    structure = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    atomic.replace_file(path, lambda f: _write_archive(f, structure, arrays), "tn.save")


class _Encoder:
    """Turns a Python object into a JSON node, collecting its arrays (host copies) by member."""

    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.members_by_array: dict = {}  # id(backend array) -> member name (shared arrays once)
        self.keepalive: list = []  # the arrays whose ids are keys above, so no id is reused

    def encode(self, obj, path: tuple = ()) -> dict:
        xp = backend.host_namespace()
        if len(path) > MAX_DEPTH:
            raise ValueError(f"tn.save: containers nested more than {MAX_DEPTH} deep (at "
                             f"{_where(path[:4])}...); does a list or dict hold itself?")
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
            pickled object, was written by a newer format version, or holds what a checkpoint
            never holds (a compressed or oversized member, a non-numeric dtype, nesting deeper
            than ``MAX_DEPTH``, a field of the wrong type): checked before anything is inflated.
        RuntimeError: a tensor would land on a device that cannot be used here: one saved on a
            GPU (the message suggests ``map_location="cpu"``), or the device ``map_location``
            asks for (the message says what is missing, e.g. CuPy, and how to install it).

    Example:
        >>> state = tn.load("ckpt.npz", map_location="cpu")   # a GPU checkpoint on a laptop
    """
    path = atomic.checked_path(path, "tn.load")
    with open(path, "rb") as f:
        head = f.read(4)
        file_size = os.fstat(f.fileno()).st_size
    _check_header(path, head)
    try:
        with zipfile.ZipFile(path) as zf:
            archive = _Archive(path, zf, file_size)
            if STRUCTURE_MEMBER not in archive.infos:
                _refuse_foreign_zip(path, list(archive.infos))
            header = _parse_structure(path, archive.read_bytes(STRUCTURE_MEMBER))
            _check_version(path, header)
            decoder = _Decoder(path, archive, map_location)
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


class _Archive:
    """The ZIP's members, each checked against the file before a byte of it is read: stored
    uncompressed, listed once, and no larger than the file holding it."""

    def __init__(self, path: str, zf: zipfile.ZipFile, file_size: int):
        self.path, self.zf, self.file_size = path, zf, file_size
        self.infos: dict = {}
        for info in zf.infolist():
            if info.filename in self.infos:
                raise CheckpointError(f"{path}: the archive lists member {info.filename!r} twice: "
                                      "the file is corrupt or crafted")
            self.infos[info.filename] = info

    def info(self, member: str, where: tuple = ()) -> zipfile.ZipInfo:
        info = self.infos.get(member)
        if info is None:
            raise CheckpointError(f"{self.path}: the checkpoint's structure is malformed: "
                                  f"{_where(where)} refers to member {member!r}, which the "
                                  "archive lacks")
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{self.path}: member {member!r} is compressed (ZIP method "
                                  f"{info.compress_type}); tn.save stores members uncompressed, "
                                  "and tn.load refuses to inflate one (its size could not be "
                                  "bounded by the file's)")
        if info.file_size != info.compress_size or info.file_size > self.file_size:
            raise CheckpointError(f"{self.path}: member {member!r} declares {info.file_size} "
                                  f"bytes, but {info.compress_size} are stored in a file of "
                                  f"{self.file_size}: the file is corrupt or crafted")
        return info

    def read_bytes(self, member: str) -> bytes:
        """The whole member (so its CRC-32 is checked)."""
        info = self.info(member)
        try:
            return self.zf.read(info)
        except (RuntimeError, NotImplementedError) as exc:  # a damaged header: encrypted, ...
            raise CheckpointError(f"{self.path}: the checkpoint is truncated or corrupt (member "
                                  f"{member!r}: {exc})") from exc

    def read_array(self, member: str, where: tuple, dtype_name: str, shape: list):
        """The ``.npy`` member as a host array, its header checked against the structure's
        ``dtype_name`` and ``shape`` and against the member's size before the array exists."""
        xp = backend.host_namespace()
        info = self.info(member, where)
        try:
            f = self.zf.open(info)
        except (RuntimeError, NotImplementedError) as exc:
            raise CheckpointError(f"{self.path}: the checkpoint is truncated or corrupt (member "
                                  f"{member!r}: {exc})") from exc
        with f:
            fmt = xp.lib.format
            version = fmt.read_magic(f)
            if version == (1, 0):
                got_shape, fortran, dtype = fmt.read_array_header_1_0(f, _MAX_NPY_HEADER)
            elif version == (2, 0):
                got_shape, fortran, dtype = fmt.read_array_header_2_0(f, _MAX_NPY_HEADER)
            else:
                raise CheckpointError(f"{self.path}: member {member!r} (at {_where(where)}) is "
                                      f".npy format version {version}; tn.save writes 1.0 or 2.0")
            at = f"member {member!r} (at {_where(where)})"
            if dtype.hasobject:
                raise CheckpointError(f"{self.path}: {at} holds pickled Python objects; refusing "
                                      "to load it (tinynet never unpickles)")
            if not _plain_dtype(dtype):
                raise CheckpointError(f"{self.path}: {at} holds {dtype} values; checkpoints hold "
                                      "only numeric and bool arrays")
            if str(dtype) != dtype_name or list(got_shape) != list(shape):
                raise CheckpointError(f"{self.path}: {at} holds {dtype} {tuple(got_shape)}, the "
                                      f"structure says {dtype_name} {tuple(shape)}: the file is "
                                      "corrupt")
            nbytes = math.prod(got_shape) * dtype.itemsize
            stored = info.file_size - f.tell()
            if nbytes != stored:
                raise CheckpointError(f"{self.path}: {at}: its header declares {nbytes} bytes of "
                                      f"data, the member holds {stored}: the file is corrupt or "
                                      "crafted")
            arr = xp.empty(tuple(reversed(got_shape)) if fortran else tuple(got_shape), dtype)
            _read_into(f, arr.reshape(-1).view(xp.uint8), nbytes)
            if f.read(1):
                raise CheckpointError(f"{self.path}: {at} has data past its array")
        return arr.T if fortran else arr


def _read_into(f, out, nbytes: int) -> None:
    """Fill the byte view ``out`` from ``f`` in chunks (no second copy of the array in memory)."""
    done = 0
    while done < nbytes:
        chunk = f.read(min(_READ_CHUNK, nbytes - done))
        if not chunk:
            raise EOFError(f"the member ends after {done} of {nbytes} bytes")
        out[done:done + len(chunk)] = memoryview(chunk)
        done += len(chunk)


def _plain_dtype(dtype) -> bool:
    """Numeric or bool, without fields or sub-arrays: what tn.save writes."""
    return dtype.kind in "biufc" and dtype.fields is None and dtype.subdtype is None


_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _parse_structure(path: str, raw: bytes):
    """``tinynet.json``, its nesting measured before the (recursive) JSON parser sees it."""
    depth = 0
    for token in _JSON_TOKENS.finditer(raw):
        c = token.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise CheckpointError(f"{path}: {STRUCTURE_MEMBER} nests deeper than "
                                      f"{MAX_JSON_DEPTH} levels (checkpoints hold at most "
                                      f"{MAX_DEPTH} nested containers): refusing to parse it")
        elif c in (b"]", b"}"):
            depth -= 1
    return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not standard JSON (tn.save writes 'nan' as a string)")


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


_SCALARS = {"bool": bool, "int": int, "str": str}


class _Decoder:
    """Rebuilds the object from the JSON nodes, checking every field's type, reading each array
    member once."""

    def __init__(self, path: str, archive: _Archive, map_location):
        self.path = path
        self.archive = archive
        self.map_location = map_location
        self.host_arrays: dict = {}  # member -> host array
        self.device_arrays: dict = {}  # (member, device) -> array (shared tensors stay shared)

    def decode(self, node, where: tuple = ()):
        if len(where) > MAX_DEPTH:
            raise self._malformed(where, f"containers nested more than {MAX_DEPTH} deep")
        kind = self._field(node, "type", str, where)
        if kind == "none":
            return None
        if kind in _SCALARS:
            return self._field(node, "value", _SCALARS[kind], where)
        if kind == "float":
            value = node.get("value")
            if not (type(value) in (int, float) or value in _FLOAT_WORDS):
                raise self._malformed(where, f"a float node holds {value!r}")
            try:
                return float(value)
            except OverflowError:  # an integer beyond any float: never written by tn.save
                raise self._malformed(where, "a float node holds an integer too large for a "
                                             "float") from None
        if kind in ("list", "tuple"):
            items = [self.decode(v, where + (i,))
                     for i, v in enumerate(self._field(node, "items", list, where))]
            return tuple(items) if kind == "tuple" else items
        if kind in ("dict", "OrderedDict"):
            out = OrderedDict() if kind == "OrderedDict" else {}
            for pair in self._field(node, "items", list, where):
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], dict)
                        and pair[0].get("type") in _SCALARS):
                    raise self._malformed(where, "a dict item that is not a [str/int/bool key, "
                                                 "value] pair")
                key = self.decode(pair[0], where)
                out[key] = self.decode(pair[1], where + (key,))
            return out
        if kind == "ndarray":
            arr = self._host_array(node, where)
            if self._field(node, "scalar", bool, where):
                if arr.ndim != 0:
                    raise self._malformed(where, f"a scalar of shape {arr.shape}")
                return arr[()]
            return arr
        if kind == "tensor":
            return self._tensor(node, where)
        raise self._malformed(where, f"unknown node type {kind!r}")

    def _field(self, node, key: str, kind: type, where: tuple):
        """``node[key]``, which must be exactly of type ``kind`` (a bool is not an int here)."""
        if not isinstance(node, dict):
            raise self._malformed(where, f"a node that is a {type(node).__name__}, not an object")
        value = node.get(key)
        if type(value) is not kind:
            raise self._malformed(where, f"field {key!r} is {value!r}, not a {kind.__name__}")
        return value

    def _malformed(self, where: tuple, detail: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: the checkpoint's structure is malformed at "
                               f"{_where(where)}: {detail}")

    def _host_array(self, node: dict, where: tuple):
        member = self._field(node, "member", str, where)
        dtype_name = self._field(node, "dtype", str, where)
        shape = self._field(node, "shape", list, where)
        if not all(type(n) is int and n >= 0 for n in shape):
            raise self._malformed(where, f"shape {shape} is not a list of sizes")
        arr = self.host_arrays.get(member)
        if arr is None:
            arr = self.archive.read_array(member, where, dtype_name, shape)
            self.host_arrays[member] = arr
        elif str(arr.dtype) != dtype_name or list(arr.shape) != shape:
            raise CheckpointError(f"{self.path}: member {member!r} (at {_where(where)}) holds "
                                  f"{arr.dtype} {tuple(arr.shape)}, the structure says "
                                  f"{dtype_name} {tuple(shape)}: the file is corrupt")
        return arr

    def _tensor(self, node: dict, where: tuple) -> Tensor:
        saved = self._field(node, "device", str, where)
        requires_grad = self._field(node, "requires_grad", bool, where)
        parameter = self._field(node, "parameter", bool, where)
        host = self._host_array(node, where)
        if requires_grad and host.dtype.kind not in "fc":
            raise self._malformed(where, f"a {host.dtype} tensor with requires_grad=True (only "
                                         "floating-point tensors can require gradients)")
        target = self._target_device(saved)
        key = (node["member"], target)
        arr = self.device_arrays.get(key)
        if arr is None:
            try:
                arr = backend.transfer(host, Device("cpu"), target)
            except RuntimeError as exc:
                if self.map_location is None:
                    raise RuntimeError(f"{self.path}: the tensor at {_where(where)} was saved on "
                                       f"{saved}, which is not usable here ({exc}); pass "
                                       "map_location='cpu' to load it on the CPU") from exc
                raise RuntimeError(f"tn.load({self.path!r}): map_location="
                                   f"{self.map_location!r} puts the tensor at {_where(where)} on "
                                   f"{target}, which is not usable here: {exc}") from exc
            self.device_arrays[key] = arr
        if parameter:
            return Parameter(Tensor._make(arr, target), requires_grad=requires_grad)
        return Tensor._make(arr, target, requires_grad=requires_grad)

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
