"""Built-in datasets: the embedded digits (checksum, contents), the generated sets (shapes, dtypes,
determinism, the geometry each promises), the IDX reader and the MNIST loaders on small files these
tests write themselves, and downloads against local servers only (never the internet)."""

import csv
import gzip
import hashlib
import http.server
import io
import re
import shutil
import socket
import struct
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.datasets import ChecksumError, DownloadError, IDXError
from tinynet.datasets.embedded import read_digits_file

DIGITS_PATH = resources.files("tinynet.datasets") / "data" / "digits.csv.gz"
# Class distribution of the UCI optdigits test set, as published with the data set (optdigits.names).
UCI_TEST_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def host(t):
    return np.asarray(t.cpu().numpy()) if hasattr(t, "cpu") else t.numpy()


def arrays(ds):
    return tuple(host(t) for t in ds.tensors)


# ------------------------------------------------------------------------------------------------
# digits


def test_digits_file_has_the_recorded_sha256():
    assert hashlib.sha256(DIGITS_PATH.read_bytes()).hexdigest() == tn.datasets.DIGITS_SHA256


def test_digits_shipped_with_attribution():
    text = (resources.files("tinynet.datasets") / "data" / "ATTRIBUTION.md").read_text()
    for needed in ("Alpaydin", "Kaynak", "CC BY 4.0", "10.24432/C50P49", tn.datasets.DIGITS_SHA256):
        assert needed in text


def test_digits_contents_match_the_file_and_the_uci_test_set():
    x, y = arrays(tn.datasets.digits())
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    # Parsed independently with the csv module: 64 pixel counts, then the label.
    with gzip.open(DIGITS_PATH, "rt") as f:
        rows = np.array([[int(v) for v in row] for row in csv.reader(f)])
    np.testing.assert_array_equal(x * 16, rows[:, :64])
    np.testing.assert_array_equal(y, rows[:, 64])
    assert np.bincount(y).tolist() == UCI_TEST_CLASS_COUNTS
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.all(x * 16 == np.round(x * 16))  # integer counts 0..16


def test_digits_as_image_is_the_8x8_grid_row_by_row():
    x_flat, y_flat = arrays(tn.datasets.digits())
    x_img, y_img = arrays(tn.datasets.digits(as_image=True))
    assert x_img.shape == (1797, 1, 8, 8) and x_img.dtype == np.float32
    for r in range(8):
        for c in range(8):
            np.testing.assert_array_equal(x_img[:, 0, r, c], x_flat[:, 8 * r + c])
    np.testing.assert_array_equal(y_img, y_flat)


def test_digits_returns_fresh_tensors_each_call():
    a = tn.datasets.digits()
    a.tensors[0].data[0, 0] = 123.0  # must not leak into the next call (parsed arrays are cached)
    assert host(tn.datasets.digits().tensors[0])[0, 0] == 0.0


def test_digits_on_a_device(device):
    x, y = tn.datasets.digits(device=device).tensors
    assert x.device == tn.device(device) and y.device == tn.device(device)
    np.testing.assert_array_equal(x.cpu().numpy(), host(tn.datasets.digits().tensors[0]))


@pytest.mark.parametrize("damage", ["flip_byte", "truncate"])
def test_corrupted_digits_file_is_refused(tmp_path, damage):
    raw = bytearray(DIGITS_PATH.read_bytes())
    if damage == "flip_byte":
        raw[len(raw) // 2] ^= 0xFF
    else:
        del raw[-100:]
    bad = tmp_path / "digits.csv.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="sha256 checksum mismatch") as err:
        read_digits_file(bad)
    assert str(bad) in str(err.value)


def test_intact_copy_of_digits_file_reads(tmp_path):
    shutil.copy(DIGITS_PATH, tmp_path / "d.csv.gz")
    pixels, labels = read_digits_file(tmp_path / "d.csv.gz")
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)


# ------------------------------------------------------------------------------------------------
# generated datasets

GENERATED = {
    "spirals": lambda **kw: tn.datasets.spirals(120, n_classes=3, **kw),
    "moons": lambda **kw: tn.datasets.moons(90, **kw),
    "blobs": lambda **kw: tn.datasets.blobs(100, centers=4, n_features=3, **kw),
    "regression": lambda **kw: tn.datasets.regression(80, n_features=2, **kw),
}


@pytest.mark.parametrize("name", GENERATED)
def test_generated_same_seed_same_data_other_seed_other_data(name):
    make = GENERATED[name]
    a, b, c = arrays(make(seed=5)), arrays(make(seed=5)), arrays(make(seed=6))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", GENERATED)
