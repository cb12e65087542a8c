"""Engine semantics of the backward pass (tinynet/autograd.py), on every device.

What is checked here: accumulation into ``.grad``, ``retain_grad``, freeing the graph and
``retain_graph``, non-scalar roots and vector-Jacobian products, fan-out and diamond graphs,
``tn.grad`` (unused inputs, non-leaf inputs, no side effects), grad mode, ``detach``,
``requires_grad_``, tensor hooks, 100,000-op chains, and the snippets of docs/autograd.md.
Gradients are compared with float64 central differences computed on the host.
"""

import gc
import pathlib
import re
import threading
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn

# The ``device`` fixture only returns a name, so sharing it across hypothesis examples is safe.
HYP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large])


def small_arrays(max_side: int = 4):
    """float64 arrays of 1 or 2 dimensions (at most 16 elements), values in [-2, 2]."""
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=max_side),
                      elements=st.floats(-2, 2, allow_nan=False, width=64))


def host(t: tn.Tensor) -> np.ndarray:
    """A tensor's values as a host float64 array (an explicit copy off the device)."""
    return np.array(t.detach().cpu().numpy(), dtype=np.float64)


def numeric_grad(fn, x: np.ndarray, device: str, eps: float = 1e-6) -> np.ndarray:
    """d fn(x) / dx by central differences in float64; ``fn`` maps a Tensor to a scalar Tensor."""
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        with tn.no_grad():
            f_plus = fn(tn.tensor(plus, device=device)).item()
            f_minus = fn(tn.tensor(minus, device=device)).item()
        out[idx] = (f_plus - f_minus) / (2 * eps)
    return out


def leaf(values, device, dtype=tn.float64) -> tn.Tensor:
    return tn.tensor(values, dtype=dtype, device=device, requires_grad=True)


# --------------------------------------------------------------------------------------------
# Accumulation into .grad
# --------------------------------------------------------------------------------------------


def test_leaf_grad_accumulates_across_backward_calls(device):
    x = leaf([1.0, -2.0, 3.0], device)
    (x * x).sum().backward()
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), 2 * (2 * host(x)) + 3)


def test_setting_grad_to_none_restarts_accumulation(device):
    x = leaf([1.0, 2.0], device)
    (x * x).sum().backward()
    x.grad = None
    (5 * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [5.0, 5.0])


def test_grad_zero_restarts_accumulation(device):
    x = leaf([1.0, 2.0], device)
    (x * x).sum().backward()
    x.grad.zero_()
    np.testing.assert_allclose(host(x.grad), [0.0, 0.0])
    (5 * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [5.0, 5.0])


def test_grad_matches_leaf_shape_dtype_device(device):
    x = tn.tensor([[1.0, 2.0, 3.0]], device=device, requires_grad=True)  # float32
    (x * 2).sum().backward()
    assert x.grad.shape == x.shape
    assert x.grad.dtype == tn.float32
    assert x.grad.device == x.device


def test_accumulation_never_writes_into_a_gradient_another_tensor_holds(device):
    # Add sends one array to both inputs; each leaf must get its own copy.
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    seed = tn.ones(2, dtype=tn.float64, device=device)
    (a + b).backward(seed)
    (a + b).backward(seed)
    np.testing.assert_allclose(host(a.grad), [2.0, 2.0])
    np.testing.assert_allclose(host(b.grad), [2.0, 2.0])
    np.testing.assert_allclose(host(seed), [1.0, 1.0])


def test_non_leaf_grad_is_not_kept_by_default(device):
    x = leaf([1.0, 2.0], device)
    y = x * 3
    (y * y).sum().backward()
    assert y.grad is None
    assert not y.retains_grad
    assert x.grad is not None


def test_retain_grad_keeps_and_accumulates_non_leaf_grad(device):
    x = leaf([1.0, 2.0], device)
    y = x * 3
    y.retain_grad()
    assert y.retains_grad
    loss = (y * y).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(host(y.grad), 2 * host(y))
    loss.backward()
    np.testing.assert_allclose(host(y.grad), 4 * host(y))
    np.testing.assert_allclose(host(x.grad), 2 * 3 * 2 * host(y))


# --------------------------------------------------------------------------------------------
# Freeing the graph
# --------------------------------------------------------------------------------------------


def test_second_backward_through_freed_graph_raises_naming_retain_graph(device):
    x = leaf([1.0, 2.0], device)
    loss = x.exp().sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_backward_through_a_shared_freed_subgraph_raises(device):
    x = leaf([1.0, 2.0], device)
    h = x.sin()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 2).sum().backward()


