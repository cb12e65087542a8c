"""Devices: parsing, interning, the default device, transfers (and their gradients), mixed-device
errors, the missing-CuPy path, the extra functions of ``ArrayNamespace``, and creation errors."""

import importlib.util
import math
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet import runtime

HAS_CUPY = importlib.util.find_spec("cupy") is not None

# --------------------------------------------------------------------------------------------
# Parsing and interning
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, kind, index, text", [
    ("cpu", "cpu", None, "cpu"),
    ("cpu:0", "cpu", None, "cpu"),
    ("standin", "standin", None, "standin"),
    ("cuda", "cuda", 0, "cuda:0"),
    ("cuda:0", "cuda", 0, "cuda:0"),
    ("cuda:1", "cuda", 1, "cuda:1"),
    ("gpu", "cuda", 0, "cuda:0"),
])
def test_device_parsing(spec, kind, index, text):
    dev = tn.device(spec)
    assert (dev.type, dev.index, str(dev)) == (kind, index, text)
    assert repr(dev) == f"device('{text}')"


@pytest.mark.parametrize("spec", ["tpu", "", "cuda:x", "cuda:", "cuda:-1", "cpu:1", "standin:2",
                                  "cuda:0:1", "CUDA"])
def test_bad_device_names_raise_value_error(spec):
    with pytest.raises(ValueError):
        tn.Device(spec)


def test_device_from_a_non_string_raises_type_error():
    with pytest.raises(TypeError, match="a device is a string"):
        tn.Device(3)


def test_devices_are_interned_and_compare_with_strings():
    assert tn.Device("cuda") is tn.Device("cuda:0") is tn.Device("cuda", 0) is tn.device("gpu")
    assert tn.Device("cuda:1") is tn.Device("cuda", 1)
    assert tn.Device("cuda:1") is not tn.Device("cuda:0")
    assert tn.Device(tn.Device("standin")) is tn.Device("standin")
    assert tn.Device("cpu") == "cpu" and tn.Device("cuda:0") == "cuda"
    assert tn.Device("cpu") != "standin" and tn.Device("cuda:1") != "cuda:0"
    assert tn.Device("cpu") != "no such device"  # not equal, rather than an exception
    assert len({tn.Device("cuda"), tn.Device("cuda:0")}) == 1