def test_generated_seed_none_follows_manual_seed_and_generator_argument(name):
    make = GENERATED[name]
    tn.manual_seed(11)
    a = arrays(make(seed=None))
    tn.manual_seed(11)
    b = arrays(make(seed=None))
    c = arrays(make(generator=tn.Generator(11)))
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


def test_generated_shapes_and_dtypes():
    expected = {"spirals": ((120, 2), (120,)), "moons": ((90, 2), (90,)),
                "blobs": ((100, 3), (100,)), "regression": ((80, 2), (80, 1))}
    for name, make in GENERATED.items():
        x, y = arrays(make())
        assert (x.shape, y.shape) == expected[name], name
        assert x.dtype == np.float32, name
        assert y.dtype == (np.float32 if name == "regression" else np.int64), name


@given(n=st.integers(1, 60), k=st.integers(1, 7), shuffle=st.booleans())
def test_spirals_and_blobs_split_samples_evenly_between_classes(n, k, shuffle):
    for ds in (tn.datasets.spirals(n, n_classes=k, shuffle=shuffle),
               tn.datasets.blobs(n, centers=k, shuffle=shuffle)):
        _, y = arrays(ds)
        counts = np.bincount(y, minlength=k)
        assert len(y) == n and len(counts) == k and counts.sum() == n
        assert counts.max() - counts.min() <= 1
        if not shuffle:
            assert np.all(np.diff(y) >= 0)  # ordered by class


def test_spirals_without_noise_have_radii_evenly_spread_per_arm():
    x, y = arrays(tn.datasets.spirals(90, n_classes=3, noise=0.0))
    for k in range(3):
        radii = np.sort(np.linalg.norm(x[y == k], axis=1))
        np.testing.assert_allclose(radii, np.linspace(0, 1, 30), atol=1e-6)


def test_spirals_noise_moves_points_off_the_clean_arms():
    clean, _ = arrays(tn.datasets.spirals(90, noise=0.0, shuffle=False))
    noisy, _ = arrays(tn.datasets.spirals(90, noise=0.3, shuffle=False))
    np.testing.assert_allclose(np.linalg.norm(noisy, axis=1), np.linalg.norm(clean, axis=1),
                               atol=1e-6)  # the noise is on the angle only
    assert np.abs(noisy - clean).max() > 0.05


def test_moons_without_noise_lie_on_their_half_circles():
    x, y = arrays(tn.datasets.moons(101, noise=0.0))
    outer, inner = x[y == 0], x[y == 1]
    assert len(outer) == 50 and len(inner) == 51
    np.testing.assert_allclose(np.linalg.norm(outer, axis=1), 1.0, atol=1e-6)
    assert outer[:, 1].min() >= -1e-6
    np.testing.assert_allclose(np.linalg.norm(inner - [1.0, 0.5], axis=1), 1.0, atol=1e-6)
    assert inner[:, 1].max() <= 0.5 + 1e-6


def test_blobs_given_centres_and_zero_spread_sit_on_the_centres():
    centres = np.array([[0.0, 1.0, 2.0], [-3.0, 4.0, 0.5]])
    x, y = arrays(tn.datasets.blobs(10, centers=centres, cluster_std=0.0))
    np.testing.assert_array_equal(x, centres[y].astype(np.float32))


def test_blobs_spread_per_cluster():
    centres = [[0.0, 0.0], [10.0, 10.0]]
    x, y = arrays(tn.datasets.blobs(4000, centers=centres, cluster_std=[0.5, 2.0]))
    for k, (centre, std) in enumerate(zip(centres, (0.5, 2.0))):
        pts = x[y == k]
        # 2000 points: the sample mean is within 5 standard errors, the sample std within 10%.
        np.testing.assert_allclose(pts.mean(axis=0), centre, atol=5 * std / np.sqrt(len(pts)))
        np.testing.assert_allclose(pts.std(axis=0), std, rtol=0.1)


def test_blobs_random_centres_stay_in_the_box():
    x, _ = arrays(tn.datasets.blobs(50, centers=5, cluster_std=0.0, center_box=(2.0, 3.0)))
    assert x.min() >= 2.0 and x.max() <= 3.0
    assert len(np.unique(x, axis=0)) == 5