def test_retain_graph_allows_a_second_backward(device):
    x = leaf([0.5, 2.0], device)
    loss = x.exp().sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(host(x.grad), 2 * np.exp(host(x)))


def _raw_array_ref(t: tn.Tensor):
    """A weak reference to the memory behind a tensor (the NumPy array inside a stand-in array)."""
    raw = t.data
    raw = getattr(raw, "_a", raw)  # stand-in arrays wrap a NumPy array and have no __weakref__
    try:
        return weakref.ref(raw)
    except TypeError:
        pytest.skip(f"arrays of type {type(raw).__name__} cannot be weakly referenced")


@pytest.mark.parametrize("retain", [False, True])
def test_backward_releases_saved_values_unless_retain_graph(device, retain):
    x = leaf([0.5, 2.0], device)
    h = x * 2
    ref = _raw_array_ref(h)  # Sin saves its input: h's array lives on in the graph
    loss = h.sin().sum()
    del h
    gc.collect()
    assert ref() is not None
    loss.backward(retain_graph=retain)
    gc.collect()
    assert (ref() is not None) == retain


# --------------------------------------------------------------------------------------------
# Roots that are not scalars
# --------------------------------------------------------------------------------------------


def test_backward_on_non_scalar_without_gradient_raises(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_backward_gradient_of_wrong_shape_raises(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(tn.ones(3, dtype=tn.float64, device=device))


def test_backward_on_tensor_without_graph_raises(device):
    x = tn.tensor([1.0], device=device)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()


@HYP
@given(x=small_arrays(), data=st.data())
def test_backward_with_gradient_computes_the_vjp(device, x, data):
    v = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-2, 2, width=64)))

    def f(t):
        return t.sin() * t + t.exp()

    t = leaf(x, device)
    f(t).backward(tn.tensor(v, device=device))
    expected = numeric_grad(lambda s: (f(s) * tn.tensor(v, device=device)).sum(), x, device)
    np.testing.assert_allclose(host(t.grad), expected, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------
# Fan-out and diamonds
# --------------------------------------------------------------------------------------------


def test_tensor_used_twice_gets_both_contributions(device):
    x = leaf([1.0, -2.0, 0.5], device)
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), 2 * host(x))
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [2.0, 2.0, 2.0])


def test_tensor_used_by_unrelated_branches_sums_them(device):
    x = leaf([0.3, 1.2], device)
    loss = x.sin().sum() + (x * 4).sum() + x.exp().sum()
    loss.backward()
    xs = host(x)
    np.testing.assert_allclose(host(x.grad), np.cos(xs) + 4 + np.exp(xs))


def test_diamond_graph_closed_form(device):
    # x -> h = x^2 -> (sin h, exp h) -> sum: d/dx = (cos h + exp h) * 2x
    x = leaf([0.4, -0.7, 1.1], device)
    h = x * x
    (h.sin() + h.exp()).sum().backward()
    xs = host(x)
    hs = xs * xs
    np.testing.assert_allclose(host(x.grad), (np.cos(hs) + np.exp(hs)) * 2 * xs, rtol=1e-12)


def test_diamond_node_runs_its_backward_once_with_the_summed_gradient(device):
    calls = []

    class Recorder(tn.Function):
        """identity  ->  g (records each upstream gradient it receives)"""

        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad_out):
            calls.append(float(grad_out.sum().item()))
            return grad_out

    x = leaf([1.0, 2.0], device)
    h = Recorder.apply(x)
    (h * 2 + h * 3 + h).sum().backward()
    assert calls == [2 * (2 + 3 + 1)]