def test_naming_a_cuda_device_does_not_import_cupy():
    # A fresh interpreter: in this process another test may have imported CuPy already.
    code = ("import sys, tinynet as tn\n"
            "d = tn.Device('cuda'); e = tn.Device('cuda:1')\n"
            "assert d is tn.Device('cuda:0') and d == 'cuda:0' and str(e) == 'cuda:1'\n"
            "assert 'cupy' not in sys.modules, 'CuPy was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# The default device
# --------------------------------------------------------------------------------------------


def test_device_context_sets_and_restores_the_default():
    assert tn.get_default_device() == "cpu"
    with tn.device("standin") as dev:
        assert dev is tn.Device("standin")
        assert tn.get_default_device() is dev
        made = [tn.zeros(2), tn.ones(2), tn.randn(2), tn.rand(2), tn.arange(3), tn.tensor([1.0]),
                tn.full((2,), 1.5), tn.eye(2), tn.linspace(0, 1, 3), tn.empty(2), tn.randperm(3),
                tn.randint(0, 3, (2,))]
        assert [t.device for t in made] == [dev] * len(made)
        with tn.device("cpu"):  # nesting
            assert tn.zeros(1).device == "cpu"
        assert tn.zeros(1).device == "standin"
    assert tn.get_default_device() == "cpu"
    assert tn.zeros(2).device == "cpu"


def test_device_context_restores_on_exception():
    with pytest.raises(KeyError):
        with tn.device("standin"):
            raise KeyError("boom")
    assert tn.get_default_device() == "cpu"


def test_set_default_device():
    tn.set_default_device("standin")
    assert tn.get_default_device() is tn.Device("standin")
    assert tn.randn(2, 2).device == "standin"
    assert tn.zeros(2, device="cpu").device == "cpu"  # an explicit device wins
    tn.set_default_device("cpu")
    assert tn.randn(2).device == "cpu"


def _in_thread(fn):
    """Run ``fn`` in a new thread and return what it returned (or raise what it raised)."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_device_blocks_in_two_threads_do_not_move_each_others_tensors():
    # Thread A enters a stand-in block; while it is inside, thread B enters a cpu block; then each
    # makes a tensor. With one process-wide default, A's tensor would land on B's cpu.
    both_inside, a_made = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    made = {}

    def thread_a():
        with tn.device("standin"):
            both_inside.wait()
            made["a"] = tn.zeros(1).device
            a_made.wait()
        made["a_after"] = tn.get_default_device()

    def thread_b():
        both_inside.wait()
        with tn.device("cpu"):
            a_made.wait()
            made["b"] = tn.zeros(1).device
        made["b_after"] = tn.get_default_device()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert made == {"a": "standin", "a_after": "cpu", "b": "cpu", "b_after": "cpu"}


def test_the_default_device_is_per_thread_and_new_threads_start_on_the_cpu():
    tn.set_default_device("standin")
    assert _in_thread(lambda: tn.zeros(1).device) == "cpu"  # as torch.set_default_device

    def set_it_there():
        tn.set_default_device("standin")
        return tn.get_default_device()

    tn.set_default_device("cpu")
    assert _in_thread(set_it_there) == "standin"
    assert tn.get_default_device() == "cpu" and tn.zeros(1).device == "cpu"  # not here


def test_the_default_dtype_is_process_wide_as_in_pytorch():
    tn.set_default_dtype(tn.float64)
    assert _in_thread(lambda: tn.zeros(1).dtype) == np.float64


def test_tensor_of_device_data_stays_on_its_device():
    s = tn.ones(2, device="standin")
    assert tn.tensor(s).device == "standin"  # device data keeps its device
    assert tn.tensor(s, device="cpu").device == "cpu"


# --------------------------------------------------------------------------------------------
# Transfers
# --------------------------------------------------------------------------------------------


def test_one_device_class_per_kind_with_the_attributes_ops_use():
    kinds = {"cpu": tn.backend.CpuDevice, "standin": tn.backend.StandinDevice,
             "cuda:1": tn.backend.CudaDevice}
    for spec, cls in kinds.items():
        dev = tn.device(spec)
        assert type(dev) is cls and isinstance(dev, tn.Device)
        assert dev.name == str(dev) == spec and dev == spec
    for spec in ("cpu", "standin"):
        dev = tn.device(spec)
        assert dev.xp.name == {"cpu": "numpy", "standin": "standin"}[spec]
        assert isinstance(dev.xp.zeros(2), dev.array_type)


def test_transfer_copies_between_devices_and_returns_the_array_when_nothing_moves():
    cpu, standin = tn.device("cpu"), tn.device("standin")
    a = np.arange(3.0)
    assert tn.backend.transfer(a, cpu, cpu) is a
    with tn.backend.count_calls() as counts:
        on_device = tn.backend.transfer(a, cpu, standin)
        back = tn.backend.transfer(on_device, standin, cpu)
    assert isinstance(on_device, standin.array_type) and isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, a)
    a[0] = 7.0  # copies: the device array does not see the change
    assert back[0] == 0.0 and standin.read_scalars(on_device[0]) == (0.0,)
    assert (counts.uploads, counts.syncs) == (1, 1)  # one copy up, one read back


def test_read_scalars_reads_several_values_in_one_sync(device):
    x = tn.tensor([3, -1, 4], device=device).data
    with tn.backend.count_calls() as counts:
        got = tn.device(device).read_scalars(x.min(), x.max(), x.sum())
    assert got == (-1, 4, 6) and all(type(v) is int for v in got)
    assert counts.syncs == (1 if device == "standin" else 0)


def test_synchronize_names_one_wait_per_device():
    with tn.backend.count_calls() as counts:
        tn.synchronize("standin")
        with tn.device("standin"):
            tn.synchronize()  # the default device
        tn.synchronize("cpu")  # nothing is queued on the CPU
    assert counts.sync_calls == {"synchronize": 2}
    with pytest.raises(ValueError, match=r"tn.cuda.synchronize: expected a CUDA device, got cpu"):
        tn.cuda.synchronize("cpu")
    if not tn.cuda.is_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            tn.cuda.synchronize(0)



@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                  elements=st.floats(-1e6, 1e6)))
def test_round_trip_through_the_standin_keeps_values(array):
    t = tn.tensor(array)
    moved = t.to("standin")
    assert moved.device == "standin" and moved.dtype == np.float64 and moved.shape == array.shape
    back = moved.cpu()
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), array)
    assert not np.shares_memory(back.numpy(), t.numpy())  # a transfer is a copy


def test_to_device_dtype_and_both(device):
    t = tn.tensor([[1.5, -2.0], [3.0, 4.25]])
    assert t.to("cpu") is t and t.to(tn.float32) is t  # nothing to do: the same tensor

    on = t.to(device)
    assert on.device == device and on.dtype == np.float32
    cast = t.to(tn.float64)
    assert cast.device == "cpu" and cast.dtype == np.float64
    both = t.to(device, tn.float64)
    assert both.device == device and both.dtype == np.float64
    keyword = t.to(device=device, dtype="float16")
    assert keyword.device == device and keyword.dtype == np.float16
    for moved in (on, both, keyword):
        np.testing.assert_array_equal(moved.cpu().numpy().astype(np.float32), t.numpy())
    assert tn.zeros(2).to(tn.Device(device)).device == device


def test_moving_keeps_the_graph(device):
    x = tn.tensor([1.0, -2.0, 3.5], requires_grad=True)
    y = x.to(device) * 2
    assert y.device == device and y.requires_grad
    (y * y).sum().backward()  # d/dx sum((2x)^2) = 8x
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 8 * x.numpy())


def test_moving_back_and_forth_keeps_the_graph(device):
    x = tn.tensor([0.5, 2.0], dtype=tn.float64, requires_grad=True, device=device)
    y = (x.cpu().exp().to(device) * x).sum()  # x e^x, across two transfers
    y.backward()
    assert x.grad.device == device
    xs = x.detach().cpu().numpy()
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.exp(xs) * (1 + xs))


def test_transfer_gradient_is_checked_numerically(device):
    x = tn.tensor([[0.3, -1.2], [2.0, 0.7]], dtype=tn.float64, requires_grad=True)
    assert tn.gradcheck(lambda a: (a.to(device) ** 3).cpu(), (x,))
    assert tn.gradgradcheck(lambda a: (a.to(device) ** 3).cpu(), (x,))


# --------------------------------------------------------------------------------------------
# Mixed devices
# --------------------------------------------------------------------------------------------

MIXED = {
    "Add": lambda a, b: a + b,
    "MatMul": lambda a, b: a @ b,
    "Cat": lambda a, b: tn.cat([a, b]),
    "Where": lambda a, b: tn.where(a > 0, a, b),
}


@pytest.mark.parametrize("op", sorted(MIXED))
def test_mixed_devices_raise_naming_the_op_and_devices(op):
    a = tn.ones(2, 2)
    b = tn.ones(2, 2, device="standin")
    with pytest.raises(RuntimeError) as info:
        MIXED[op](a, b)
    message = str(info.value)
    assert op in message and "cpu" in message and "standin" in message


def test_index_tensor_on_another_device_raises():
    x = tn.arange(6.0).reshape(2, 3)
    with pytest.raises(RuntimeError) as info:
        x[tn.tensor([1, 0], device="standin")]
    message = str(info.value)
    assert "getitem" in message and "cpu" in message and "standin" in message


def test_device_array_mixed_with_a_tensor_raises():
    with pytest.raises(RuntimeError, match="standin"):
        tn.ones(2) + tn.ones(2, device="standin").data


# --------------------------------------------------------------------------------------------
# CUDA without CuPy
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed: the missing-CuPy path cannot be reached")
def test_cuda_without_cupy_says_how_to_install_it():
    assert tn.cuda.is_available() is False
    assert tn.cuda.device_count() == 0
    for make in (lambda: tn.zeros(2, device="cuda"), lambda: tn.ones(2).to("cuda"),
                 lambda: tn.ones(2).cuda(), lambda: tn.Device("cuda:0").xp):
        with pytest.raises(RuntimeError, match=r"tinynet\[gpu\]"):
            make()


_FAKE_DIST = """Metadata-Version: 2.1
Name: {name}
Version: {version}
"""


@pytest.mark.parametrize("installed", [
    [("cupy-cuda12x", "13.3.0")],
    [("cupy-cuda12x", "13.3.0"), ("cupy_cuda13x", "14.0.1")],
])
def test_two_cupy_packages_side_by_side_get_a_clear_message(tmp_path, installed):
    # Real distribution metadata on sys.path, read by importlib.metadata in a fresh interpreter
    # (on a GPU machine the real CuPy package is found too, and counted).
    for name, version in installed:
        info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(_FAKE_DIST.format(name=name, version=version))
    expected = sorted({f"{n.replace('_', '-')} {v}" for n, v in installed}
                      | set(tn.backend.cuda.cupy_distributions()))
    code = textwrap.dedent("""
        import tinynet as tn
        from tinynet.backend import cuda
        print(cuda.cupy_distributions())
        try:
            tn.zeros(1, device="cuda")
            print("no error")
        except RuntimeError as err:
            print(err)
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120, env=env)
    listed, error = out.stdout.splitlines()[:2]
    assert listed == repr(expected)
    if len(expected) == 1:
        assert "side by side" not in error
    else:
        names = " ".join(e.split()[0] for e in expected)
        assert f"several CuPy packages are installed side by side ({', '.join(expected)})" in error
        assert f"pip uninstall {names}" in error