def test_regression_linear_without_noise_is_exactly_affine():
    x, y = arrays(tn.datasets.regression(100, n_features=3, noise=0.0))
    design = np.hstack([x, np.ones((100, 1), np.float32)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    np.testing.assert_allclose(design @ coef, y, atol=1e-5)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_regression_sine_without_noise_is_the_sine_sum():
    x, y = arrays(tn.datasets.regression(100, n_features=2, noise=0.0, function="sine"))
    np.testing.assert_allclose(y[:, 0], np.sin(np.pi * x.astype(np.float64)).sum(axis=1),
                               atol=1e-5)


def test_regression_noise_has_the_requested_spread():
    _, clean = arrays(tn.datasets.regression(5000, noise=0.0, function="sine"))
    _, noisy = arrays(tn.datasets.regression(5000, noise=0.25, function="sine"))
    # Same seed, same inputs: the difference is the noise alone.
    assert np.std(noisy - clean) == pytest.approx(0.25, rel=0.05)


@pytest.mark.parametrize("call, message", [
    (lambda: tn.datasets.spirals(0), "n_samples"),
    (lambda: tn.datasets.spirals(10, n_classes=0), "n_classes"),
    (lambda: tn.datasets.moons(10, noise=-0.1), "noise"),
    (lambda: tn.datasets.moons(10, noise=float("nan")), "noise"),
    (lambda: tn.datasets.blobs(10, centers=3, cluster_std=[1.0, 2.0]), "cluster_std"),
    (lambda: tn.datasets.blobs(10, centers=2, cluster_std=-1.0), "cluster_std"),
    (lambda: tn.datasets.blobs(10, centers=[1.0, 2.0]), "centers"),
    (lambda: tn.datasets.regression(10, function="cubic"), "function"),
    (lambda: tn.datasets.regression(10, n_features=0), "n_features"),
])
def test_generated_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------------------------------------
# IDX files, written here byte by byte from the format's definition

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, compress=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@given(array=st.sampled_from(list(IDX_CODES)).flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    elements=hnp.from_dtype(dt, allow_nan=False))), compress=st.booleans())
def test_read_idx_round_trips_every_dtype(tmp_path_factory, array, compress):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a.idx", array, compress)
    out = tn.datasets.read_idx(path)
    assert out.dtype == array.dtype.newbyteorder("=") and out.shape == array.shape
    assert out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_read_idx_big_endian_values(tmp_path):
    # 258 = 0x0102 must be read from the bytes 01 02, whatever the machine's byte order.
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 2) + bytes([1, 2, 0xFF, 0xFE]))
    np.testing.assert_array_equal(tn.datasets.read_idx(path), [258, -2])


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 3) + b"abc", "bad magic number"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc", "unknown IDX dtype code 0x07"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab", "need 3 data bytes, the file has 2"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"abcd", "need 3 data bytes, the file has 4"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 3), "truncated header"),
    (b"\x00\x00", "too short"),
    (gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"abc")[:-6], "corrupt gzip"),
])
def test_read_idx_rejects_malformed_files(tmp_path, data, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(IDXError, match=message) as err:
        tn.datasets.read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        tn.datasets.read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST loaders


def write_split(root, prefix, n, compress, rng, side=28, labels=None):
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8) if labels is None else labels
    suffix = ".gz" if compress else ""
    write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


@pytest.mark.parametrize("loader", [tn.datasets.mnist, tn.datasets.fashion_mnist])
def test_loaders_read_plain_and_gzip_splits(tmp_path, loader):
    rng = np.random.default_rng(0)
    train_images, train_labels = write_split(tmp_path, "train", 6, False, rng)
    test_images, test_labels = write_split(tmp_path, "t10k", 4, True, rng)
    for train, images, labels in ((True, train_images, train_labels),
                                  (False, test_images, test_labels)):
        x, y = arrays(loader(tmp_path, train=train))
        assert x.shape == (len(labels), 1, 28, 28) and x.dtype == np.float32
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x[:, 0] * np.float32(255), images)
        np.testing.assert_array_equal(y, labels)
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_loader_missing_folder_names_path_and_files(tmp_path):
    root = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as err:
        tn.datasets.mnist(root)
    for needed in (str(root), "does not exist", "train-images-idx3-ubyte",
                   "train-labels-idx1-ubyte", "download=True"):
        assert needed in str(err.value)


def test_loader_missing_file_names_it(tmp_path):
    rng = np.random.default_rng(1)
    write_split(tmp_path, "t10k", 3, False, rng)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]") as err:
        tn.datasets.fashion_mnist(tmp_path, train=False)
    assert str(tmp_path) in str(err.value)
    assert "t10k-images" not in str(err.value).split("lacks")[1].split(";")[0]