@HYP
@given(x=small_arrays())
def test_nested_diamonds_match_central_differences(device, x):
    def f(t):
        a = t.tanh()
        b = a * t
        c = a.exp() + b.sin()
        return (c * a + b * b).sum()

    t = leaf(x, device)
    f(t).backward()
    np.testing.assert_allclose(host(t.grad), numeric_grad(f, x, device), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------
# tn.grad
# --------------------------------------------------------------------------------------------


def test_grad_on_unused_input_raises_by_default(device):
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    with pytest.raises(RuntimeError, match="allow_unused"):
        tn.grad((a * a).sum(), [a, b])


def test_grad_on_unused_input_allow_unused_gives_none(device):
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    ga, gb = tn.grad((a * a).sum(), [a, b], allow_unused=True)
    np.testing.assert_allclose(host(ga), [2.0, 4.0])
    assert gb is None


def test_grad_on_unused_input_materialize_grads_gives_zeros(device):
    a, b = leaf([1.0, 2.0], device), leaf([[3.0, 4.0, 5.0]], device)
    ga, gb = tn.grad((a * a).sum(), [a, b], materialize_grads=True)
    np.testing.assert_allclose(host(ga), [2.0, 4.0])
    assert gb.shape == b.shape and gb.dtype == b.dtype and gb.device == b.device
    np.testing.assert_array_equal(host(gb), np.zeros((1, 3)))


def test_grad_does_not_touch_dot_grad(device):
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    a.grad = tn.tensor([10.0, 20.0], dtype=tn.float64, device=device)
    (ga,) = tn.grad((a * b).sum(), a)
    np.testing.assert_allclose(host(ga), host(b))
    np.testing.assert_allclose(host(a.grad), [10.0, 20.0])
    assert b.grad is None


def test_grad_single_input_and_list_input(device):
    x = leaf([1.0, 2.0], device)
    (g,) = tn.grad((x * x).sum(), x)
    (g_list,) = tn.grad((x * x).sum(), [x])
    np.testing.assert_allclose(host(g), host(g_list))


def test_grad_with_respect_to_non_leaf_inputs(device):
    x = leaf([1.0, -2.0], device)
    h = x * 3
    y = h.sin()
    gh, gx = tn.grad(y.sum(), [h, x])
    np.testing.assert_allclose(host(gh), np.cos(host(h)), rtol=1e-12)
    np.testing.assert_allclose(host(gx), 3 * np.cos(host(h)), rtol=1e-12)
    assert x.grad is None and h.grad is None


def test_grad_raises_when_an_input_does_not_require_grad(device):
    x = leaf([1.0, 2.0], device)
    c = tn.tensor([1.0, 2.0], dtype=tn.float64, device=device)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tn.grad((x * c).sum(), [x, c])


def test_grad_runs_only_the_part_of_the_graph_it_needs(device):
    calls = []

    class Recorder(tn.Function):
        """identity  ->  g (records that its backward ran)"""

        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad_out):
            calls.append("backward")
            return grad_out

    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    b.register_hook(lambda g: calls.append("hook on b"))
    h = a * 2
    h.retain_grad()
    loss = (h * Recorder.apply(b)).sum()
    (gh,) = tn.grad(loss, h)
    np.testing.assert_allclose(host(gh), host(b))
    assert calls == []  # b's branch is not needed for d loss / d h
    assert h.grad is None and a.grad is None and b.grad is None


def test_grad_with_grad_outputs_is_a_vjp(device):
    x = leaf([0.5, -1.0, 2.0], device)
    v = tn.tensor([1.0, -3.0, 0.25], dtype=tn.float64, device=device)
    (g,) = tn.grad(x.exp(), x, grad_outputs=v)
    np.testing.assert_allclose(host(g), host(v) * np.exp(host(x)), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Grad mode
# --------------------------------------------------------------------------------------------


def test_no_grad_records_nothing(device):
    x = leaf([1.0, 2.0], device)
    with tn.no_grad():
        y = (x * 2).exp()
    assert not y.requires_grad
    assert y.grad_fn is None
    assert tn.is_grad_enabled()


def test_no_grad_restores_mode_when_the_block_raises(device):
    x = leaf([1.0], device)
    with pytest.raises(ZeroDivisionError):
        with tn.no_grad():
            assert not tn.is_grad_enabled()
            1 / 0  # noqa: B018
    assert tn.is_grad_enabled()
    assert (x * 2).requires_grad


def test_no_grad_as_decorator(device):
    @tn.no_grad()
    def double(t):
        """Doubles."""
        return t * 2

    x = leaf([1.0], device)
    y = double(x)
    assert y.grad_fn is None and not y.requires_grad
    assert double.__name__ == "double" and double.__doc__ == "Doubles."
    assert tn.is_grad_enabled()


def test_enable_grad_inside_no_grad_records(device):
    x = leaf([1.0, 2.0], device)
    with tn.no_grad():
        with tn.enable_grad():
            y = x * x
        z = x * x
        assert not tn.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None
    assert z.grad_fn is None
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), [2.0, 4.0])


def test_enable_grad_as_decorator_inside_no_grad(device):
    @tn.enable_grad()
    def square(t):
        return t * t

    x = leaf([3.0], device)
    with tn.no_grad():
        y = square(x)
    assert y.grad_fn is not None


