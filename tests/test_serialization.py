"""Checkpoints: ``tn.save`` / ``tn.load`` round trips, devices, the pickle refusal, corrupt and
truncated files, and atomic writes (a crash mid-write keeps the old file)."""

import errno
import json
import math
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.serialization import FORMAT_VERSION, STRUCTURE_MEMBER, CheckpointError

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def assert_same(loaded, original, where="root"):
    """Exact equality of nested structures: container types, key order and types, numbers
    (NaN equal to NaN), and for arrays their type, dtype, shape, device and bits."""
    assert type(loaded) is type(original), (where, type(loaded), type(original))
    if isinstance(original, tn.Tensor):
        assert loaded.device == original.device, where
        assert loaded.dtype == original.dtype and loaded.shape == original.shape, where
        assert loaded.requires_grad == original.requires_grad, where
        np.testing.assert_array_equal(loaded.cpu().numpy(), original.cpu().numpy(), err_msg=where)
    elif isinstance(original, (np.ndarray, np.generic)):
        assert loaded.dtype == original.dtype and np.shape(loaded) == np.shape(original), where
        np.testing.assert_array_equal(loaded, original, err_msg=where)
    elif isinstance(original, dict):
        assert list(loaded) == list(original), where
        for k in original:
            assert type(next(x for x in loaded if x == k)) is type(k), where
            assert_same(loaded[k], original[k], f"{where}[{k!r}]")
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original), where
        for i, (a, b) in enumerate(zip(loaded, original, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(original, float) and math.isnan(original):
        assert math.isnan(loaded), where
    else:
        assert loaded == original, where


def rewrite(path, structure=None, members=None):
    """Rewrite a checkpoint's ZIP: ``structure(header) -> header`` edits the JSON, ``members``
    maps member names to new bytes. Used to build damaged or hostile files."""
    with zipfile.ZipFile(path) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    if structure is not None:
        header = json.loads(contents[STRUCTURE_MEMBER])
        contents[STRUCTURE_MEMBER] = json.dumps(structure(header)).encode()
    contents.update(members or {})
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data)


def npy_bytes(array, allow_pickle=False) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def small_model(device="cpu"):
    tn.manual_seed(0)
    return tn.nn.Sequential(tn.nn.Linear(3, 4), tn.nn.BatchNorm1d(4), tn.nn.ReLU(),
                            tn.nn.Linear(4, 2)).to(device)


# --------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


@st.composite
def tensors(draw, device):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    values = draw(hnp.arrays(dtype, shape))  # every value, NaN and infinities included
    t = tn.tensor(values, device=device)
    if dtype.kind == "f" and draw(st.booleans()):
        t.requires_grad_()
    return t


def structures(device):
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**130), 2**130),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
        tensors(device), hnp.arrays(np.dtype("float32"), hnp.array_shapes(max_dims=2)),
        st.sampled_from([np.float32(1.5), np.int64(-3), np.bool_(True)]))
    keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.booleans())

    def containers(children):
        return st.one_of(st.lists(children, max_size=4),
                         st.lists(children, max_size=4).map(tuple),
                         st.dictionaries(keys, children, max_size=4),
                         st.dictionaries(keys, children, max_size=4).map(OrderedDict))

    return st.recursive(leaves, containers, max_leaves=12)


@given(data=st.data())
def test_round_trip_of_nested_structures(tmp_path, device, data):
    obj = data.draw(structures(device))
    path = tmp_path / "ckpt.npz"
    tn.save(obj, path)
    assert_same(tn.load(path), obj)


def test_round_trip_of_a_training_checkpoint(tmp_path, device):
    model = small_model(device)
    generator = tn.Generator(7)
    generator.normal((3,), "float32")  # move the stream off its start
    checkpoint = {"model": model.state_dict(), "epoch": 3, "best": float("inf"),
                  "history": [{"loss": 0.5, "acc": None}], "note": "ünïcode ok",
                  "rng": generator.get_state(), "shape": (2, 3)}
    tn.save(checkpoint, tmp_path / "c.npz")
    loaded = tn.load(tmp_path / "c.npz")
    assert_same(loaded, checkpoint)
    restored = tn.Generator(0)
    restored.set_state(loaded["rng"])  # 128-bit integers survive
    np.testing.assert_array_equal(restored.normal((5,), "float64"),
                                  generator.normal((5,), "float64"))


