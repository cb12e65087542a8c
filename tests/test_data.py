"""tinynet.data: the loader's epoch/batch invariants (hypothesis property tests over N, B,
drop_last, shuffle and seeds), resuming from a saved state, vectorised batching, device placement,
random_split, stratified_split and KFold, and the snippets of docs/data.md.

Samples carry their own index (``TensorDataset(x, ids)`` with ``x[i] = (i, -i)``), so every test
can see which samples a batch holds and that the rows of ``x`` and ``ids`` stay aligned.
"""

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinynet as tn
from tinynet import backend
from tinynet.data import (
    DataLoader, Dataset, KFold, Subset, TensorDataset, default_collate, random_split,
    stratified_split,
)

sizes = st.integers(0, 40)
batch_sizes = st.integers(1, 12)
seeds = st.integers(0, 2**32 - 1)


def indexed(n: int, device="cpu") -> TensorDataset:
    """x[i] = (i, -i) as float32, ids[i] = i."""
    ids = np.arange(n, dtype=np.int64)
    x = np.stack([ids, -ids], axis=1).astype(np.float32).reshape(n, 2)
    return TensorDataset(tn.tensor(x, device=device), tn.tensor(ids, device=device))


class Rows(Dataset):
    """A dataset that is not array-backed: samples are computed one at a time."""

    def __init__(self, n: int):
        self.n = n
        self.calls = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        return tn.tensor([float(i), -float(i)]), tn.tensor(i)


class CountingTensorDataset(TensorDataset):
    """A TensorDataset that counts per-sample reads (the loader must never make any)."""

    calls = 0

    def __getitem__(self, i):
        type(self).calls += 1
        return super().__getitem__(i)


def host(t) -> np.ndarray:
    return t.cpu().numpy()


def epoch_ids(loader) -> list[list[int]]:
    """The sample ids of each batch of one epoch, checking that x and ids stay aligned."""
    out = []
    for x, ids in loader:
        ids = host(ids)
        np.testing.assert_array_equal(host(x), np.stack([ids, -ids], 1).astype(np.float32))
        out.append(ids.tolist())
    return out


def flat(batches) -> list[int]:
    return [i for b in batches for i in b]


# --- the epoch/batch invariants --------------------------------------------------------------