def test_loader_rejects_mismatched_or_bad_labels(tmp_path):
    rng = np.random.default_rng(2)
    write_split(tmp_path, "train", 5, False, rng, labels=np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        tn.datasets.mnist(tmp_path)
    write_split(tmp_path, "train", 3, False, rng, labels=np.array([0, 12, 3], np.uint8))
    with pytest.raises(ValueError, match="labels must be 0..9"):
        tn.datasets.mnist(tmp_path)


def test_loader_rejects_corrupt_idx(tmp_path):
    rng = np.random.default_rng(3)
    write_split(tmp_path, "train", 2, False, rng)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IDXError, match="truncated or not an IDX file"):
        tn.datasets.mnist(tmp_path)


def test_loader_on_a_device(tmp_path, device):
    write_split(tmp_path, "train", 3, True, np.random.default_rng(4))
    x, y = tn.datasets.mnist(tmp_path, device=device).tensors
    assert x.device == tn.device(device) and y.device == tn.device(device)


# ------------------------------------------------------------------------------------------------
# downloads: local servers only


def closed_port_url() -> str:
    with socket.socket() as s:  # bind, read the port, close: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def silent_server():
    """A socket that accepts connections (into its backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.fixture
def http_server():
    """A local HTTP server serving ``files`` (a dict: path -> bytes); 404 for anything else."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_unreachable_mirrors_give_one_clear_error(tmp_path, silent_server):
    refused = closed_port_url()
    with pytest.raises(DownloadError) as err:
        tn.datasets.mnist(tmp_path / "mnist", download=True, mirrors=[refused, silent_server],
                          timeout=0.2)
    message = str(err.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert "offline" in message
    assert refused + "train-images-idx3-ubyte.gz" in message
    assert silent_server + "train-images-idx3-ubyte.gz" in message
    assert "timed out" in message
    assert not (tmp_path / "mnist").exists() or not any((tmp_path / "mnist").iterdir())


def test_download_refuses_a_wrong_checksum_and_writes_nothing(tmp_path, http_server):
    url, files = http_server
    files["/train-images-idx3-ubyte.gz"] = gzip.compress(b"not MNIST")
    root = tmp_path / "mnist"
    with pytest.raises(ChecksumError, match="md5 checksum mismatch") as err:
        tn.datasets.mnist(root, download=True, mirrors=[url], timeout=5)
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in str(err.value)  # the published MD5
    assert not root.exists() or not any(root.iterdir())


def test_download_tries_the_next_mirror_and_verifies(tmp_path, http_server):
    url, files = http_server
    payload = gzip.compress(idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 2, 2)))
    files["/b/x.gz"] = payload
    for algorithm in ("sha256", "md5"):
        checksum = hashlib.new(algorithm, payload).hexdigest()
        path = tn.datasets.download_file([url + "/a/x.gz", url + "/b/x.gz"],
                                         tmp_path / algorithm / "x.gz", checksum, algorithm,
                                         timeout=5)
        assert path.read_bytes() == payload
        assert sorted(p.name for p in path.parent.iterdir()) == ["x.gz"]  # no temporary left
        np.testing.assert_array_equal(tn.datasets.read_idx(path),
                                      np.arange(12).reshape(3, 2, 2))


def test_download_http_error_is_reported(tmp_path, http_server):
    url, _ = http_server
    with pytest.raises(DownloadError, match="HTTP 404"):
        tn.datasets.download_file(url + "/missing.gz", tmp_path / "m.gz", "0" * 64, timeout=5)


def test_download_skips_files_already_there(tmp_path):
    write_split(tmp_path, "t10k", 2, True, np.random.default_rng(5))
    x, _ = tn.datasets.mnist(tmp_path, train=False, download=True, mirrors=[closed_port_url()],
                             timeout=0.2).tensors
    assert x.shape == (2, 1, 28, 28)


def test_idx_bytes_helper_matches_the_format_definition():
    # The writer the tests rely on, checked against hand-written bytes: magic 0x00000801 for
    # uint8 1-D, then the size, then the values.
    assert idx_bytes(np.array([7, 9], np.uint8)) == bytes.fromhex("00000801 00000002 0709")
    assert io.BytesIO(idx_bytes(np.zeros((2, 3), np.int32))).read(4) == bytes.fromhex("00000C02")


# ------------------------------------------------------------------------------------------------
# docs


def test_docs_datasets_snippets_run(tmp_path, monkeypatch):
    text = (Path(__file__).parent.parent / "docs" / "data.md").read_text()
    section = re.search(r"^## Datasets\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/data.md has no '## Datasets' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # the MNIST snippet looks for data/mnist relative to here
    for block in blocks:
        exec(compile(block, "docs/data.md (Datasets)", "exec"), {})  # noqa: S102