def test_model_state_dict_round_trip_gives_identical_outputs(tmp_path, device):
    model = small_model(device)
    x = tn.randn(5, 3, device=device)
    model(x)  # train mode: BatchNorm's running statistics move away from their initial values
    model.eval()
    tn.save(model.state_dict(), tmp_path / "m.npz")
    tn.manual_seed(1)
    other = tn.nn.Sequential(tn.nn.Linear(3, 4), tn.nn.BatchNorm1d(4), tn.nn.ReLU(),
                             tn.nn.Linear(4, 2)).to(device).eval()
    assert not np.array_equal(other(x).cpu().numpy(), model(x).cpu().numpy())
    other.load_state_dict(tn.load(tmp_path / "m.npz"))
    np.testing.assert_array_equal(other(x).cpu().numpy(), model(x).cpu().numpy())
    assert other[1].num_batches_tracked.item() == 1


def test_saving_leaves_the_model_where_it_is(tmp_path, device):
    model = small_model(device)
    arrays = [t.data for t in model.state_dict().values()]
    tn.save(model.state_dict(), tmp_path / "m.npz")
    tn.save({"params": list(model.parameters())}, tmp_path / "p.npz")
    after = list(model.state_dict().values())
    assert all(t.device == device for t in after)
    # Not moved, not copied over:
    assert all(t.data is a for t, a in zip(after, arrays, strict=True))
    loaded = tn.load(tmp_path / "p.npz")["params"]
    assert all(isinstance(p, tn.nn.Parameter) and p.requires_grad for p in loaded)


def test_optimizer_state_round_trip_continues_training_identically(tmp_path, device):
    optim = pytest.importorskip("tinynet.optim", reason="tinynet.optim is not there yet")
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                 lambda ps: optim.Adam([{"params": ps[:2], "lr": 1e-2}, {"params": ps[2:]}],
                                       lr=1e-3)):
        model = small_model(device)
        opt = make(list(model.parameters()))
        x = tn.randn(6, 3, device=device)

        def step(m, o, x=x):
            o.zero_grad()
            (m(x) * m(x)).mean().backward()
            o.step()

        for _ in range(3):
            step(model, opt)
        tn.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "o.npz")
        state = tn.load(tmp_path / "o.npz")
        assert_same(state["optimizer"], opt.state_dict())
        twin = small_model(device)
        twin_opt = make(list(twin.parameters()))
        twin.load_state_dict(state["model"])
        twin_opt.load_state_dict(state["optimizer"])
        for _ in range(2):
            step(model, opt)
            step(twin, twin_opt)
        for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
            np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())


def test_shared_arrays_are_stored_once_and_stay_shared(tmp_path):
    w = tn.randn(3, 3)
    tn.save({"encoder.weight": w, "decoder.weight": w.detach(), "other": tn.randn(3)},
            tmp_path / "t.npz")
    with zipfile.ZipFile(tmp_path / "t.npz") as zf:
        assert sorted(zf.namelist()) == ["encoder.weight.npy", "other.npy", STRUCTURE_MEMBER]
    loaded = tn.load(tmp_path / "t.npz")
    assert loaded["encoder.weight"].data is loaded["decoder.weight"].data