@given(n=sizes, b=batch_sizes, drop_last=st.booleans(), shuffle=st.booleans(), seed=seeds)
def test_every_epoch_visits_every_sample_exactly_once(n, b, drop_last, shuffle, seed):
    loader = DataLoader(indexed(n), batch_size=b, shuffle=shuffle, drop_last=drop_last, seed=seed)
    for _ in range(3):
        ids = flat(epoch_ids(loader))
        assert len(set(ids)) == len(ids)  # nothing twice
        assert set(ids) <= set(range(n))
        if drop_last:
            assert len(ids) == (n // b) * b
        else:
            assert sorted(ids) == list(range(n))


@given(n=sizes, b=batch_sizes, drop_last=st.booleans(), shuffle=st.booleans(), seed=seeds)
def test_len_is_ceil_or_floor_of_n_over_b_and_matches_the_batches(n, b, drop_last, shuffle,
                                                                  seed):
    loader = DataLoader(indexed(n), batch_size=b, shuffle=shuffle, drop_last=drop_last, seed=seed)
    expected = math.floor(n / b) if drop_last else math.ceil(n / b)
    assert len(loader) == expected
    for epoch in range(1, 3):
        assert len(epoch_ids(loader)) == expected
        assert loader.epoch == epoch


@given(b=batch_sizes, k=st.integers(1, 6), extra=st.integers(0, 11), seed=seeds,
       drop_last=st.booleans())
def test_order_is_reshuffled_every_epoch_also_when_b_divides_n(b, k, extra, seed, drop_last):
    n = b * k + extra % b  # extra % b == 0 half of the time or more: N % B == 0 is covered
    assume(n >= 10)  # two equal orders of 10 samples: 1 chance in 3.6 million
    loader = DataLoader(indexed(n), batch_size=b, shuffle=True, drop_last=drop_last, seed=seed)
    orders = [flat(epoch_ids(loader)) for _ in range(4)]
    for before, after in itertools.pairwise(orders):
        assert before != after


@given(n=sizes, b=batch_sizes, drop_last=st.booleans())
def test_without_shuffle_every_epoch_is_in_dataset_order(n, b, drop_last):
    loader = DataLoader(indexed(n), batch_size=b, drop_last=drop_last)
    kept = (n // b) * b if drop_last else n
    for _ in range(2):
        assert flat(epoch_ids(loader)) == list(range(kept))


@given(n=st.integers(1, 40), b=batch_sizes, shuffle=st.booleans(), seed=seeds)
def test_partial_last_batch_never_borrows_from_the_next_epoch(n, b, shuffle, seed):
    loader = DataLoader(indexed(n), batch_size=b, shuffle=shuffle, seed=seed)
    for _ in range(3):
        batches = epoch_ids(loader)
        assert [len(x) for x in batches[:-1]] == [b] * (len(batches) - 1)
        assert len(batches[-1]) == n - (len(batches) - 1) * b  # the remainder, nothing more
        assert sorted(flat(batches)) == list(range(n))


@given(n=sizes, b=batch_sizes, drop_last=st.booleans(), seed=seeds)
def test_same_seed_gives_the_same_sequence_of_epochs(n, b, drop_last, seed):
    def run(**kw):
        loader = DataLoader(indexed(n), batch_size=b, shuffle=True, drop_last=drop_last, **kw)
        return [epoch_ids(loader) for _ in range(3)]

    first = run(seed=seed)
    assert run(seed=seed) == first
    assert run(generator=tn.Generator(seed)) == first  # the same stream, given as a generator
    if n >= 10:
        assert run(seed=seed + 1) != first


def test_without_a_seed_the_default_generator_decides():
    tn.manual_seed(3)
    a = DataLoader(indexed(20), batch_size=6, shuffle=True)
    tn.manual_seed(3)
    b = DataLoader(indexed(20), batch_size=6, shuffle=True)
    assert [epoch_ids(a) for _ in range(2)] == [epoch_ids(b) for _ in range(2)]


def _dataset(kind: str, n: int):
    if kind == "tensor":
        return indexed(n)
    if kind == "subset":  # an array-backed subset: every sample, in reverse order
        return Subset(indexed(n), list(range(n))[::-1])
    return Rows(n)


@given(kind=st.sampled_from(["tensor", "subset", "rows"]), n=st.integers(0, 30), b=batch_sizes,
       drop_last=st.booleans(), shuffle=st.booleans(), seed=seeds, data=st.data())
def test_resumed_run_sees_exactly_the_batches_of_an_uninterrupted_run(
        kind, n, b, drop_last, shuffle, seed, data, tmp_path):
    def make(seed_):
        return DataLoader(_dataset(kind, n), batch_size=b, shuffle=shuffle,
                          drop_last=drop_last, seed=seed_)

    straight = make(seed)
    reference = [epoch_ids(straight) for _ in range(4)]

    k = data.draw(st.integers(0, 2), label="full epochs before the stop")
    j = data.draw(st.integers(0, len(straight)), label="batches into the next epoch")
    first = make(seed)
    seen = [epoch_ids(first) for _ in range(k)]
    partial = []
    if j:
        it = iter(first)
        partial = [host(next(it)[1]).tolist() for _ in range(j)]
        seen.append(partial)
    path = tmp_path / "loader.npz"
    tn.save({"loader": first.state_dict()}, path)  # plain data, through a real checkpoint

    resumed = make(seed + 12345)  # a different seed: everything must come from the state
    resumed.load_state_dict(tn.load(path)["loader"])
    assert resumed.epoch == first.epoch
    if 0 < j < len(straight):  # mid-epoch: the rest of that epoch comes first
        seen[-1] = partial + epoch_ids(resumed)
    while len(seen) < 4:
        seen.append(epoch_ids(resumed))
    assert seen == reference


def test_load_state_dict_refuses_a_loader_it_cannot_reproduce():
    state = DataLoader(indexed(10), batch_size=4, shuffle=True, seed=0).state_dict()
    for other in (DataLoader(indexed(11), batch_size=4, shuffle=True),
                  DataLoader(indexed(10), batch_size=5, shuffle=True),
                  DataLoader(indexed(10), batch_size=4, shuffle=False)):
        with pytest.raises(ValueError, match="load_state_dict"):
            other.load_state_dict(state)


def _mid_epoch_state():
    """A 10-sample, 3-batch loader stopped after one batch of its second epoch."""
    loader = DataLoader(indexed(10), batch_size=4, shuffle=True, seed=0)
    epoch_ids(loader)
    next(iter(loader))
    return loader.state_dict()


def _without(key):
    return lambda state: {k: v for k, v in state.items() if k != key}


@pytest.mark.parametrize("edit, message", [
    (lambda s: {**s, "position": -2}, r"'position' must be an integer in 0\.\.3 .*got -2"),
    (lambda s: {**s, "position": 4}, r"'position' must be an integer in 0\.\.3 .*got 4"),
    (lambda s: {**s, "position": 1.0}, r"'position' must be an integer"),
    (lambda s: {**s, "epoch": -1}, r"'epoch' must be a non-negative integer, got -1"),
    (lambda s: {**s, "epoch": 0}, r"'position' must be an integer in 0\.\.0 .*got 1"),
    (lambda s: {**s, "epoch_generator": None}, r"field 'epoch_generator': Generator\.set_state"),
    (lambda s: {**s, "generator": {}}, r"field 'generator': Generator\.set_state expects"),
    (lambda s: {**s, "generator": {"seed": 0, "bit_generator": {"bit_generator": "MT19937"}}},
     r"field 'generator': .*not a PCG64 state"),
    (lambda s: {**s, "shuffle": 1}, r"the state has shuffle=1, this loader shuffle=True"),
    (_without("generator"), r"the state lacks 'generator'"),
    (_without("position"), r"the state lacks 'position'"),
    (lambda s: [s], r"expects the dict state_dict\(\) returns, got list"),
])
def test_load_state_dict_checks_every_field_and_changes_nothing_on_error(edit, message):
    """Out-of-range positions gave empty batches or 13 samples from a 10-sample epoch, a missing
    key a bare KeyError, a bad generator state NumPy's message."""
    loader, reference = (DataLoader(indexed(10), batch_size=4, shuffle=True, seed=0)
                         for _ in range(2))
    expected = [epoch_ids(reference) for _ in range(2)]
    with pytest.raises((ValueError, TypeError), match=r"DataLoader\.load_state_dict.*" + message):
        loader.load_state_dict(edit(_mid_epoch_state()))
    assert [epoch_ids(loader) for _ in range(2)] == expected  # untouched: epochs 1 and 2


def test_a_finished_epoch_needs_no_epoch_generator():
    loader = DataLoader(indexed(10), batch_size=4, shuffle=True, seed=0)
    epoch_ids(loader)
    state = {**loader.state_dict(), "epoch_generator": None}
    resumed = DataLoader(indexed(10), batch_size=4, shuffle=True, seed=1)
    resumed.load_state_dict(state)
    assert epoch_ids(resumed) == epoch_ids(loader)


def test_generator_set_state_checks_the_state_and_changes_nothing_on_error():
    g = tn.Generator(5)
    before = g.get_state()
    state = tn.Generator(7).get_state()
    bits = state["bit_generator"]
    for bad in (None, {}, {**state, "seed": -1}, {**state, "seed": 1.5}, {**state, "extra": 1},
                {**state, "bit_generator": {**bits, "state": {"state": 1.5, "inc": 3}}},
                {**state, "bit_generator": {**bits, "uinteger": -1}}):
        with pytest.raises(ValueError, match="Generator.set_state"):
            g.set_state(bad)
        assert g.get_state() == before
    g.set_state(state)
    np.testing.assert_array_equal(g.permutation(6), tn.Generator(7).permutation(6))


def test_a_new_epoch_makes_an_older_iterator_stale():
    loader = DataLoader(indexed(10), batch_size=3, shuffle=True, seed=0)
    old = iter(loader)
    next(old)
    assert loader.epoch == 1 and loader.position == 1
    next(iter(loader))  # abandoning an epoch midway and starting the next one is allowed
    assert loader.epoch == 2
    with pytest.raises(RuntimeError, match="new epoch"):
        next(old)


# --- vectorised batching -----------------------------------------------------------------------

@given(n=st.integers(1, 30), b=batch_sizes, shuffle=st.booleans(), seed=seeds, data=st.data())
def test_array_backed_batches_are_one_fancy_index_never_per_sample(n, b, shuffle, seed, data):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) * 0.5
    y = (np.arange(n) % 4).astype(np.int64)
    base = CountingTensorDataset(tn.tensor(x), tn.tensor(y))
    outer = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    inner = data.draw(st.permutations(range(len(outer))))
    nested = Subset(Subset(base, outer), inner)  # rows: outer[inner[i]]
    rows = np.asarray(outer)[np.asarray(inner)]
    CountingTensorDataset.calls = 0
    for dataset, source_rows in ((base, np.arange(n)), (nested, rows)):
        loader = DataLoader(dataset, batch_size=b, shuffle=shuffle, seed=seed)
        got = [(host(xb), host(yb)) for xb, yb in loader]
        order = np.concatenate([xb[:, 0] / 1.5 for xb, _ in got]).astype(np.int64)  # x row ids
        assert sorted(order.tolist()) == sorted(source_rows.tolist())
        np.testing.assert_array_equal(np.concatenate([xb for xb, _ in got]), x[order])
        np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), y[order])
    assert CountingTensorDataset.calls == 0


