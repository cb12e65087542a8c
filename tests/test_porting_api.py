"""The PyTorch spellings ported code needs beyond the ops: dtype names, in-place methods, Tensor
method forms, ``tn.utils.data``, DataLoader's worker options, the "pick the device" idioms
(``tn.cuda``, ``tn.accelerator``, ``tn.backends``) and ``tn.save`` to a ``.pt`` name.

Where PyTorch is installed, the same calls are also made on it and the results compared.
"""

import importlib
import pathlib
import re
import warnings

import numpy as np
import pytest

import tinynet as tn

try:
    import torch
except ImportError:  # the comparisons are skipped without PyTorch
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def host(t):
    return t.detach().cpu().numpy()


# --- dtype names ---------------------------------------------------------------------------------

DTYPE_NAMES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
               "int": "int32", "short": "int16", "bool": "bool", "float32": "float32",
               "float64": "float64", "float16": "float16", "int64": "int64", "int32": "int32",
               "int16": "int16", "int8": "int8", "uint8": "uint8"}


@pytest.mark.parametrize("name, dtype", sorted(DTYPE_NAMES.items()))
def test_pytorch_dtype_names(name, dtype):
    assert getattr(tn, name) == np.dtype(dtype)
    assert tn.zeros(2, dtype=getattr(tn, name)).dtype == dtype
    if torch is not None:
        assert str(getattr(torch, name)) == f"torch.{dtype}"


def test_dtype_conversions_by_name(device):
    x = tn.tensor([1.5, -2.0], device=device)
    assert x.long().dtype == tn.long and x.long().tolist() == [1, -2]
    assert x.to(tn.long).dtype == tn.int64 and x.half().dtype == tn.half
    assert x.type_as(tn.zeros(1, dtype=tn.double)).dtype == tn.float64
    assert tn.tensor([1, 2], dtype=tn.long, device=device).double().dtype == tn.double
    assert x.is_floating_point() and not x.long().is_floating_point()


# --- Tensor method forms ------------------------------------------------------------------------


def test_method_forms(device):
    x = tn.arange(6.0, device=device).reshape(2, 3)
    cond = tn.tensor([[True, False, True], [False, True, False]], device=device)
    assert x.where(cond, -1.0).tolist() == [[0.0, -1.0, 2.0], [-1.0, 4.0, -1.0]]
    assert x.t().shape == (3, 2) and tn.t(x).tolist() == host(x).T.tolist()
    assert tn.arange(3.0).t().shape == (3,)
    with pytest.raises(ValueError, match="t: expects a tensor with at most 2 dims"):
        tn.zeros(2, 2, 2).t()
    assert [c.shape for c in x.chunk(2, dim=1)] == [(2, 2), (2, 1)]
    assert [c.shape for c in tn.chunk(tn.arange(5.0), 3)] == [(2,), (2,), (1,)]
    assert x[:1].expand_as(x).tolist() == [[0.0, 1.0, 2.0]] * 2
    assert x.nelement() == tn.numel(x) == 6


@pytest.mark.parametrize("make, shape, value", [
    (lambda x: x.new_zeros(2, 3), (2, 3), 0.0), (lambda x: x.new_ones((4,)), (4,), 1.0),
    (lambda x: x.new_full((2,), 7.0), (2,), 7.0), (lambda x: x.new_tensor([5.0, 5.0]), (2,), 5.0),
    (lambda x: x.new_empty(3), (3,), None),
])
def test_new_tensors_take_this_ones_dtype_and_device(device, make, shape, value):
    x = tn.ones(1, dtype=tn.float64, device=device, requires_grad=True)
    y = make(x)
    assert y.shape == shape and y.dtype == tn.float64 and y.device == device
    assert not y.requires_grad and y.is_leaf
    if value is not None:
        assert (host(y) == value).all()
    assert x.new_zeros(2, dtype=tn.long).dtype == tn.long


# --- in-place methods -----------------------------------------------------------------------


def _one_hot(t):
    return t.scatter_(1, tn.tensor([[2], [0]], device=t.device), 1.0)