def test_a_checkout_runs_without_being_installed(tmp_path):
    # A GPU machine with NumPy (and CuPy) installed and no network: tinynet runs from its
    # folder, with no install step. -S leaves out site-packages' .pth files, so the editable
    # install of this checkout is not seen; only the folders on PYTHONPATH are.
    checkout = Path(tn.__file__).resolve().parents[1]
    site_dir = Path(np.__file__).resolve().parents[1]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{checkout}{os.pathsep}{site_dir}"}
    code = "import tinynet, numpy; print(tinynet.__file__); print(tinynet.zeros(2).tolist())"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout.split("\n")
    assert out[0] == str(checkout / "tinynet" / "__init__.py") and out[1] == "[0.0, 0.0]"
    done = subprocess.run([sys.executable, "-S", "-m", "tinynet", "bench", "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "--device" in done.stdout


def test_the_old_host_settings_path_warns_and_points_to_runtime():
    with pytest.warns(DeprecationWarning, match="tinynet.runtime.keep_freed_memory"):
        moved = tn.backend.keep_freed_memory
    assert moved is runtime.keep_freed_memory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'to_device'"):
            tn.backend.to_device  # noqa: B018 - one meaning per name: it is backend.transfer


def test_cuda_device_count_agrees_with_availability():
    assert (tn.cuda.device_count() > 0) == tn.cuda.is_available()


# --------------------------------------------------------------------------------------------
# ArrayNamespace extras: erf, index_add, scatter_add
# --------------------------------------------------------------------------------------------


def _erf_grid():
    near_zero = np.geomspace(1e-300, 1e-1, 600)
    return np.concatenate([np.linspace(-8, 8, 40001), near_zero, -near_zero, [0.0, 2.0, -2.0],
                           np.nextafter([2.0, -2.0], 0)])


def test_erf_float64_matches_math_erf(device):
    grid = _erf_grid()
    xp = tn.Device(device).xp
    got = tn.tensor(xp.erf(tn.tensor(grid, device=device).data)).cpu().numpy()
    ref = np.array([math.erf(v) for v in grid])
    rel = np.abs(got - ref) / np.where(ref == 0, 1, np.abs(ref))
    worst = rel.argmax()
    assert rel.max() < 1e-13, f"worst at x={grid[worst]}: {got[worst]} vs {ref[worst]}"
    assert (got[grid == 0] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_erf_narrow_floats_are_rounded_once(dtype):
    grid = _erf_grid().astype(dtype)
    got = tn.Device("cpu").xp.erf(grid)
    assert got.dtype == dtype
    ref = np.array([math.erf(float(v)) for v in grid])
    # the correctly rounded value is within half a unit in the last place of the dtype
    ulp = np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
    err = np.abs(got.astype(np.float64) - ref) / ulp
    assert err.max() <= 0.5 + 1e-6, f"{err.max()} ulp at x={grid[err.argmax()]}"


def test_erf_limits():
    got = tn.Device("cpu").xp.erf(np.array([np.inf, -np.inf, np.nan, 30.0, -30.0]))
    np.testing.assert_array_equal(got, [1.0, -1.0, np.nan, 1.0, -1.0])


@st.composite
def _scatter_case(draw):
    n = draw(st.integers(1, 6))
    k = draw(st.integers(0, 12))
    index = draw(hnp.arrays(np.int64, (k,), elements=st.integers(0, n - 1)))
    values = draw(hnp.arrays(np.float64, (k, 2), elements=st.floats(-100, 100)))
    return n, index, values


@given(_scatter_case())
def test_index_add_accumulates_repeated_indices(case):
    n, index, values = case
    expected = np.zeros((n, 2))
    for i, row in zip(index, values):  # the definition, one element at a time
        expected[i] += row
    for device in ("cpu", "standin"):
        xp = tn.Device(device).xp
        raw_index = tn.tensor(index, device=device).data
        raw_values = tn.tensor(values, device=device).data
        got = xp.index_add((n, 2), raw_index, raw_values)
        np.testing.assert_allclose(tn.tensor(got).cpu().numpy(), expected, rtol=1e-12, atol=1e-9)

        target = xp.ones((n, 2))
        xp.scatter_add(target, raw_index, raw_values)
        np.testing.assert_allclose(tn.tensor(target).cpu().numpy(), 1 + expected, rtol=1e-12,
                                   atol=1e-9)


def test_index_add_with_unique_indices_and_slices():
    xp = tn.Device("cpu").xp
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(xp.index_add((3, 2), slice(1, 3), values),
                                  [[0, 0], [1, 2], [3, 4]])
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(xp.index_add((3, 2), mask, values), [[1, 2], [0, 0], [3, 4]])
    np.testing.assert_array_equal(xp.index_add((3,), (np.array([2, 2, 0]),), np.ones(3)),
                                  [1, 0, 2])


def test_sigmoid_extra_does_not_overflow():
    xp = tn.Device("cpu").xp
    with np.errstate(over="raise"):
        got = xp.sigmoid(np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0]))
    np.testing.assert_allclose(got, [0.0, 1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-1)), 1.0])


