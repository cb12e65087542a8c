"""MNIST-1D: the embedded file (checksum, format, contents), equality with the reference generator
(when the ``mnist1d`` package is installed), variants and their errors, the paper's models (shapes,
state-dict keys and outputs against PyTorch's when installed), over-fitting, and the example."""

import hashlib
import importlib
import math
import random
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.datasets import ChecksumError
from tinynet.datasets.mnist1d import (
    MNIST1D_DEFAULTS,
    read_mnist1d_file,
    write_mnist1d_file,
)

DATA = resources.files("tinynet.datasets") / "data"
ROOT = Path(__file__).resolve().parent.parent


def arrays(ds):
    return tuple(t.numpy() for t in ds.tensors)


@pytest.fixture(scope="module")
def embedded():
    train, test = tn.datasets.mnist1d()
    return arrays(train) + arrays(test)  # x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def reference():
    """The reference generator's default dataset, made by its own code (not through tinynet)."""
    pytest.importorskip("mnist1d", reason="the reference generator is not installed "
                                          '(pip install "tinynet[mnist1d]")')
    from mnist1d.data import get_dataset_args, make_dataset
    numpy_state, python_state = np.random.get_state(), random.getstate()
    data = make_dataset(get_dataset_args())  # seeds the global streams: put them back after
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def without_mnist1d(monkeypatch):
    """Make ``import mnist1d`` (and its submodules) fail as if the package were not installed."""
    for name in [m for m in sys.modules if m == "mnist1d" or m.startswith("mnist1d.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("mnist1d", "mnist1d.data", "mnist1d.utils"):
        monkeypatch.setitem(sys.modules, name, None)


# ------------------------------------------------------------------------------------------------
# the embedded file


def test_mnist1d_file_has_the_recorded_sha256():
    raw = (DATA / "mnist1d.npz").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == tn.datasets.MNIST1D_SHA256
    assert len(raw) < 700_000  # float32 byte planes, deflated: the file stays small


def test_mnist1d_shipped_with_attribution_and_licence():
    text = (DATA / "ATTRIBUTION.md").read_text()
    for needed in ("Greydanus", "Kobak", "Apache License 2.0", "arXiv:2011.14439",
                   "MNIST1D-LICENSE.txt", tn.datasets.MNIST1D_SHA256):
        assert needed in text
    licence = (DATA / "MNIST1D-LICENSE.txt").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence


def test_mnist1d_shapes_dtypes_classes_and_balance(embedded):
    x, y, x_test, y_test = embedded
    assert x.shape == (4000, 40) and x.dtype == np.float32
    assert x_test.shape == (1000, 40) and x_test.dtype == np.float32
    assert y.shape == (4000,) and y_test.shape == (1000,) and y.dtype == y_test.dtype == np.int64
    assert set(np.unique(y)) == set(np.unique(y_test)) == set(range(10))
    # The generator makes num_samples // 10 = 500 signals of each class, shuffles, then splits.
    assert (np.bincount(y, minlength=10) + np.bincount(y_test, minlength=10)).tolist() == [500] * 10
    assert np.bincount(y).min() > 350 and np.bincount(y_test).min() > 50  # both splits mixed
    # ... and standardises all 5,000 signals together to mean 0, standard deviation 1.
    both = np.concatenate([x, x_test]).astype(np.float64)
    assert abs(both.mean()) < 1e-6 and abs(both.std() - 1) < 1e-6
    assert np.isfinite(both).all() and len(np.unique(both)) > 190_000  # noise: no repeats


def test_mnist1d_layouts_hold_the_same_signals(embedded):
    x = embedded[0]
    (ncl, y_ncl), _ = (arrays(d) for d in tn.datasets.mnist1d(layout="NCL"))
    (nlc, _), _ = (arrays(d) for d in tn.datasets.mnist1d(layout="NLC"))
    assert ncl.shape == (4000, 1, 40) and nlc.shape == (4000, 40, 1)
    np.testing.assert_array_equal(ncl[:, 0, :], x)
    np.testing.assert_array_equal(nlc[:, :, 0], x)
    np.testing.assert_array_equal(y_ncl, embedded[1])


def test_mnist1d_returns_fresh_tensors_and_places_them_on_the_device(embedded):
    train, _ = tn.datasets.mnist1d()
    train.tensors[0].numpy()[:] = 0.0  # a user scribbling on the returned data
    again, test = tn.datasets.mnist1d(device="standin")
    assert again.tensors[0].device == test.tensors[1].device == "standin"
    np.testing.assert_array_equal(again.tensors[0].cpu().numpy(), embedded[0])


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
       st.integers(0, 255))
def test_mnist1d_file_format_round_trips_every_float32_bit(tmp_path_factory, x, label):
    path = tmp_path_factory.mktemp("m1d") / "variant.npz"
    y = np.full(len(x), label, dtype=np.uint8)
    sha = write_mnist1d_file(path, x, y, x[::-1], y)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    x_train, y_train, x_test, y_test = read_mnist1d_file(path, sha)
    # Bit for bit, so NaN payloads and -0.0 survive too.
    np.testing.assert_array_equal(x_train.view(np.uint32), x.view(np.uint32))
    np.testing.assert_array_equal(x_test.view(np.uint32), x[::-1].view(np.uint32))
    assert y_train.tolist() == y_test.tolist() == y.tolist()


def test_mnist1d_writer_is_deterministic_and_rebuilds_the_embedded_file(tmp_path, embedded):
    x, y, x_test, y_test = embedded
    sha = write_mnist1d_file(tmp_path / "a.npz", x, y, x_test, y_test)
    assert write_mnist1d_file(tmp_path / "b.npz", x, y, x_test, y_test) == sha
    # Same arrays in, the same arrays out (the bytes may differ only with another zlib).
    for got, want in zip(read_mnist1d_file(tmp_path / "a.npz", sha), embedded):
        np.testing.assert_array_equal(got, want)


def test_mnist1d_corrupted_or_foreign_file_is_refused(tmp_path):
    raw = bytearray((DATA / "mnist1d.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "mnist1d.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"mnist1d\.npz: sha256 checksum mismatch"):
        read_mnist1d_file(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    sha = hashlib.sha256(foreign.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=r"foreign\.npz: expected arrays \['x_train'"):
        read_mnist1d_file(foreign, sha)
    text = tmp_path / "notes.npz"
    text.write_text("not a zip archive")
    with pytest.raises(ValueError, match=r"notes\.npz: not an MNIST-1D file \(\.npz, a zip"):
        read_mnist1d_file(text, hashlib.sha256(text.read_bytes()).hexdigest())


def test_mnist1d_file_size_is_bounded_before_inflating(monkeypatch):
    # The real file inflates to about 1 MB; under a 100 kB bound it must be refused unread.
    module = importlib.import_module("tinynet.datasets.mnist1d")  # the module, not the function
    monkeypatch.setattr(module, "_MAX_INFLATED_BYTES", 100_000)
    with pytest.raises(ValueError, match=r"would inflate to \d+ bytes, more than the 100000"):
        read_mnist1d_file(DATA / "mnist1d.npz")


# ------------------------------------------------------------------------------------------------
# the reference generator


def test_embedded_mnist1d_equals_the_reference_generator(embedded, reference):
    for got, want in zip(embedded, reference):
        assert got.shape == want.shape
        if want.dtype.kind == "f":  # the generator's float64 rounded to float32, exactly
            np.testing.assert_array_equal(got, want.astype(np.float32))
        else:
            np.testing.assert_array_equal(got, want)
    generated = tn.datasets.mnist1d(generate=True)
    for got, want in zip(sum((arrays(d) for d in generated), ()), embedded):
        np.testing.assert_array_equal(got, want)


def test_defaults_are_the_reference_generators(reference):
    from mnist1d.data import get_dataset_args
    theirs = get_dataset_args(as_dict=True)
    theirs.pop("url")  # where their pickle is published; not a generator setting
    theirs["padding"] = tuple(theirs["padding"])
    assert theirs == MNIST1D_DEFAULTS


def test_variants_come_from_the_generator_and_leave_global_rngs_alone(reference):
    np.random.seed(123)
    random.seed(123)
    numpy_next, python_next = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    plain_train, plain_test = tn.datasets.mnist1d(num_samples=200, seed=7)
    # The generator re-seeds NumPy's and Python's global streams; both are restored.
    assert np.random.rand() == numpy_next and random.random() == python_next
    x, y = arrays(plain_train)
    assert x.shape == (160, 40) and len(arrays(plain_test)[0]) == 40
    assert np.bincount(np.concatenate([y, arrays(plain_test)[1]])).tolist() == [20] * 10

    shuffled, _ = tn.datasets.mnist1d(num_samples=200, seed=7, shuffle_seq=True)
    xs, ys = arrays(shuffled)
    np.testing.assert_array_equal(ys, y)  # the same samples ...
    # ... with their 40 positions permuted, the same permutation for every sample.
    match = np.isclose(xs[:, :, None], x[:, None, :], atol=1e-6).all(axis=0)  # (40, 40)
    perm = match.argmax(axis=1)
    assert match.any(axis=1).all() and sorted(perm) == list(range(40))
    assert (perm != np.arange(40)).sum() > 30
    np.testing.assert_allclose(xs, x[:, perm], atol=1e-6)

    short, _ = tn.datasets.mnist1d(num_samples=100, final_seq_length=24, layout="NCL")
    assert short.tensors[0].shape == (80, 1, 24)


def test_variant_without_the_generator_says_how_to_install_it(monkeypatch, embedded):
    without_mnist1d(monkeypatch)
    with pytest.raises(ModuleNotFoundError) as info:
        tn.datasets.mnist1d(num_samples=1000, shuffle_seq=True)
    message = str(info.value)
    assert "mnist1d(num_samples=1000, shuffle_seq=True)" in message
    assert 'pip install "tinynet[mnist1d]"' in message and "SciPy" in message
    with pytest.raises(ModuleNotFoundError, match=r"mnist1d\(generate=True\)"):
        tn.datasets.mnist1d(generate=True)
    # The paper's dataset itself needs nothing but the package's own file.
    train, _ = tn.datasets.mnist1d()
    np.testing.assert_array_equal(train.tensors[0].numpy(), embedded[0])


@pytest.mark.parametrize("kwargs, pattern", [
    ({"layout": "NHW"}, r"mnist1d: layout must be one of \('NL', 'NCL', 'NLC'\).*'NHW'"),
    ({"num_samples": 5}, r"mnist1d: num_samples must be an integer >= 10.*got 5"),
    ({"num_samples": 100, "train_split": 1.0},
     r"train_split=1\.0 of 100 samples gives 100 training and 0 test"),
    ({"padding": (60, 36)}, r"padding must be two integers \(low, high\).*\(60, 36\)"),
    ({"final_seq_length": 0}, r"final_seq_length must be a positive integer, got 0"),
])
def test_bad_arguments_are_named_before_anything_is_generated(monkeypatch, kwargs, pattern):
    without_mnist1d(monkeypatch)  # the checks come first: no package needed to see them
    with pytest.raises(ValueError, match=pattern):
        tn.datasets.mnist1d(**kwargs)


# ------------------------------------------------------------------------------------------------
# the paper's models

MODELS = {  # builder, parameter count from the architecture
    "linear": (tn.models.mnist1d_linear, 40 * 10 + 10),
    "mlp": (tn.models.mnist1d_mlp, (40 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)),
    "gru": (tn.models.mnist1d_gru, 2 * (3 * 6 * 1 + 3 * 6 * 6 + 2 * 3 * 6) + 40 * 12 * 10 + 10),
    "cnn": (tn.models.mnist1d_cnn, (25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + 125 * 10 + 10),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mnist1d_models_take_every_layout_and_count_parameters(name):
    build, count = MODELS[name]
    tn.manual_seed(0)
    model = build()
    assert sum(math.prod(p.shape) for p in model.parameters()) == count
    x = tn.randn(5, 40)
    out = model(x)
    assert out.shape == (5, 10) and out.dtype == np.float32
    for shape in ((5, 1, 40), (5, 40, 1)):  # the "NCL" and "NLC" layouts of the same signals
        np.testing.assert_allclose(model(x.reshape(*shape)).numpy(), out.numpy(), rtol=1e-6)


def test_mnist1d_model_widths_and_errors():
    assert tn.models.mnist1d_mlp(hidden=100).linear2.weight.shape == (100, 100)
    assert tn.models.mnist1d_gru(hidden=4, bidirectional=False).linear.weight.shape == (10, 160)
    with pytest.raises(ValueError, match=r"GRUClassifier: expected 40 values per sample .*"
                                         r"\(3, 39\)"):
        tn.models.mnist1d_gru()(tn.randn(3, 39))
    with pytest.raises(ValueError, match=r"hidden must be a positive integer, got 0"):
        tn.models.mnist1d_mlp(hidden=0)


def torch_reference(name):
    """The paper's PyTorch models (notebooks/models.py of greydanus/mnist1d), written out."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    nn = torch.nn

    class LinearBase(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(40, 10)

        def forward(self, x):
            return self.linear(x)

    class MLPBase(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear1, self.linear2 = nn.Linear(40, 256), nn.Linear(256, 256)
            self.linear3 = nn.Linear(256, 10)

        def forward(self, x):
            h = self.linear1(x).relu()
            h = h + self.linear2(h).relu()
            return self.linear3(h)

    class ConvBase(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(1, 25, 5, stride=2, padding=1)
            self.conv2 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
            self.linear = nn.Linear(125, 10)

        def forward(self, x):
            x = x.view(-1, 1, x.shape[-1])
            h = self.conv3(self.conv2(self.conv1(x).relu()).relu()).relu()
            return self.linear(h.view(h.shape[0], -1))

    class GRUBase(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(1, 6, batch_first=True, bidirectional=True)
            self.linear = nn.Linear(480, 10)

        def forward(self, x):
            h0 = torch.zeros(2, x.shape[0], 6, dtype=x.dtype)  # the reference passes zeros
            output, _ = self.gru(x.view(*x.shape[:2], 1), h0)
            return self.linear(output.reshape(output.shape[0], -1))

    return {"linear": LinearBase, "mlp": MLPBase, "cnn": ConvBase,
            "gru": GRUBase}[name]().double()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mnist1d_models_match_the_pytorch_reference(name):
    import_torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    theirs = torch_reference(name)
    ours = MODELS[name][0]().to(dtype="float64")
    their_state = theirs.state_dict()
    assert list(ours.state_dict()) == list(their_state)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in their_state.items()}
    ours.load_state_dict({k: v.numpy() for k, v in their_state.items()})
    x = np.random.default_rng(0).standard_normal((7, 40))
    with import_torch.no_grad():
        want = theirs(import_torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(tn.tensor(x, dtype="float64")).numpy(), want, rtol=1e-10,
                               atol=1e-12)



@pytest.mark.parametrize("name", ["mlp", "cnn", "gru"])
def test_mnist1d_recipe_follows_pytorch_step_for_step_in_float64(name, embedded):
    """The paper's recipe (Adam, lr 1e-2, batches of 100 in order) from the same weights: in
    float64 tinynet's losses and weights stay with PyTorch's, so the float32 runs of the table
    differ only by rounding."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    theirs = torch_reference(name)
    ours = MODELS[name][0]().to(dtype="float64")
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    our_opt = tn.optim.Adam(ours.parameters(), lr=1e-2)
    their_opt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    x, y = embedded[0].astype(np.float64), embedded[1]
    for step in range(12):
        xb, yb = x[step * 100:(step + 1) * 100], y[step * 100:(step + 1) * 100]
        our_loss = tn.nn.functional.cross_entropy(ours(tn.tensor(xb, dtype="float64")),
                                                  tn.tensor(yb))
        their_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(xb)),
                                                       torch.from_numpy(yb))
        assert float(our_loss.item()) == pytest.approx(their_loss.item(), rel=1e-12, abs=0)
        for opt, loss in ((our_opt, our_loss), (their_opt, their_loss)):
            opt.zero_grad()
            loss.backward()
            opt.step()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=0,
                                   atol=1e-12, err_msg=key)

def test_mnist1d_mlp_overfits_a_small_training_set_measurably(embedded):
    """The paper's point about MLPs on MNIST-1D, in two seconds: it learns 500 training signals
    perfectly and generalises poorly (the linear model barely has a gap)."""
    x, y, x_test, y_test = (tn.tensor(a) for a in embedded)
    x, y = x[:500], y[:500]

    def train_and_score(model, steps=150):
        optimizer = tn.optim.Adam(model.parameters(), lr=1e-2)
        loss_fn = tn.nn.CrossEntropyLoss()
        for step in range(steps):
            i = step * 100 % 500  # batches of 100 in order, as the paper's loop
            loss = loss_fn(model(x[i:i + 100]), y[i:i + 100])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with tn.no_grad():
            return [float((model(a).argmax(-1) == b).float().mean().item())
                    for a, b in ((x, y), (x_test, y_test))]

    tn.manual_seed(0)
    mlp_train, mlp_test = train_and_score(tn.models.mnist1d_mlp())
    linear_train, linear_test = train_and_score(tn.models.mnist1d_linear())
    assert mlp_train > 0.95  # memorised
    assert mlp_train - mlp_test > 0.3  # ... and far worse on signals it has not seen
    assert mlp_train - mlp_test > 2 * (linear_train - linear_test)
    assert mlp_test > 0.2  # still well above chance (0.1): it learned something


def test_12_mnist1d_table_example_prints_the_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "12_mnist1d_table.py"), "--models", "linear",
         "mlp", "cnn", "--seeds", "0", "1", "--steps", "300", "--no-torch"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "301 steps of batch 100, Adam lr 0.01; seeds [0, 1]" in out
    runs = re.findall(r"^(\w+)\s+seed (\d): tinynet test\s+(\S+)% \(best\s+(\S+)%\) train\s+(\S+)%",
                      out, re.MULTILINE)
    assert [(r[0], r[1]) for r in runs] == [("linear", "0"), ("linear", "1"), ("mlp", "0"),
                                            ("mlp", "1"), ("cnn", "0"), ("cnn", "1")]
    for name, _, test, best, train in runs:
        assert 15 < float(test) <= float(best) <= 100 and float(train) <= 100
    rows = {m.group(1): m for m in re.finditer(
        r"^(linear|mlp|cnn)\s+(\d+)%\s+(\S+) ± (\S+) \((\S+)-(\S+)\)", out, re.MULTILINE)}
    assert rows["linear"].group(2) == "32" and rows["mlp"].group(2) == "68"
    assert rows["cnn"].group(2) == "94"
    mlp_tests = sorted(float(r[2]) for r in runs if r[0] == "mlp")
    assert float(rows["mlp"].group(3)) == pytest.approx(np.mean(mlp_tests), abs=0.051)
    cnn_tests = sorted(float(r[2]) for r in runs if r[0] == "cnn")
    assert float(rows["cnn"].group(3)) == pytest.approx(np.mean(cnn_tests), abs=0.051)
    assert min(cnn_tests) > max(mlp_tests)  # the convolution's inductive bias, after 300 steps
    gap = float(re.search(r"MLP over-fitting gap \(train - test accuracy\): (\S+) points",
                          out).group(1))
    assert gap > 10


def test_docs_mnist1d_snippets_run(capsys):
    text = (ROOT / "docs" / "mnist1d.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "docs/mnist1d.md", "exec"), {})  # noqa: S102
    out = capsys.readouterr().out
    assert "LinearClassifier 410 (100, 10)" in out and "GRUClassifier 5134 (100, 10)" in out
    # The recipe's loop opens the over-fitting gap within 1,000 steps, as the page says.
    last = re.findall(r"^step 1000: train (\S+)  test (\S+)$", out, re.MULTILINE)
    assert last and float(last[0][0]) > 0.85 and float(last[0][0]) - float(last[0][1]) > 0.15
