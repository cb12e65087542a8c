"""Seeded randomness: ``tn.manual_seed``, private ``tn.Generator`` streams, the same values on every
device (draws are made on the host, then moved), and NumPy's global RNG left alone."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn


def _draws(device=None, generator=None) -> list:
    """One of each random creation function, as host arrays."""
    kw = {"device": device, "generator": generator}
    tensors = [tn.randn(3, 4, **kw), tn.rand(5, **kw), tn.randint(0, 100, (6,), **kw),
               tn.randperm(10, **kw), tn.randn(2, dtype=tn.float64, **kw),
               tn.randn_like(tn.zeros(2, 2), **kw), tn.rand_like(tn.zeros(3), **kw)]
    return [t.cpu().numpy() for t in tensors]


def _assert_same(a: list, b: list):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def _differs(a: list, b: list) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(a, b))


@given(st.integers(0, 2**63 - 1))
def test_manual_seed_makes_every_draw_reproducible(seed):
    tn.manual_seed(seed)
    first = _draws()
    tn.manual_seed(seed)
    _assert_same(first, _draws())


def test_the_stream_advances_and_seeds_differ():
    tn.manual_seed(0)
    first = _draws()
    second = _draws()  # the stream moved on
    assert all(not np.array_equal(x, y) for x, y in zip(first[:2], second[:2]))
    tn.manual_seed(1)
    assert _differs(first, _draws())


def test_draws_have_the_promised_ranges_and_types():
    tn.manual_seed(3)
    assert tn.randn(4).dtype == tn.get_default_dtype()
    u = tn.rand(1000).numpy()
    assert u.min() >= 0 and u.max() < 1
    ints = tn.randint(5, 9, (1000,))
    assert ints.dtype == np.int64 and set(ints.tolist()) == {5, 6, 7, 8}
    assert tn.randint(3, size=(4,), dtype=tn.int32).dtype == np.int32
    perm = tn.randperm(50)
    assert perm.dtype == np.int64 and sorted(perm.tolist()) == list(range(50))


def test_the_same_seed_gives_the_same_values_on_cpu_and_device(device):
    tn.manual_seed(1234)
    on_cpu = _draws("cpu")
    tn.manual_seed(1234)
    on_device = _draws(device)
    _assert_same(on_cpu, on_device)

    g = tn.Generator(5)
    w = tn.randn(3, 3, generator=g, device=device)
    assert w.device == device
    same_on_cpu = tn.randn(3, 3, generator=tn.Generator(5))
    np.testing.assert_array_equal(w.cpu().numpy(), same_on_cpu.numpy())


def test_a_generator_is_independent_of_the_default_stream():
    tn.manual_seed(0)
    reference = _draws()

    tn.manual_seed(0)
    g = tn.Generator(0)
    private = _draws(generator=g)  # draws from g leave the default stream where it was
    _assert_same(reference, _draws())
    _assert_same(reference, private)  # Generator(s) and manual_seed(s) are the same stream

    # and drawing from the default stream does not move g
    g1, g2 = tn.Generator(9), tn.Generator(9)
    tn.randn(100)
    np.testing.assert_array_equal(tn.rand(4, generator=g1).numpy(),
                                  tn.rand(4, generator=g2).numpy())


def test_numpy_global_rng_is_never_touched():
    np.random.seed(42)
    before = np.random.get_state()
    tn.manual_seed(0)
    _draws()
    _draws(device="standin", generator=tn.Generator(1))
    tn.Generator(None).manual_seed(3)
    after = np.random.get_state()
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


def test_generator_state_round_trip_reproduces_the_continuation():
    g = tn.Generator(11)
    tn.randn(7, generator=g)  # move away from the start
    state = g.get_state()
    expected = _draws(generator=g)
    assert _differs(expected, _draws(generator=g))  # the stream really moved on

    g.set_state(state)
    _assert_same(expected, _draws(generator=g))

    other = tn.Generator(999)  # a state can be loaded into any generator
    other.set_state(state)
    _assert_same(expected, _draws(generator=other))
    assert other.initial_seed() == 11


def test_default_generator_state_round_trip():
    tn.manual_seed(5)
    state = tn.backend.default_generator.get_state()
    expected = _draws()
    tn.backend.default_generator.set_state(state)
    _assert_same(expected, _draws())


def test_generator_state_is_plain_data():
    state = tn.Generator(1).get_state()
    assert state["seed"] == 1
    assert isinstance(state["bit_generator"], dict)


@pytest.mark.parametrize("dtype", [tn.float16, tn.float32, tn.float64])
def test_float_draws_honour_the_dtype(dtype):
    g = tn.Generator(0)
    assert tn.randn(3, dtype=dtype, generator=g).dtype == dtype
    assert tn.rand(3, dtype=dtype, generator=g).dtype == dtype


def test_random_tensors_can_require_grad():
    w = tn.randn(2, 3, requires_grad=True, generator=tn.Generator(0))
    assert w.requires_grad and w.is_leaf
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.detach().numpy())