@given(n=st.integers(1, 20), b=batch_sizes, seed=seeds)
def test_other_datasets_are_read_per_sample_and_stacked(n, b, seed):
    dataset = Rows(n)
    loader = DataLoader(dataset, batch_size=b, shuffle=True, seed=seed)
    batches = epoch_ids(loader)
    assert dataset.calls == n
    assert sorted(flat(batches)) == list(range(n))


def test_collate_fn_receives_the_list_of_samples():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return default_collate(samples)

    loader = DataLoader(indexed(7), batch_size=3, collate_fn=collate)
    assert flat(epoch_ids(loader)) == list(range(7))
    assert seen == [3, 3, 1]


def test_default_collate_merges_fields_numbers_and_dicts():
    x, label = default_collate([(tn.zeros(2), 1), (tn.ones(2), 0)])
    np.testing.assert_array_equal(host(x), [[0, 0], [1, 1]])
    assert label.tolist() == [1, 0] and label.dtype == tn.int64
    out = default_collate([{"a": 1.5, "b": tn.tensor([1])}, {"a": 2.5, "b": tn.tensor([2])}])
    assert out["a"].tolist() == [1.5, 2.5] and out["b"].tolist() == [[1], [2]]
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])


# --- devices ---------------------------------------------------------------------------------