def test_the_file_is_an_npz_with_the_documented_structure(tmp_path):
    sd = small_model().state_dict()
    tn.save({"model": sd, "step": 5}, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:  # plain NumPy reads the arrays
        np.testing.assert_array_equal(npz["model/0.weight"], sd["0.weight"].numpy())
    with zipfile.ZipFile(tmp_path / "m.npz") as zf:
        header = json.loads(zf.read(STRUCTURE_MEMBER))
    assert header["format"] == "tinynet.checkpoint" and header["version"] == FORMAT_VERSION
    assert header["tinynet_version"] == tn.__version__
    root = header["root"]
    assert root["type"] == "dict"
    (key, model), (_, step) = root["items"]
    assert key == {"type": "str", "value": "model"} and step == {"type": "int", "value": 5}
    assert model["type"] == "OrderedDict"
    first_key, first = model["items"][0]
    assert first_key["value"] == "0.weight"
    assert first == {"type": "tensor", "member": "model/0.weight.npy", "dtype": "float32",
                     "shape": [4, 3], "device": "cpu", "requires_grad": False,
                     "parameter": False}


def test_member_names_are_safe_and_unique(tmp_path):
    obj = {"../evil": tn.zeros(1), "a/b": tn.zeros(1), "a_b": tn.zeros(1), 0: tn.zeros(1),
           "0": tn.zeros(1), "": tn.zeros(1)}
    tn.save(obj, tmp_path / "n.npz")
    with zipfile.ZipFile(tmp_path / "n.npz") as zf:
        names = zf.namelist()
    assert len(set(names)) == len(names) == len(obj) + 1
    assert all(".." not in n.split("/") and not n.startswith("/") for n in names)
    assert_same(tn.load(tmp_path / "n.npz"), obj)


# --------------------------------------------------------------------------------------------
# devices and map_location
# --------------------------------------------------------------------------------------------


def test_map_location(tmp_path):
    obj = {"a": tn.randn(2, device="standin"), "b": tn.randn(2)}
    path = tmp_path / "d.npz"
    tn.save(obj, path)
    loaded = tn.load(path)
    assert (loaded["a"].device, loaded["b"].device) == ("standin", "cpu")
    for where in ("cpu", tn.device("cpu")):
        assert {str(t.device) for t in tn.load(path, map_location=where).values()} == {"cpu"}
    assert {str(t.device) for t in tn.load(path, map_location="standin").values()} == {"standin"}
    swapped = tn.load(path, map_location={"standin": "cpu", "cpu": "standin"})
    assert (swapped["a"].device, swapped["b"].device) == ("cpu", "standin")
    seen = []
    by_fn = tn.load(path, map_location=lambda saved: seen.append(saved) or "standin")
    assert sorted(seen) == ["cpu", "standin"]
    assert {str(t.device) for t in by_fn.values()} == {"standin"}
    for name in obj:
        np.testing.assert_array_equal(swapped[name].cpu().numpy(), obj[name].cpu().numpy())
    with pytest.raises(TypeError, match="map_location"):
        tn.load(path, map_location=3)
    with pytest.raises(ValueError, match="unknown device"):
        tn.load(path, map_location="tpu")  # the caller's mistake, not reported as a bad file


@pytest.mark.skipif(tn.cuda.is_available(), reason="a GPU is usable here")
def test_a_gpu_checkpoint_without_a_gpu_points_to_map_location(tmp_path):
    path = tmp_path / "gpu.npz"
    tn.save({"w": tn.ones(2)}, path)

    def on_cuda(header):  # what the same save gives on a GPU machine
        header["root"]["items"][0][1]["device"] = "cuda:0"
        return header

    rewrite(path, structure=on_cuda)
    with pytest.raises(RuntimeError, match="saved on cuda:0.*map_location='cpu'"):
        tn.load(path)
    assert tn.load(path, map_location="cpu")["w"].tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------------------------
# the pickle refusal
# --------------------------------------------------------------------------------------------


class _LeavesAMark:
    """Unpickling this creates a file: proof that a refused pickle was never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": _LeavesAMark(marker)}))
    with pytest.raises(CheckpointError, match=r"evil\.pt.*refusing to load a pickle"):
        tn.load(path)
    assert not marker.exists()


def test_an_object_array_member_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.npz"
    tn.save({"w": tn.zeros(2)}, path)
    hostile = np.empty(1, dtype=object)
    hostile[0] = _LeavesAMark(marker)
    rewrite(path, structure=lambda h: h, members={"w.npy": npy_bytes(hostile, allow_pickle=True)})
    with pytest.raises(CheckpointError, match=r"evil\.npz.*'w\.npy'.*pickled"):
        tn.load(path)
    assert not marker.exists()


def test_a_pytorch_style_archive_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:  # the layout torch.save writes
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
        zf.writestr("archive/version", "3")
    with pytest.raises(CheckpointError, match=r"model\.pt.*pickled archive.*data\.pkl"):
        tn.load(path)


def test_a_real_pytorch_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    path = tmp_path / "torch.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="never unpickles"):
        tn.load(path)


# --------------------------------------------------------------------------------------------
# damaged files
# --------------------------------------------------------------------------------------------


@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.npz"
    tn.save({"model": small_model().state_dict(), "epoch": 2}, path)
    return path


@given(fraction=st.floats(0.0, 0.999))
def test_a_truncated_file_gives_a_clear_error(good_checkpoint, fraction):
    data = good_checkpoint.read_bytes()
    cut = good_checkpoint.with_name("cut.npz")
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match=r"cut\.npz"):
        tn.load(cut)


def _data_offset(path, member) -> int:
    """Where a stored member's bytes begin in the file (after its local header)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = Path(path).read_bytes()
    start = info.header_offset
    name_len = int.from_bytes(raw[start + 26:start + 28], "little")
    extra_len = int.from_bytes(raw[start + 28:start + 30], "little")
    return start + 30 + name_len + extra_len


@pytest.mark.parametrize("member", ["model/0.weight.npy", STRUCTURE_MEMBER])
def test_a_flipped_byte_is_caught(good_checkpoint, member):
    raw = bytearray(good_checkpoint.read_bytes())
    with zipfile.ZipFile(good_checkpoint) as zf:
        size = zf.getinfo(member).file_size
    where = _data_offset(good_checkpoint, member) + size - 3  # inside the values / the JSON
    raw[where] ^= 0x10
    good_checkpoint.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        tn.load(good_checkpoint)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"hello, I am a text file", "not a tinynet checkpoint"),
    (npy_bytes(np.zeros(3)), "single .npy array"),
    (b"PK\x05\x06" + bytes(18), "truncated or corrupt"),
])
def test_files_that_are_not_checkpoints(tmp_path, content, message):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        tn.load(path)


