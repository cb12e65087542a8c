"""tn.data.DistributedSampler and DataLoader(sampler=...): PyTorch's semantics (each epoch's
permutation from seed + epoch, padded or cut to a multiple of the world size, rank r taking
positions r::W), set_epoch, and resuming mid-epoch through the loader's state dict."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.data import DataLoader, DistributedSampler


def dataset(n):
    return tn.data.TensorDataset(tn.arange(n).float().reshape(n, 1), tn.arange(n))


def labels(loader):
    return [y.numpy().tolist() for _, y in loader]


@given(n=st.integers(1, 40), batch=st.integers(1, 9), seed=st.integers(0, 2**31),
       epoch=st.integers(0, 3), drop_last=st.booleans())
def test_one_replica_is_the_loader_shuffled_from_seed_plus_epoch(n, batch, seed, epoch,
                                                                 drop_last):
    ds = dataset(n)
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, seed=seed)
    sampler.set_epoch(epoch)
    mine = DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=drop_last)
    plain = DataLoader(ds, batch_size=batch, shuffle=True, seed=seed + epoch, drop_last=drop_last)
    assert len(mine) == len(plain)
    assert labels(mine) == labels(plain)


@given(n=st.integers(1, 50), world=st.integers(1, 6), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 1000), epoch=st.integers(0, 5))
def test_the_shards_together_are_the_padded_permutation(n, world, shuffle, drop_last, seed,
                                                       epoch):
    if drop_last and n < world:
        with pytest.raises(ValueError, match="leaves every rank without a sample"):
            DistributedSampler(range(n), num_replicas=world, rank=0, drop_last=True)
        return
    shards = []
    for rank in range(world):
        s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle,
                               seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        shards.append(s.indices())
        assert len(s) == len(shards[-1]) == (n // world if drop_last else math.ceil(n / world))
        assert list(s) == shards[-1].tolist()  # iterating yields the same positions, as ints
    total = len(shards[0]) * world
    permutation = (tn.Generator(seed + epoch).permutation(n)
                   if shuffle else np.arange(n))
    padded = np.concatenate([permutation] * math.ceil(total / n))[:total]
    interleaved = np.stack(shards, axis=1).reshape(-1)  # rank r holds positions r::W
    np.testing.assert_array_equal(interleaved, padded)
    if drop_last:  # cut, never padded: each position at most once
        assert len(set(interleaved.tolist())) == total
    else:  # every sample is seen; only the padding repeats the first W*ceil(n/W) - n
        assert set(interleaved.tolist()) == set(range(n))


def test_the_pytorch_sampler_takes_the_same_positions_without_shuffling():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    for n, world, drop_last in [(10, 3, False), (10, 3, True), (7, 4, False), (2, 5, False)]:
        for rank in range(world):
            ours = DistributedSampler(range(n), world, rank, shuffle=False, drop_last=drop_last)
            theirs = TorchSampler(range(n), world, rank, shuffle=False, drop_last=drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs), (n, world, rank)
    assert torch.__version__


def test_set_epoch_reshuffles_alike_on_every_rank():
    ds = dataset(20)
    a, b = (DistributedSampler(ds, num_replicas=2, rank=r, seed=5) for r in (0, 1))
    first = a.epoch_order().tolist()
    assert first == b.epoch_order().tolist()  # every rank draws the same permutation
    assert a.indices().tolist() == a.indices().tolist()  # without set_epoch: the same order
    a.set_epoch(1)
    b.set_epoch(1)
    assert a.epoch_order().tolist() == b.epoch_order().tolist() != first
    assert sorted(a.epoch_order().tolist()) == list(range(20))
    unshuffled = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False)
    unshuffled.set_epoch(3)
    assert unshuffled.indices().tolist() == list(range(1, 20, 2))


def test_a_loader_resumes_mid_epoch_from_the_state_of_any_rank(tmp_path):
    ds = dataset(23)

    def loader(rank):
        return DataLoader(ds, batch_size=3, sampler=DistributedSampler(ds, 2, rank, seed=9))

    original = loader(1)
    original.sampler.set_epoch(4)
    epoch = iter(original)
    seen = [next(epoch)[1].numpy().tolist() for _ in range(2)]
    tn.save(original.state_dict(), tmp_path / "loader.npz")  # as a checkpoint stores it
    rest = [y.numpy().tolist() for _, y in epoch]
    assert len(seen) + len(rest) == len(original) == 4  # ceil(ceil(23 / 2) / 3)

    resumed = loader(1)
    resumed.load_state_dict(tn.load(tmp_path / "loader.npz"))
    assert resumed.sampler.epoch == 4
    assert labels(resumed) == rest  # exactly the batches the interrupted epoch had left
    # rank 0 loading the same state (a checkpoint written by rank 0 is read by all) resumes its
    # own shard: the rank is not part of the state
    other = loader(0)
    other.load_state_dict(tn.load(tmp_path / "loader.npz"))
    whole = loader(0)
    whole.sampler.set_epoch(4)
    assert labels(other) == labels(whole)[2:]


def test_a_state_from_another_sharding_is_refused():
    ds = dataset(10)
    state = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 2, 0)).state_dict()
    wider = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 4, 0))
    with pytest.raises(ValueError, match="the state has num_replicas=2, this sampler "
                                         "num_replicas=4"):
        wider.load_state_dict(state)


def test_bad_arguments_name_the_argument():
    ds = dataset(5)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        DistributedSampler(ds, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 1\] for num_replicas=2, got 2"):
        DistributedSampler(ds, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        DistributedSampler(ds, num_replicas=1, rank=0, seed=-1)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got -1"):
        DistributedSampler(ds, num_replicas=1, rank=0).set_epoch(-1)
    with pytest.raises(ValueError, match="shuffle must be False"):
        DataLoader(ds, sampler=DistributedSampler(ds, 1, 0), shuffle=True)


def test_without_a_group_the_sampler_is_the_whole_dataset():
    s = DistributedSampler(dataset(6), shuffle=False)
    assert (s.num_replicas, s.rank, s.indices().tolist()) == (1, 0, list(range(6)))
    assert "rank 0 of 1" in repr(s)


def test_any_iterable_of_positions_is_a_sampler():
    ds = dataset(6)
    loader = DataLoader(ds, batch_size=2, sampler=[5, 0, 3])
    assert len(loader) == 2 and labels(loader) == [[5, 0], [3]]