class TransferCounter:
    """Counts host-to-device copies by wrapping the backend's single transfer function."""

    def __init__(self, monkeypatch):
        self.copies = 0
        real = backend.transfer

        def counting(array, src, dst):
            if src.type == "cpu" and dst.type != "cpu":
                self.copies += 1
            return real(array, src, dst)

        monkeypatch.setattr(backend, "transfer", counting)


def test_batches_are_put_on_the_loader_device(device, monkeypatch):
    n, b = 23, 5
    loader = DataLoader(indexed(n), batch_size=b, shuffle=True, seed=1, device=device)
    reference = DataLoader(indexed(n), batch_size=b, shuffle=True, seed=1)
    counter = TransferCounter(monkeypatch)
    for (x, ids), (x_ref, ids_ref) in zip(loader, reference, strict=True):
        assert x.device == device and ids.device == device
        np.testing.assert_array_equal(host(x), host(x_ref))  # same shuffle on every device
        np.testing.assert_array_equal(host(ids), host(ids_ref))
    if device != "cpu":
        assert counter.copies == 2 * len(loader)  # one copy per stored tensor per batch


@pytest.mark.parametrize("loader_device", [None, "same"])
def test_a_dataset_resident_on_the_device_is_indexed_there(device, loader_device, monkeypatch):
    n, b = 23, 5
    resident = indexed(n).to(device)
    assert resident.device == device
    loader = DataLoader(Subset(resident, range(1, n)), batch_size=b, shuffle=True, seed=2,
                        device=device if loader_device else None)
    reference = DataLoader(Subset(indexed(n), range(1, n)), batch_size=b, shuffle=True, seed=2)
    counter = TransferCounter(monkeypatch)
    for _ in range(3):
        for (x, ids), (x_ref, ids_ref) in zip(loader, reference, strict=True):
            assert x.device == device and ids.device == device
            np.testing.assert_array_equal(host(ids), host(ids_ref))
            np.testing.assert_array_equal(host(x), host(x_ref))
    if device != "cpu":
        # Only the epoch's index order crosses to the device, once per epoch; host() copies back.
        assert counter.copies == 3