def test_a_plain_npz_is_not_a_checkpoint(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    with pytest.raises(CheckpointError, match="without tinynet.json.*numpy.load"):
        tn.load(tmp_path / "plain.npz")


@pytest.mark.parametrize("edit, message", [
    (lambda h: {**h, "version": FORMAT_VERSION + 1}, "version 2.*upgrade tinynet"),
    (lambda h: {**h, "version": "1"}, "bad format version"),
    (lambda h: {**h, "format": "something else"}, "does not describe"),
    (lambda h: {k: v for k, v in h.items() if k != "root"}, "malformed"),
    (lambda h: {**h, "root": {"type": "set", "items": []}}, "malformed.*set"),
    (lambda h: {**h, "root": {"type": "int", "value": "3"}}, "malformed"),
    (lambda h: {**h, "root": {"type": "ndarray", "member": "nope.npy", "dtype": "float32",
                              "shape": [], "scalar": False}}, "malformed"),
])
def test_a_damaged_structure_gives_a_clear_error(good_checkpoint, edit, message):
    rewrite(good_checkpoint, structure=edit)
    with pytest.raises(CheckpointError, match=message):
        tn.load(good_checkpoint)


def test_a_member_that_disagrees_with_the_structure(good_checkpoint):
    rewrite(good_checkpoint, members={"model/0.weight.npy": npy_bytes(np.zeros((2, 2), "f4"))})
    with pytest.raises(CheckpointError, match=r"holds float32 \(2, 2\).*says float32 \(4, 3\)"):
        tn.load(good_checkpoint)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        tn.load(tmp_path / "nope.npz")


# --------------------------------------------------------------------------------------------
# atomic writes and unsupported objects
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crash_after", [0, 100, 3000])
def test_a_crash_mid_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch,
                                                                    crash_after):
    path = tmp_path / "ckpt.npz"
    tn.save({"w": tn.ones(4)}, path)
    old = path.read_bytes()
    real_write = os.write
    written = []

    def disk_full(fd, data):
        """Writes up to ``crash_after`` bytes in total, then fails as a full disk does."""
        room = crash_after - sum(written)
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[:room]))
        written.append(n)
        return n

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        tn.save({"w": tn.zeros(1000), "x": tn.randn(50)}, path)
    monkeypatch.undo()
    assert sum(written) == crash_after  # the crash did hit part-way through the data
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert tn.load(path)["w"].tolist() == [1.0] * 4