# --------------------------------------------------------------------------------------------
# Creation errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: tn.tensor([1, 2], requires_grad=True),
    lambda: tn.zeros(2, dtype=tn.int64, requires_grad=True),
    lambda: tn.tensor([True, False]).requires_grad_(),
    lambda: tn.arange(3, requires_grad=True),
])
def test_integer_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="floating-point"):
        make()


@pytest.mark.parametrize("data", [object(), {"a": 1}, ["a", "b"], [None, 1.0], "text"])
def test_data_numpy_cannot_read_as_numbers_raises_type_error(data):
    with pytest.raises(TypeError, match="cannot make a tensor"):
        tn.tensor(data)


def test_lossy_float_to_int_cast_raises():
    with pytest.raises(ValueError, match="fractional"):
        tn.tensor([1.5, 2.0], dtype=tn.int64)
    assert tn.tensor([1.0, 2.0], dtype=tn.int64).tolist() == [1, 2]


def test_default_dtype_must_be_floating():
    with pytest.raises(TypeError):
        tn.set_default_dtype(tn.int32)
    tn.set_default_dtype(tn.float64)
    assert tn.tensor([1.0]).dtype == np.float64 and tn.randn(2).dtype == np.float64


# --- host allocator ------------------------------------------------------------------------------
_RSS_AFTER_FREE = """
import sys, numpy as np
from tinynet import runtime
applied = runtime.keep_freed_memory() if sys.argv[1] == "keep" else None
page = {page}

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

a = np.ones(16 << 20, dtype=np.uint8)  # 16 MiB, every page touched
before = rss()
del a
print(applied is not None, before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or runtime._libc() is None,
                    reason="keep_freed_memory acts on glibc's malloc only (Linux)")
def test_keep_freed_memory_keeps_a_freed_block_in_the_process():
    # Without it, glibc hands a freed 16 MiB block straight back to the OS (the next step's
    # temporary then page-faults in afresh); with it, the block stays in the process for reuse.
    import resource

    code = _RSS_AFTER_FREE.format(page=resource.getpagesize())
    released = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                             check=True, timeout=60).stdout.split()
        assert out[0] == str(mode == "keep")  # the settings were applied only when asked
        released[mode] = int(out[1])
    assert released["default"] > 12 << 20
    assert released["keep"] < 1 << 20