def test_tensor_dataset_checks_its_tensors():
    with pytest.raises(ValueError, match="first dimension"):
        TensorDataset(tn.zeros(3, 2), tn.zeros(4))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(tn.tensor(1.0))
    with pytest.raises(ValueError):
        TensorDataset()
    ds = TensorDataset(np.ones((4, 2), np.float32), np.arange(4))  # arrays are accepted
    assert len(ds) == 4 and host(ds[2][1]) == 2


def test_subset_checks_its_indices():
    with pytest.raises(IndexError, match="out of range"):
        Subset(indexed(5), [0, 5])
    with pytest.raises(IndexError, match="out of range"):
        Subset(indexed(5), [-1])
    with pytest.raises(TypeError):
        Subset(indexed(5), [0.5])
    assert len(Subset(indexed(5), [])) == 0


def test_loader_arguments_are_checked():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(indexed(3), batch_size=bad)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(indexed(3), seed=1, generator=tn.Generator(1))
    for bad in (-1, 1.5, "0", True):  # NumPy's own message before
        with pytest.raises(ValueError, match=f"DataLoader: seed must be a non-negative integer, "
                                             f"got {re.escape(repr(bad))}"):
            DataLoader(indexed(3), shuffle=True, seed=bad)
    with pytest.raises(TypeError, match="DataLoader: shuffle must be True or False, got 'no'"):
        DataLoader(indexed(3), shuffle="no")
    with pytest.raises(TypeError, match="DataLoader: drop_last must be True or False, got None"):
        DataLoader(indexed(3), drop_last=None)
    with pytest.raises(TypeError, match="DataLoader: generator must be a tn.Generator, got int"):
        DataLoader(indexed(3), generator=3)
    with pytest.raises(TypeError, match="DataLoader: collate_fn must be callable, got str"):
        DataLoader(indexed(3), collate_fn="stack")
    with pytest.raises(TypeError, match="DataLoader: dataset must have __len__ and __getitem__"):
        DataLoader(5)
    with pytest.raises(ValueError, match="Generator: seed must be a non-negative integer"):
        tn.Generator(-1)
    numpy_ints = DataLoader(indexed(10), batch_size=np.int64(4), shuffle=True, seed=np.uint32(3))
    assert epoch_ids(numpy_ints) == epoch_ids(DataLoader(indexed(10), batch_size=4, shuffle=True,
                                                         seed=3))


class Ragged(Dataset):
    """Sample 2 is longer than the others (a variable-length record)."""

    def __init__(self, as_tensor: bool):
        self.as_tensor = as_tensor

    def __len__(self):
        return 4

    def __getitem__(self, i):
        x = np.zeros(4 if i == 2 else 3, np.float32)
        return (tn.tensor(x) if self.as_tensor else x), i


@pytest.mark.parametrize("as_tensor", [True, False])
def test_samples_of_unequal_shape_are_named(as_tensor):
    loader = DataLoader(Ragged(as_tensor), batch_size=4)
    with pytest.raises(ValueError, match=r"DataLoader's collate_fn\): sample 2 of the batch has "
                                         r"shape \(4,\).*sample 0 has shape \(3,\)"):
        next(iter(loader))


# --- splits ----------------------------------------------------------------------------------

def torch_rule(fractions, n):
    """PyTorch's rounding of fractions, written out: floors, then the rest one each in turn."""
    counts = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


fraction_lists = st.lists(st.integers(1, 10), min_size=1, max_size=4).map(
    lambda w: [x / sum(w) for x in w])


@given(n=st.integers(0, 40), fractions=fraction_lists, seed=seeds, as_counts=st.booleans())
def test_random_split_is_disjoint_covering_and_sized_by_the_rule(n, fractions, seed, as_counts):
    assume(math.isclose(sum(fractions), 1.0))
    expected = torch_rule(fractions, n)
    lengths = expected if as_counts else fractions
    parts = random_split(indexed(n), lengths, seed=seed)
    assert [len(p) for p in parts] == expected
    ids = [flat(epoch_ids(DataLoader(p, batch_size=7))) for p in parts]
    assert sorted(flat(ids)) == list(range(n))
    again = random_split(indexed(n), lengths, generator=tn.Generator(seed))
    assert [p.indices.tolist() for p in again] == [p.indices.tolist() for p in parts]
    if n >= 10:  # shuffled before splitting: not the identity order
        assert flat(p.indices.tolist() for p in parts) != list(range(n))