def test_set_grad_enabled_as_function_and_context_manager(device):
    x = leaf([1.0], device)
    with tn.set_grad_enabled(False):
        assert (x * 2).grad_fn is None
        with tn.set_grad_enabled(True):
            assert (x * 2).grad_fn is not None
        assert not tn.is_grad_enabled()
    assert tn.is_grad_enabled()
    tn.set_grad_enabled(False)
    try:
        assert not tn.is_grad_enabled()
        assert (x * 2).grad_fn is None
    finally:
        tn.set_grad_enabled(True)
    assert (x * 2).grad_fn is not None


def test_grad_mode_is_per_thread(device):
    x = leaf([1.0], device)
    seen = {}

    def worker():
        seen["enabled"] = tn.is_grad_enabled()
        seen["records"] = (x * 2).grad_fn is not None

    with tn.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen == {"enabled": True, "records": True}


# --------------------------------------------------------------------------------------------
# detach, requires_grad_
# --------------------------------------------------------------------------------------------


def test_detach_shares_data_but_cuts_the_graph(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3
    d = h.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    d[0] = 100.0  # same memory: h sees the write
    assert h[0].item() == 100.0
    (h.sum() + (d * d).sum()).backward()
    np.testing.assert_allclose(host(x.grad), [3.0, 3.0])  # nothing flowed through d


def test_requires_grad_underscore_turns_recording_on_and_returns_self(device):
    x = tn.tensor([1.0, 2.0], device=device)
    assert (x * 2).grad_fn is None
    assert x.requires_grad_() is x
    assert x.requires_grad and x.is_leaf
    (x * 2).sum().backward()
    np.testing.assert_allclose(host(x.grad), [2.0, 2.0])
    x.requires_grad_(False)
    assert (x * 2).grad_fn is None


def test_requires_grad_refuses_integer_tensors(device):
    x = tn.tensor([1, 2], device=device)
    with pytest.raises(TypeError, match="floating"):
        x.requires_grad_()
    with pytest.raises(TypeError, match="floating"):
        tn.tensor([1, 2], device=device, requires_grad=True)
    assert not x.requires_grad


def test_requires_grad_cannot_be_turned_off_on_non_leaf(device):
    y = leaf([1.0], device) * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


def test_hook_on_leaf_reads_the_gradient(device):
    x = leaf([1.0, 2.0], device)
    seen = []
    x.register_hook(lambda g: seen.append(host(g)))
    (x * x).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [2.0, 4.0])
    np.testing.assert_allclose(host(x.grad), [2.0, 4.0])


def test_hook_on_leaf_sees_summed_gradient_of_several_uses_once(device):
    x = leaf([1.0, 2.0], device)
    seen = []
    x.register_hook(lambda g: seen.append(host(g)))
    (x * x + 3 * x + x.sin()).sum().backward()
    assert len(seen) == 1
    xs = host(x)
    np.testing.assert_allclose(seen[0], 2 * xs + 3 + np.cos(xs), rtol=1e-12)


def test_hook_on_leaf_replacement_is_what_accumulates(device):
    x = leaf([1.0, 2.0], device)
    x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [20.0, 40.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [40.0, 80.0])


def test_hook_on_non_leaf_reads_gradient(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(host(g)))
    (h * h).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * host(h))


