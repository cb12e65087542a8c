"""Checkpoints: ``tn.save`` / ``tn.load`` round trips, devices, the pickle refusal, corrupt and
truncated files, and atomic writes (a crash mid-write keeps the old file)."""

import errno
import importlib.util
import io
import json
import math
import os
import pickle
import re
import stat
import subprocess
import sys
import time
import tracemalloc
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.serialization import FORMAT_VERSION, MAX_DEPTH, STRUCTURE_MEMBER, CheckpointError

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


def test_a_killed_writers_temp_file_is_removed_by_the_next_save(tmp_path):
    """Each kill leaves a temp (no cleanup can run); the next save of the same file removes the
    temps whose writer is gone, and never the temp of a writer still running."""
    path = tmp_path / "ckpt.npz"
    tn.save({"w": tn.ones(4)}, path)
    script = f"""
import os, sys, time
import tinynet as tn
real_write = os.write
def stalled_write(fd, data):
    real_write(fd, bytes(data[:len(data) // 2]))
    print("writing", flush=True)
    if sys.argv[1] == "die":
        os._exit(3)
    time.sleep(120)  # a live writer, mid-save
os.write = stalled_write
tn.save({{"w": tn.zeros(100000)}}, {str(path)!r})
"""

    def killed_save():
        result = subprocess.run([sys.executable, "-c", script, "die"], capture_output=True,
                                timeout=120, check=False)
        assert result.returncode == 3, result.stderr

    killed_save()
    first = {n for n in os.listdir(tmp_path) if n != "ckpt.npz"}
    killed_save()
    second = {n for n in os.listdir(tmp_path) if n != "ckpt.npz"}
    assert len(first) == len(second) == 1 and first != second  # the second save removed it
    live = subprocess.Popen([sys.executable, "-c", script, "stall"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert live.stdout.readline() == "writing\n"
        temps = {n for n in os.listdir(tmp_path) if n != "ckpt.npz"}
        assert len(temps) == 1 and f"-{live.pid}." in temps.pop()  # it removed the dead one
        killed_save()
        temps = {n for n in os.listdir(tmp_path) if n != "ckpt.npz"}
        assert len(temps) == 2, temps  # a dead writer's temp and the live one's
        (tmp_path / ".ckpt.npz.keep.tmp").write_bytes(b"not ours: another naming")
        (tmp_path / ".other.npz.0123456789ab.tmp").write_bytes(b"another target's")
        tn.save({"w": tn.full((4,), 2.0)}, path)
        left = set(os.listdir(tmp_path)) - {"ckpt.npz", ".ckpt.npz.keep.tmp",
                                            ".other.npz.0123456789ab.tmp"}
        assert len(left) == 1 and left < temps, left  # the live writer's temp only
        assert f"-{live.pid}." in left.pop()
    finally:
        live.kill()
        live.wait()
    tn.save({"w": tn.full((4,), 3.0)}, path)  # that writer is gone now too
    assert sorted(os.listdir(tmp_path)) == [".ckpt.npz.keep.tmp", ".other.npz.0123456789ab.tmp",
                                            "ckpt.npz"]
    assert tn.load(path)["w"].tolist() == [3.0] * 4


def test_an_old_style_temp_file_is_removed_once_nobody_wrote_it_for_an_hour(tmp_path):
    from tinynet.atomic import STALE_TEMP_SECONDS

    path = tmp_path / "ckpt.npz"
    old, fresh = tmp_path / ".ckpt.npz.0123456789ab.tmp", tmp_path / ".ckpt.npz.ba9876543210.tmp"
    for temp in (old, fresh):
        temp.write_bytes(b"half a checkpoint")
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    tn.save({"v": 1}, path)
    assert sorted(os.listdir(tmp_path)) == [fresh.name, "ckpt.npz"]


def test_save_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "private.npz"
    tn.save({"v": 1}, path)
    os.chmod(path, 0o600)  # as torch.save (open(path, "wb")) would keep it
    tn.save({"v": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and tn.load(path) == {"v": 2}


@pytest.mark.parametrize("dangling", [False, True])
def test_saving_onto_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, dangling):
    store = tmp_path / "store"
    store.mkdir()
    target = store / "real.npz"
    if not dangling:
        tn.save({"v": 1}, target)
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    tn.save({"v": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert tn.load(target) == {"v": 2} and tn.load(link) == {"v": 2}
    assert sorted(os.listdir(store)) == ["real.npz"] and sorted(os.listdir(tmp_path)) == [
        "latest.npz", "store"]


@pytest.mark.parametrize("path, error, message", [
    ("", ValueError, "tn.save: path is empty"),
    ("missing/ckpt.npz", FileNotFoundError, "tn.save: the folder of 'missing/ckpt.npz' does not"),
    (".", IsADirectoryError, "tn.save: '.' names a folder"),
    (3, TypeError, "tn.save: path must be a str or os.PathLike, got int"),
])
def test_a_bad_save_path_is_named_not_a_temp_file(tmp_path, monkeypatch, path, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=re.escape(message)) as caught:
        tn.save({"v": 1}, path)
    assert ".tmp" not in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_a_bad_load_path_is_named(tmp_path):
    with pytest.raises(ValueError, match="tn.load: path is empty"):
        tn.load("")
    with pytest.raises(TypeError, match="tn.load: path must be"):
        tn.load(None)


@pytest.mark.skipif(tn.cuda.is_available(), reason="a GPU is usable here")
def test_map_location_to_an_unusable_device_says_what_is_missing(tmp_path):
    path = tmp_path / "cpu.npz"
    tn.save({"w": tn.ones(2)}, path)
    with pytest.raises(RuntimeError) as caught:
        tn.load(path, map_location="cuda")
    message = str(caught.value)
    assert "map_location='cuda'" in message and "saved on" not in message
    if importlib.util.find_spec("cupy") is None:
        assert "CuPy" in message and "pip install" in message


# --------------------------------------------------------------------------------------------
# crafted archives: every size and type is checked before anything is inflated or trusted
# --------------------------------------------------------------------------------------------


def craft(path, root, members):
    """A checkpoint with the given root node and raw members (``name -> (bytes, method)``)."""
    header = {"format": "tinynet.checkpoint", "version": 1, "tinynet_version": "0", "root": root}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(STRUCTURE_MEMBER, json.dumps(header))
        for name, (data, method) in members.items():
            zf.writestr(name, data, compress_type=method)


def array_node(member, dtype, shape, **extra):
    return {"type": "ndarray", "member": member, "dtype": dtype, "shape": shape, "scalar": False,
            **extra}


def load_with_peak_memory(path):
    """tn.load's outcome and the peak of new memory it allocated (NumPy reports to tracemalloc)."""
    tracemalloc.start()
    try:
        try:
            outcome = tn.load(path)
        except Exception as exc:  # noqa: BLE001 - returned for the caller to check
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_compressed_member_is_refused_before_it_is_inflated(tmp_path):
    """A zip bomb: a small file whose member inflates to 64 MB of (valid) float32 zeros."""
    path = tmp_path / "bomb.npz"
    count = 16 * 2**20
    info = zipfile.ZipInfo("w.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as zf:
        header = {"format": "tinynet.checkpoint", "version": 1, "tinynet_version": "0",
                  "root": array_node("w.npy", "float32", [count])}
        zf.writestr(STRUCTURE_MEMBER, json.dumps(header))
        with zf.open(info, "w", force_zip64=True) as out:
            out.write(npy_bytes(np.zeros(0, "f4")).replace(b"(0,)", f"({count},)".encode()))
            zeros = bytes(2**20)
            for _ in range(count * 4 // len(zeros)):
                out.write(zeros)
    assert path.stat().st_size < 2**20
    outcome, peak = load_with_peak_memory(path)
    assert isinstance(outcome, CheckpointError), outcome
    assert "'w.npy' is compressed" in str(outcome)
    assert peak < 4 * 2**20, peak


@pytest.mark.parametrize("node_shape", [[10**10], [4]])
def test_an_npy_header_claiming_more_than_the_member_holds(tmp_path, node_shape):
    path = tmp_path / "claim.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**10,)})
    claims = header.getvalue() + bytes(16)  # 4 float32 values, not 10**10
    craft(path, array_node("w.npy", "float32", node_shape), {"w.npy": (claims, zipfile.ZIP_STORED)})
    outcome, peak = load_with_peak_memory(path)
    assert isinstance(outcome, CheckpointError), outcome
    message = str(outcome)
    assert "'w.npy'" in message
    assert ("declares 40000000000 bytes of data, the member holds 16" in message
            if node_shape == [10**10] else "the structure says float32 (4,)" in message)
    assert peak < 2**20, peak


def test_a_member_larger_than_the_file_is_refused(tmp_path):
    path = tmp_path / "sizes.npz"
    tn.save({"w": tn.ones(4)}, path)
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    while raw[central + 46:central + 51] != b"w.npy":  # the central directory entry of w.npy
        central = raw.index(b"PK\x01\x02", central + 1)
    raw[central + 24:central + 28] = (2**31).to_bytes(4, "little")  # its uncompressed size
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"'w\.npy' declares 2147483648 bytes"):
        tn.load(path)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 50_000])
def test_nesting_is_capped_on_load(tmp_path, depth):
    path = tmp_path / "deep.npz"
    root = {"type": "none"}
    for _ in range(depth):
        root = {"type": "list", "items": [root]}
    with zipfile.ZipFile(path, "w") as zf:
        header = {"format": "tinynet.checkpoint", "version": 1, "tinynet_version": "0"}
        text = json.dumps(header)[:-1] + ', "root": ' + '{"type": "list", "items": [' * depth
        zf.writestr(STRUCTURE_MEMBER, text + '{"type": "none"}' + "]}" * depth + "}")
    with pytest.raises(CheckpointError, match="nests deeper than|nested more than"):
        tn.load(path)


def test_nesting_up_to_the_cap_round_trips_and_deeper_is_refused_on_save(tmp_path):
    deep = None
    for _ in range(MAX_DEPTH):
        deep = [deep]
    tn.save(deep, tmp_path / "deep.npz")
    assert tn.load(tmp_path / "deep.npz") == deep
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} deep"):
        tn.save([deep], tmp_path / "deeper.npz")
    itself = []
    itself.append(itself)
    with pytest.raises(ValueError, match="hold itself"):
        tn.save({"loop": itself}, tmp_path / "loop.npz")


@pytest.mark.parametrize("array", [
    np.array(["text", "more"]), np.array([b"ab"]), np.zeros(2, "V4"),
    np.array(["2024-01-01"], "datetime64[s]"), np.array([1], "timedelta64[s]"),
    np.zeros(2, [("a", "<i4"), ("b", "<f4")]),
], ids=["str", "bytes", "void", "datetime", "timedelta", "structured"])
@pytest.mark.parametrize("structure_says", ["float32", "own"])
def test_members_that_are_not_numeric_arrays_are_refused(tmp_path, array, structure_says):
    path = tmp_path / "odd.npz"
    dtype = "float32" if structure_says == "float32" else str(array.dtype)
    craft(path, {"type": "dict", "items": [[{"type": "str", "value": "x"},
                                            array_node("x.npy", dtype, list(array.shape))]]},
          {"x.npy": (npy_bytes(array), zipfile.ZIP_STORED)})
    with pytest.raises(CheckpointError, match=r"x\.npy|not a numeric|\['x'\]"):
        tn.load(path)


@pytest.mark.parametrize("edit, message", [
    ({"requires_grad": "no"}, "field 'requires_grad' is 'no', not a bool"),
    ({"requires_grad": 1}, "field 'requires_grad' is 1, not a bool"),
    ({"parameter": None}, "field 'parameter' is None, not a bool"),
    ({"device": 0}, "field 'device' is 0, not a str"),
    ({"shape": [2, -1]}, r"shape \[2, -1\] is not a list of sizes"),
    ({"shape": [True]}, r"shape \[True\] is not a list of sizes"),
    ({"dtype": "int64", "requires_grad": True},
     "a int64 tensor with requires_grad=True"),
])
def test_tensor_fields_of_the_wrong_type_are_refused(tmp_path, edit, message):
    path = tmp_path / "t.npz"
    tn.save({"w": tn.ones(2)}, path)
    arrays = {"w.npy": npy_bytes(np.ones(2, edit.get("dtype", "float32")))}

    def damage(header):
        header["root"]["items"][0][1].update(edit)
        return header

    rewrite(path, structure=damage, members=arrays)
    with pytest.raises(CheckpointError, match=r"malformed at \['w'\]: " + message):
        tn.load(path)


@pytest.mark.parametrize("root, message", [
    ({"type": "float", "value": True}, "a float node holds True"),
    ({"type": "float", "value": "1e3"}, "a float node holds '1e3'"),
    ({"type": "float", "value": 10**400}, "a float node holds an integer too large"),
    ({"type": "bool", "value": 1}, "field 'value' is 1, not a bool"),
    ({"type": "list", "items": {}}, "field 'items' is {}, not a list"),
    ({"type": "dict", "items": [[{"type": "list", "items": []}, {"type": "none"}]]},
     r"a dict item that is not a \[str/int/bool key, value\] pair"),
    ({"type": "dict", "items": [["k", "v", "w"]]}, "a dict item that is not"),
    (["not", "an", "object"], "a node that is a list"),
])
def test_structure_fields_of_the_wrong_type_are_refused(tmp_path, root, message):
    path = tmp_path / "s.npz"
    craft(path, root, {})
    with pytest.raises(CheckpointError, match="malformed at the top level: " + message):
        tn.load(path)


def test_non_standard_json_and_duplicate_members_are_refused(tmp_path):
    path = tmp_path / "nan.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(STRUCTURE_MEMBER, '{"format": "tinynet.checkpoint", "version": 1, '
                                      '"root": {"type": "float", "value": NaN}}')
    with pytest.raises(CheckpointError, match="NaN is not standard JSON"):
        tn.load(path)
    twice = tmp_path / "twice.npz"
    craft(twice, array_node("w.npy", "float32", [1]),
          {"w.npy": (npy_bytes(np.ones(1, "f4")), zipfile.ZIP_STORED)})
    with zipfile.ZipFile(twice, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("w.npy", npy_bytes(np.full(1, 7, "f4")))
    with pytest.raises(CheckpointError, match="lists member 'w.npy' twice"):
        tn.load(twice)


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