def test_random_split_matches_torch_lengths():
    torch = pytest.importorskip("torch")
    for n in (0, 1, 7, 10, 99):
        for fractions in ([0.8, 0.2], [0.34, 0.33, 0.33], [0.1] * 10, [1.0]):
            ours = [len(p) for p in random_split(indexed(n), fractions, seed=0)]
            theirs = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
            assert ours == theirs, (n, fractions)


def test_random_split_refuses_bad_lengths():
    for bad in ([3, 3], [0.5, 0.6], [-1, 11], [0.5, "a"]):
        with pytest.raises(ValueError):
            random_split(indexed(10), bad)


@given(labels=st.lists(st.integers(0, 3), min_size=0, max_size=40), fractions=fraction_lists,
       seed=seeds)
def test_stratified_split_keeps_class_proportions(labels, fractions, seed):
    assume(math.isclose(sum(fractions), 1.0))
    n = len(labels)
    labels = np.asarray(labels, dtype=np.int64)
    parts = stratified_split(indexed(n), fractions, tn.tensor(labels), seed=seed)
    indices = [p.indices.tolist() for p in parts]
    assert sorted(flat(indices)) == list(range(n))
    for c in np.unique(labels):
        n_c = int((labels == c).sum())
        for f, idx in zip(fractions, indices):
            count = int((labels[idx] == c).sum())
            assert math.floor(n_c * f) <= count <= math.floor(n_c * f) + 1


@given(n=st.integers(2, 40), k=st.integers(2, 8), shuffle=st.booleans(), seed=seeds,
       stratify=st.booleans(), data=st.data())
def test_kfold_folds_are_disjoint_covering_and_balanced(n, k, shuffle, seed, stratify, data):
    assume(k <= n)
    labels = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)) if stratify else None
    folds = list(KFold(n_splits=k, shuffle=shuffle, seed=seed).split(n, labels=labels))
    assert len(folds) == k
    vals = [v.tolist() for _, v in folds]
    assert sorted(flat(vals)) == list(range(n))  # disjoint and covering
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert sorted(train.tolist() + val.tolist()) == list(range(n))
    again = list(KFold(n_splits=k, shuffle=shuffle, seed=seed).split(n, labels=labels))
    assert [v.tolist() for _, v in again] == vals
    if not shuffle and not stratify:
        assert flat(vals) == list(range(n))  # contiguous folds, in order
    if stratify:
        labels = np.asarray(labels)
        for c in np.unique(labels):
            n_c = int((labels == c).sum())
            counts = [int((labels[v] == c).sum()) for v in vals]
            assert all(n_c // k <= x <= -(-n_c // k) for x in counts)


def test_kfold_shuffles_with_its_seed():
    def folds(seed):
        return [v.tolist() for _, v in KFold(4, seed=seed).split(40)]
    assert folds(0) == folds(0)
    assert folds(0) != folds(1)
    assert flat(folds(0)) != list(range(40))


def test_kfold_refuses_bad_arguments():
    with pytest.raises(ValueError, match="n_splits"):
        KFold(n_splits=1)
    with pytest.raises(ValueError, match="folds"):
        list(KFold(n_splits=5).split(3))


# --- docs --------------------------------------------------------------------------------------

def test_docs_data_snippets_run(tmp_path, monkeypatch):
    text = (Path(__file__).parent.parent / "docs" / "data.md").read_text()
    monkeypatch.chdir(tmp_path)  # snippets write checkpoints
    sections = re.findall(r"^## (.*?)\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    blocks = [(title, block) for title, body in sections if title.strip() != "Datasets"
              for block in re.findall(r"```python\n(.*?)```", body, re.DOTALL)]
    assert len(blocks) >= 5
    for title, block in blocks:
        exec(compile(block, f"docs/data.md ({title})", "exec"), {})  # noqa: S102