def test_hook_on_non_leaf_replacement_flows_on(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3
    h.register_hook(lambda g: tn.ones_like(g))
    (h * h).sum().backward()
    np.testing.assert_allclose(host(x.grad), [3.0, 3.0])  # 3 * replacement, not 3 * 2h


def test_hook_replacement_is_what_retain_grad_keeps(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3
    h.retain_grad()
    h.register_hook(lambda g: g * 0.5)
    (h * h).sum().backward()
    np.testing.assert_allclose(host(h.grad), host(h))


def test_hooks_chain_in_registration_order(device):
    x = leaf([1.0], device)
    x.register_hook(lambda g: g + 1)
    x.register_hook(lambda g: g * 10)
    (x * 2).sum().backward()
    np.testing.assert_allclose(host(x.grad), [(2 + 1) * 10])


def test_removed_hook_stops_running(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3
    calls = []
    leaf_handle = x.register_hook(lambda g: calls.append("leaf") or g * 100)
    node_handle = h.register_hook(lambda g: calls.append("node"))
    leaf_handle.remove()
    node_handle.remove()
    node_handle.remove()  # removing twice is harmless
    (h * h).sum().backward()
    assert calls == []
    np.testing.assert_allclose(host(x.grad), 2 * 3 * host(h))


def test_hook_returning_wrong_shape_raises(device):
    x = leaf([1.0, 2.0], device)
    x.register_hook(lambda g: tn.ones(3, dtype=tn.float64, device=device))
    with pytest.raises(RuntimeError, match="hook"):
        (x * x).sum().backward()


def test_hook_returning_wrong_dtype_raises(device):
    x = leaf([1.0, 2.0], device)
    x.register_hook(lambda g: g.float())
    with pytest.raises(RuntimeError, match="hook.*float64"):
        (x * x).sum().backward()


def test_hook_needs_requires_grad(device):
    x = tn.tensor([1.0], device=device)
    with pytest.raises(RuntimeError, match="require"):
        x.register_hook(lambda g: g)


# --------------------------------------------------------------------------------------------
# Deep graphs: no recursion, no leak
# --------------------------------------------------------------------------------------------

DEPTH = 100_000


def test_deep_chain_backprops_without_recursion_error(device):
    x = leaf(1.0, device)
    y = x
    for _ in range(DEPTH):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001**DEPTH, rtol=1e-9)


@pytest.mark.parametrize("run_backward", [False, True])
def test_deep_chain_graph_is_collected_after_del(device, run_backward):
    x = leaf(1.0, device)
    y = x
    for i in range(DEPTH):
        y = y.sin() if i % 2 else y * 1.0001  # Sin saves its input: the graph holds arrays
        if i == DEPTH // 2:
            middle = weakref.ref(y.grad_fn)  # a node deep inside the graph, kept alive by it
    if run_backward:
        y.backward(retain_graph=True)
    assert middle() is not None
    del y
    gc.collect()
    assert middle() is None


# --------------------------------------------------------------------------------------------
# docs/autograd.md: every ```python block runs
# --------------------------------------------------------------------------------------------

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "autograd.md"


def _doc_snippets():
    """Each ```python block, padded with blank lines so tracebacks give its line in the file."""
    text = DOC.read_text() if DOC.exists() else ""
    snippets = []
    for i, match in enumerate(re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL)):
        first_line = text.count("\n", 0, match.start(1))
        snippets.append(pytest.param("\n" * first_line + match.group(1), id=f"block{i}"))
    return snippets or [
        pytest.param(None, marks=pytest.mark.skip(reason="docs/autograd.md has no snippets"))]


@pytest.mark.parametrize("snippet", _doc_snippets())
def test_docs_autograd_snippet_runs(snippet):
    namespace = {"__name__": "docs_autograd"}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation


def test_docs_autograd_has_snippets():
    assert DOC.exists()
    assert len(_doc_snippets()) >= 8


# --------------------------------------------------------------------------------------------
# .grad never aliases another array (the engine stores a gradient without a copy only when it
# provably made that array itself)
# --------------------------------------------------------------------------------------------


def test_leaves_sharing_one_upstream_gradient_get_separate_grad_arrays(device):
    x, y = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    (x + y).sum().backward()  # Add sends the same array to both inputs
    with tn.no_grad():
        x.grad *= 10
    np.testing.assert_allclose(host(y.grad), [1.0, 1.0])


def test_grad_of_a_leaf_root_does_not_alias_the_given_gradient(device):
    x = leaf([1.0, 2.0], device)
    v = tn.tensor([5.0, 6.0], dtype=tn.float64, device=device)
    x.backward(v)
    with tn.no_grad():
        x.grad *= 0
    np.testing.assert_allclose(host(v), [5.0, 6.0])


def test_grad_through_a_view_does_not_alias_the_upstream_gradient(device):
    x = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    v = tn.tensor([5.0, 6.0, 7.0, 8.0], dtype=tn.float64, device=device)
    x.reshape(4).backward(v)  # Reshape's backward returns a view of v
    with tn.no_grad():
        x.grad *= 0
    np.testing.assert_allclose(host(v), [5.0, 6.0, 7.0, 8.0])


def test_grad_returned_by_a_user_function_from_its_saved_arrays_is_copied(device):
    class ReturnsSaved(tn.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.constant = ctx.xp.ones_like(x)
            return x * 1.0

        @staticmethod
        def backward(ctx, grad_out):
            return ctx.constant  # an array the op keeps: .grad must not be it

    x = leaf([1.0, 2.0], device)
    y = ReturnsSaved.apply(x)
    y.backward(tn.ones_like(y), retain_graph=True)
    with tn.no_grad():
        x.grad *= 7
    x.grad = None
    y.backward(tn.ones_like(y))
    np.testing.assert_allclose(host(x.grad), [1.0, 1.0])