# (name, call on a (2, 3) float tensor of 0..5, the NumPy result)
INPLACE = [
    ("add_", lambda t: t.add_(tn.ones(3, device=t.device), alpha=2), lambda a: a + 2),
    ("sub_", lambda t: t.sub_(1.5), lambda a: a - 1.5),
    ("mul_", lambda t: t.mul_(tn.tensor([[2.0], [3.0]], device=t.device)),
     lambda a: a * [[2.0], [3.0]]),
    ("div_", lambda t: t.div_(4), lambda a: a / 4),
    ("pow_", lambda t: t.pow_(2), lambda a: a**2),
    ("clamp_", lambda t: t.clamp_(1.0, 4.0), lambda a: np.clip(a, 1.0, 4.0)),
    ("clip_", lambda t: t.clip_(max=tn.tensor([0.0, 9.0, 3.0], device=t.device)),
     lambda a: np.minimum(a, [0.0, 9.0, 3.0])),
    ("fill_", lambda t: t.fill_(tn.tensor(2.5, device=t.device)), lambda a: np.full_like(a, 2.5)),
    ("zero_", lambda t: t.zero_(), np.zeros_like),
    ("copy_", lambda t: t.copy_(tn.tensor([7, 8, 9], device=t.device)),
     lambda a: np.broadcast_to([7.0, 8.0, 9.0], a.shape)),
    ("masked_fill_", lambda t: t.masked_fill_(tn.tensor([True, False, True], device=t.device),
                                              -1.0),
     lambda a: np.where([True, False, True], -1.0, a)),
    ("scatter_", _one_hot, lambda a: np.array([[0.0, 1.0, 1.0], [1.0, 4.0, 5.0]])),
    ("scatter_add_", lambda t: t.scatter_add_(0, tn.tensor([[1, 1, 0]], device=t.device),
                                              tn.ones(1, 3, device=t.device)),
     lambda a: a + [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
]


@pytest.mark.parametrize("name, call, expected", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_methods_write_into_the_tensor_and_return_it(device, name, call, expected):
    t = tn.arange(6.0, device=device).reshape(2, 3)
    a = host(t).copy()
    array = t.data
    out = call(t)
    assert out is t and t.data is array  # the same tensor, the same memory
    np.testing.assert_array_equal(host(t), expected(a))


@needs_torch
@pytest.mark.parametrize("name, call, expected", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_methods_match_pytorch(name, call, expected):
    ours = call(tn.arange(6.0).reshape(2, 3))
    theirs = call(_TorchAsTn(torch.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(host(ours), theirs.t.numpy())


class _TorchAsTn:
    """A torch tensor answering the calls of INPLACE (their tn.tensor(...) operands become torch
    tensors), so that one table drives both libraries."""

    def __init__(self, t):
        self.t = t
        self.device = "cpu"

    def __getattr__(self, name):
        method = getattr(self.t, name)

        def call(*args, **kwargs):
            args = [torch.from_numpy(np.asarray(a)) if isinstance(a, tn.Tensor) else a
                    for a in args]
            kwargs = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, tn.Tensor) else v
                      for k, v in kwargs.items()}
            method(*args, **kwargs)
            return self

        return call


def test_inplace_on_a_leaf_that_requires_grad_needs_no_grad(device):
    w = tn.ones(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.add_(1.0)
    with tn.no_grad():
        w.add_(tn.ones(3, device=device), alpha=-0.5).clamp_(min=0.75)
    assert w.tolist() == [0.75] * 3 and w.requires_grad and w.is_leaf


def test_inplace_inside_the_graph_is_recorded_as_pytorch_records_it(device):
    """PyTorch's semantics: an in-place method on a tensor made by an op, or with an operand
    that requires grad, is part of the graph; gradients reach the old value and the operand."""
    x = tn.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    h = x * 2
    h.add_(x, alpha=3.0)  # h = 2x + 3x
    h.masked_fill_(x < 0, 0.0)  # the middle element no longer depends on x
    h.mul_(x)  # h = 5x^2 where x >= 0
    h.sum().backward()
    assert x.grad.tolist() == [10.0, 0.0, 30.0]
    buffer = tn.zeros(3, device=device)
    buffer.copy_(x)  # the copy carries x's gradient
    (buffer * buffer).sum().backward()
    assert x.grad.tolist() == [12.0, -4.0, 36.0]
    plain = tn.zeros(3, device=device)
    with tn.no_grad():
        plain.copy_(x)  # outside the graph: a plain write
    assert plain.tolist() == [1.0, -2.0, 3.0] and not plain.requires_grad


def test_inplace_dtype_rules_are_pytorchs(device):
    n = tn.tensor([1, 2, 3], device=device)
    with pytest.raises(TypeError, match="add_ on a tensor .* int64"):
        n.add_(0.5)  # a float result does not fit an integer tensor
    assert n.copy_(tn.tensor([1.7, -2.2, 3.9], device=device)).tolist() == [1, -2, 3]
    assert n.fill_(4.9).tolist() == [4, 4, 4]  # an assignment converts, truncating


def test_copy_moves_across_devices_explicitly():
    dst = tn.zeros(2, device="standin")
    dst.copy_(tn.tensor([1.0, 2.0]))
    assert dst.device == "standin" and dst.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"copy_: src of shape \(3,\) does not broadcast"):
        dst.copy_(tn.zeros(3))


def test_div_rounding_modes_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="div_: rounding_mode='floor'"):
        tn.ones(2).div_(2, rounding_mode="floor")


# --- tn.utils.data and the DataLoader's worker options -------------------------------------------


def test_utils_data_is_tinynet_data():
    assert tn.utils.data is tn.data
    assert importlib.import_module("tinynet.utils.data") is tn.data
    from tinynet.utils.data import DataLoader, TensorDataset  # noqa: PLC0415

    assert DataLoader is tn.data.DataLoader and TensorDataset is tn.data.TensorDataset


def _batches(loader):
    return [(host(x).tolist(), host(y).tolist()) for x, y in loader]


def test_dataloader_accepts_pytorchs_worker_options():
    ds = tn.data.TensorDataset(tn.arange(10.0).reshape(5, 2), tn.arange(5))
    plain = _batches(tn.data.DataLoader(ds, batch_size=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults, and False, warn about nothing
        quiet = tn.utils.data.DataLoader(ds, batch_size=2, num_workers=0, pin_memory=False,
                                         persistent_workers=False)
    assert _batches(quiet) == plain
    with pytest.warns(UserWarning, match="num_workers=4 and pin_memory=True have no effect"):
        busy = tn.data.DataLoader(ds, batch_size=2, num_workers=4, pin_memory=True,
                                  persistent_workers=True)
    assert _batches(busy) == plain  # same batches: the options change nothing
    with pytest.warns(UserWarning, match="pin_memory=True has no effect"):
        tn.data.DataLoader(ds, pin_memory=True)
    with pytest.raises(ValueError, match="persistent_workers=True needs num_workers > 0"):
        tn.data.DataLoader(ds, persistent_workers=True)
    with pytest.raises(ValueError, match="num_workers must be a non-negative integer"):
        tn.data.DataLoader(ds, num_workers=-1)


# --- picking the device -------------------------------------------------------------------------


def test_device_idioms_pick_what_is_there():
    cuda = tn.cuda.is_available()
    device = tn.device("cuda" if tn.cuda.is_available() else "cpu")
    assert device == ("cuda:0" if cuda else "cpu")
    assert tn.accelerator.is_available() == cuda
    assert tn.accelerator.device_count() == tn.cuda.device_count()
    accel = tn.accelerator.current_accelerator()
    assert accel == (tn.device("cuda") if cuda else None)
    picked = accel if tn.accelerator.is_available() else tn.device("cpu")
    assert tn.ones(2, device=picked).device == picked
    assert tn.device("mps" if tn.backends.mps.is_available() else "cpu") == "cpu"
    assert not tn.backends.mps.is_built() and not tn.backends.cudnn.is_available()
    assert tn.cuda.current_device() == tn.accelerator.current_device_index() == 0


def test_backend_switches_can_be_set(monkeypatch):
    for obj, name in ((tn.backends.cudnn, "benchmark"), (tn.backends.cudnn, "deterministic"),
                      (tn.backends.cuda.matmul, "allow_tf32")):
        monkeypatch.setattr(obj, name, True)  # what scripts do; tinynet computes the same
    assert tn.backends.cudnn.benchmark and tn.backends.cuda.matmul.allow_tf32


def test_cuda_seeding_is_the_default_stream():
    tn.cuda.manual_seed_all(123)
    a = tn.randn(4).tolist()
    tn.manual_seed(123)
    assert tn.randn(4).tolist() == a
    tn.cuda.manual_seed(7)
    b = tn.rand(3).tolist()
    tn.manual_seed(7)
    assert tn.rand(3).tolist() == b
    tn.cuda.empty_cache()  # nothing to free without CuPy, and no error


# --- tn.save to a PyTorch name ------------------------------------------------------------------


def test_save_to_a_pt_name_warns_and_still_writes_a_tinynet_checkpoint(tmp_path):
    state = tn.nn.Linear(2, 3).state_dict()
    for name in ("model.pt", "model.PTH"):
        with pytest.warns(UserWarning, match="torch.load cannot read it"):
            tn.save(state, tmp_path / name)
        loaded = tn.load(tmp_path / name)
        np.testing.assert_array_equal(host(loaded["weight"]), host(state["weight"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tn.save(state, tmp_path / "model.npz")


@needs_torch
def test_a_saved_state_dict_loads_into_pytorch_through_numpy(tmp_path):
    # The recipe of docs/porting.md: torch.load cannot read the file, numpy.load can.
    model = tn.nn.Sequential(tn.nn.Linear(2, 3), tn.nn.ReLU(), tn.nn.Linear(3, 1))
    tn.save(model.state_dict(), tmp_path / "model.npz")
    archive = np.load(tmp_path / "model.npz")
    state = {k: torch.from_numpy(archive[k]) for k in archive.files if k != "tinynet.json"}
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    theirs.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(),
                               host(model(tn.tensor(x))), rtol=1e-6)


def test_pytorch_spellings_of_threads_and_inference(device):
    with tn.inference_mode():
        y = tn.ones(2, device=device, requires_grad=True) * 2
    assert not y.requires_grad and y.grad_fn is None
    assert tn.set_num_threads is tn.runtime.set_blas_threads
    assert tn.get_num_threads() == tn.runtime.blas_thread_count()
    assert tn.is_floating_point(tn.ones(1)) and not tn.is_floating_point(tn.ones(1).long())
    with pytest.raises(ValueError, match=r"bmm: expects \(B, n, m\) and \(B, m, p\) tensors"):
        tn.bmm(tn.ones(2, 3, 4, device=device), tn.ones(3, 4, 5, device=device))


# --- docs/porting.md: the snippets run, and the name table says the truth ----------------------

PORTING_DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "porting.md"


def _doc_snippets() -> list:
    """Each ```python block, padded with blank lines so tracebacks give its line in the file."""
    text = PORTING_DOC.read_text()
    return [pytest.param("\n" * text.count("\n", 0, m.start(1)) + m.group(1), id=f"block{i}")
            for i, m in enumerate(re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL))]


@pytest.mark.parametrize("snippet", _doc_snippets())
def test_docs_porting_snippet_runs(snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a snippet may write a checkpoint
    exec(compile(snippet, str(PORTING_DOC), "exec"), {"__name__": "docs_porting"})  # noqa: S102


def _table_rows() -> list:
    """(PyTorch names, status) for every row of section 5's tables."""
    section = PORTING_DOC.read_text().split("## 5.")[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1] in ("✓", "≈", "—"):
            rows.append((re.findall(r"`([\w.]+)`", cells[0]), cells[1]))
    return rows


def _resolves(root, path: str) -> bool:
    obj = root
    for part in path.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def _in_tinynet(name: str) -> bool:
    head, _, rest = name.partition(".")
    return _resolves(tn.Tensor if head == "Tensor" else tn, rest)


def test_docs_porting_table_covers_the_names_of_the_issue():
    names = {n for row, _ in _table_rows() for n in row}
    assert len(names) > 300
    for name in ("torch.gather", "Tensor.eq", "Tensor.view_as", "Tensor.clamp_", "torch.long",
                 "torch.flatten", "torch.optim.Adadelta", "torch.utils.data.DataLoader",
                 "torch.accelerator.current_accelerator", "torch.backends.mps.is_available"):
        assert name in names, name


def test_docs_porting_table_says_what_tinynet_has():
    wrong = [f"{name} ({status})" for names, status in _table_rows() for name in names
             if _in_tinynet(name) != (status != "—")]
    assert not wrong, f"docs/porting.md, section 5, is out of date for: {wrong}"


@needs_torch
def test_docs_porting_table_names_are_pytorchs():
    unknown = [name for names, _ in _table_rows() for name in names
               if not _resolves(torch.Tensor if name.startswith("Tensor.") else torch,
                                name.partition(".")[2])]
    assert not unknown, f"not PyTorch names: {unknown}"