def test_a_killed_process_keeps_the_old_file(tmp_path):
    """A process that dies mid-write (no cleanup runs) still leaves the old checkpoint whole."""
    path = tmp_path / "ckpt.npz"
    tn.save({"w": tn.ones(4)}, path)
    old = path.read_bytes()
    script = f"""
import os
import tinynet as tn
real_write = os.write
def dying_write(fd, data):
    real_write(fd, bytes(data[:len(data) // 2]))
    os._exit(3)  # killed: no exception handler, no finally block runs
os.write = dying_write
tn.save({{"w": tn.zeros(100000)}}, {str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 3, result.stderr
    assert path.read_bytes() == old
    assert tn.load(path)["w"].tolist() == [1.0] * 4
    leftovers = [n for n in os.listdir(tmp_path) if n != "ckpt.npz"]
    assert all(n.startswith(".ckpt.npz.") and n.endswith(".tmp") for n in leftovers), leftovers


def test_save_replaces_the_file_with_normal_permissions(tmp_path):
    path = tmp_path / "ckpt.npz"
    tn.save({"v": 1}, path)
    tn.save({"v": 2}, str(path))
    assert tn.load(path) == {"v": 2}
    reference = tmp_path / "reference"
    reference.write_bytes(b"")  # what open() gives under the current umask
    assert path.stat().st_mode == reference.stat().st_mode
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz", "reference"]


@pytest.mark.parametrize("obj, where", [
    ({"a": {"b": object()}}, r"\['a'\]\['b'\]"),
    ({"layers": [1, {2, 3}]}, r"\['layers'\]\[1\]"),
    ({"fn": len}, r"\['fn'\]"),
    ({"k": {(1, 2): 3}}, r"key \(1, 2\) at \['k'\]"),
    ({"objects": np.array([None, 1], dtype=object)}, r"dtype object.*\['objects'\]"),
    ({"s": np.array(["text"])}, r"\['s'\]"),
    ({"dtype": tn.float32}, r"\['dtype'\]"),
])
def test_unsupported_objects_raise_type_error_naming_the_key(tmp_path, obj, where):
    path = tmp_path / "ckpt.npz"
    tn.save({"ok": True}, path)
    old = path.read_bytes()
    with pytest.raises(TypeError, match=where):
        tn.save(obj, path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_save_and_load_are_exported():
    import tinynet.serialization as serialization

    assert tn.save is serialization.save and tn.load is serialization.load
    assert issubclass(CheckpointError, ValueError)


def test_docs_checkpoints_section_documents_the_format_and_its_snippets_run():
    import re

    text = ROOT.joinpath("docs", "nn.md").read_text()
    section = re.search(r"^## Checkpoints\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert section, "docs/nn.md has no '## Checkpoints' section"
    body = section.group(1)
    for word in (STRUCTURE_MEMBER, f'"version": {FORMAT_VERSION}', "os.replace", "fsync",
                 "allow_pickle=False", "map_location"):
        assert word in body, word
    blocks = re.findall(r"```python\n(.*?)```", body, re.DOTALL)
    assert blocks
    for block in blocks:
        code = compile(block, "docs/nn.md (Checkpoints)", "exec")
        exec(code, {"__name__": "docs_nn"})  # noqa: S102 - our own docs
