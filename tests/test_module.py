"""The Module system: registration, traversal, modes, devices, freezing, hooks, containers, state
dicts, and the fine-tuning example.

The modules here are written in the test file (a tiny affine map, an activation, a module with
buffers) so that these tests depend on ``Module`` alone, not on the layers built on it. Where
PyTorch is installed, key names and traversal orders are also compared with ``torch.nn``'s.
"""

import copy
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.nn import Module, ModuleDict, ModuleList, Parameter, Sequential

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# small modules written for these tests
# --------------------------------------------------------------------------------------------


class Affine(Module):
    """y = x @ weight + bias, weight (D_in, D_out)."""

    def __init__(self, d_in, d_out, seed=0, dtype=tn.float64, device="cpu"):
        super().__init__()
        g = tn.Generator(seed)
        self.weight = Parameter(tn.randn(d_in, d_out, dtype=dtype, device=device, generator=g))
        self.bias = Parameter(tn.randn(d_out, dtype=dtype, device=device, generator=g))

    def forward(self, x):
        return x @ self.weight + self.bias


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Stats(Module):
    """Parameters and buffers: a persistent float buffer, an int counter, a scratch buffer."""

    def __init__(self, n=3):
        super().__init__()
        self.scale = Parameter(tn.ones(n, dtype=tn.float64))
        self.register_buffer("running", tn.zeros(n, dtype=tn.float64))
        self.register_buffer("count", tn.tensor(0))
        self.register_buffer("scratch", tn.zeros(n, dtype=tn.float64), persistent=False)

    def forward(self, x):
        if self.training:
            with tn.no_grad():
                self.running += x.mean(axis=0)
        return x * self.scale


class Net(Module):
    """body: Affine -> Tanh -> Affine; head: Affine."""

    def __init__(self, seed=0, device="cpu"):
        super().__init__()
        self.body = Sequential(Affine(3, 4, seed, device=device), Tanh(),
                               Affine(4, 4, seed + 1, device=device))
        self.head = Affine(4, 2, seed + 2, device=device)

    def forward(self, x):
        return self.head(self.body(x))


def values(module):
    """Host copies of every state-dict value, by key."""
    return {k: v.cpu().numpy().copy() for k, v in module.state_dict().items()}


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch comparison (not installed)")


# --------------------------------------------------------------------------------------------
# registration and traversal
# --------------------------------------------------------------------------------------------

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=8,
                 unique=True).filter(lambda ns: not any(n in dir(Module) for n in ns))


@given(names=NAMES)
def test_parameters_come_in_registration_order(names):
    m = Module()
    for i, name in enumerate(names):
        setattr(m, name, Parameter(tn.full((i + 1,), float(i))))
    assert [n for n, _ in m.named_parameters()] == names
    assert [p.shape for p in m.parameters()] == [(i + 1,) for i in range(len(names))]
    assert list(m.state_dict()) == names


@given(names=NAMES)
def test_children_and_state_dict_keys_follow_registration_order(names):
    outer = Module()
    for i, name in enumerate(names):
        setattr(outer, name, Affine(1, 1, seed=i))
    assert [n for n, _ in outer.named_children()] == names
    assert list(outer.state_dict()) == [f"{n}.{p}" for n in names for p in ("weight", "bias")]


def test_reassigning_keeps_the_position_and_none_keeps_the_name():
    m = Affine(2, 3)
    new = Parameter(tn.zeros(2, 3, dtype=tn.float64))
    m.weight = new
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert m.weight is new
    m.weight = None  # the name stays registered (PyTorch does the same)
    assert "weight" in m._parameters and m.weight is None
    assert [n for n, _ in m.named_parameters()] == ["bias"]
    with pytest.raises(TypeError, match="parameter 'weight'"):
        m.weight = tn.zeros(2, 3)


def test_assigning_a_plain_tensor_to_a_parameter_name_raises():
    m = Affine(2, 3)
    before = m.weight
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight'"):
        m.weight = tn.zeros(2, 3, dtype=tn.float64)
    assert m.weight is before
    with pytest.raises(TypeError, match="buffer 'running'"):
        Stats().running = [0.0, 0.0, 0.0]
    with pytest.raises(TypeError, match="child module 'head'"):
        Net().head = tn.zeros(1)
    with pytest.raises(TypeError, match="must be a Parameter"):
        Module().register_parameter("w", tn.zeros(2))


@pytest.mark.parametrize("method, value, kind", [
    ("register_parameter", tn.zeros(2), "Parameter"), ("register_buffer", [1.0], "Tensor"),
    ("add_module", tn.zeros(1), "Module")])
def test_every_register_method_checks_the_same_way(method, value, kind):
    with pytest.raises(TypeError, match=rf"^{method}: 'x' must be a {kind} or None, got "):
        getattr(Module(), method)("x", value)

    class Forgets(Module):
        def __init__(self):  # no super().__init__()
            getattr(self, method)("x", None)

    with pytest.raises(AttributeError, match=rf"call super\(\).__init__\(\) before {method}"):
        Forgets()


def test_names_are_checked():
    m = Affine(1, 1)
    with pytest.raises(KeyError, match="contain no"):
        m.register_buffer("a.b", tn.zeros(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", tn.zeros(1))  # already a parameter
    with pytest.raises(KeyError, match="already exists"):
        m.add_module("forward", Tanh())  # would shadow the method
    with pytest.raises(KeyError, match="non-empty"):
        m.register_parameter("", None)


def test_assigning_before_super_init_says_what_to_do():
    class Forgetful(Module):
        def __init__(self):
            self.w = Parameter(tn.zeros(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Forgetful()


def test_shared_parameters_are_yielded_once_but_listed_under_every_key():
    shared = Affine(2, 2)
    m = Module()
    m.a = shared
    m.b = Tanh()
    m.c = shared  # the same module twice (weight tying)
    m.extra = shared.weight  # and one parameter a third time
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_parameters()] == ["extra", "a.bias"]
    assert m.num_parameters() == 4 + 2
    assert [n for n, _ in m.named_modules()] == ["", "a", "b"]
    assert list(m.children()) == [shared, m.b]
    # PyTorch lists tied weights under every name they are reachable by.
    assert list(m.state_dict()) == ["extra", "a.weight", "a.bias", "c.weight", "c.bias"]
    sd = m.state_dict()
    assert sd["a.weight"].data is sd["c.weight"].data is sd["extra"].data
    # remove_duplicate=False (PyTorch's flag): every name, as the state dict lists them
    everyone = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    assert everyone == ["extra", "a.weight", "a.bias", "c.weight", "c.bias"]


def test_shared_buffers_follow_the_same_rule_as_shared_parameters():
    stats = Stats()
    m = Module()
    m.first, m.second = stats, stats
    m.register_buffer("alias", stats.count)
    assert [n for n, _ in m.named_buffers()] == ["alias", "first.running", "first.scratch"]
    assert [n for n, _ in m.named_buffers(remove_duplicate=False)] == [
        "alias", "first.running", "first.count", "first.scratch", "second.running",
        "second.count", "second.scratch"]
    assert [n for n, _ in m.named_buffers(prefix="net", recurse=False)] == ["net.alias"]


def test_state_dict_keys_and_orders_match_pytorch():
    torch = torch_or_skip()

    def build(nn, lin, act):
        shared = lin(2, 2)
        m = nn.Module()
        m.stem = nn.Sequential(lin(3, 2), act(), lin(2, 2))
        m.layers = nn.ModuleList([lin(2, 2), shared])
        m.blocks = nn.ModuleDict(OrderedDict([("b", lin(2, 2)), ("a", shared)]))
        m.head = nn.Sequential(OrderedDict([("fc", lin(2, 1)), ("out", act())]))
        return m

    ours = build(tn.nn, lambda i, o: Affine(i, o), Tanh)
    theirs = build(torch.nn, torch.nn.Linear, torch.nn.Tanh)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert ([n for n, _ in ours.named_parameters(remove_duplicate=False)]
            == [n for n, _ in theirs.named_parameters(remove_duplicate=False)])
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    order_ours, order_theirs = [], []
    ours.apply(lambda mod: order_ours.append(type(mod).__name__))
    theirs.apply(lambda mod: order_theirs.append(type(mod).__name__))
    rename = {"Linear": "Affine"}
    assert order_ours == [rename.get(n, n) for n in order_theirs]


def test_buffers_and_non_persistent_buffers():
    m = Module()
    m.inner = Stats()
    assert [n for n, _ in m.named_buffers()] == ["inner.running", "inner.count", "inner.scratch"]
    assert len(list(m.buffers())) == 3
    assert list(m.state_dict()) == ["inner.scale", "inner.running", "inner.count"]
    assert [n for n, _ in m.named_parameters()] == ["inner.scale"]
    m.inner.running = tn.ones(3, dtype=tn.float64)  # assigning a Tensor to a buffer name rebinds
    assert m.state_dict()["inner.running"].tolist() == [1.0, 1.0, 1.0]


def test_children_modules_named_modules():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["body", "head"]
    assert list(net.children()) == [net.body, net.head]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "body.2",
                                                   "head"]
    assert list(net.modules())[0] is net
    assert net.get_submodule("body.2") is net.body[2]
    assert net.get_parameter("body.2.bias") is net.body[2].bias
    with pytest.raises(AttributeError, match="no child 'x'"):
        net.get_submodule("body.x")


def test_deep_nesting_does_not_recurse():
    m = Affine(1, 1)
    for _ in range(3000):  # deeper than Python's recursion limit
        m = Sequential(m)
    assert m.num_parameters() == 2
    assert len(m.state_dict()) == 2
    m.eval().apply(lambda mod: None)


# --------------------------------------------------------------------------------------------
# modes, devices, gradients
# --------------------------------------------------------------------------------------------


def test_train_and_eval_propagate():
    net = Module()
    net.stats = Stats()
    net.seq = Sequential(Stats(), Sequential(Stats()))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    x = tn.ones(2, 3, dtype=tn.float64)
    net.stats(x)
    assert net.stats.running.tolist() == [0.0, 0.0, 0.0]  # eval: statistics frozen
    net.seq.train()
    assert [m.training for m in net.modules()] == [False, False, True, True, True, True]
    net.train()
    net.stats(x)
    assert net.stats.running.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="bool"):
        net.train("no")


def test_to_device_moves_in_place(device):
    net = Module()
    net.affine = Affine(3, 2)
    net.stats = Stats(2)
    params = list(net.parameters())
    x = tn.randn(4, 3, dtype=tn.float64)
    net.stats(net.affine(x)).sum().backward()
    grads = [p.grad.numpy().copy() for p in params]
    before = values(net)
    assert net.to(device) is net
    # The same objects: an optimizer built before the move still holds them.
    assert all(p is q for p, q in zip(net.parameters(), params, strict=True))
    for t in list(net.parameters()) + list(net.buffers()):
        assert t.device == device
    for p, g in zip(params, grads, strict=True):
        assert p.grad.device == device  # the gradient follows its parameter
        np.testing.assert_array_equal(p.grad.cpu().numpy(), g)
    for k, v in values(net).items():
        np.testing.assert_array_equal(v, before[k])
    out = net.stats(net.affine(x.to(device)))
    assert out.device == device


def test_to_dtype_casts_floating_state_only():
    net = Module()
    net.affine = Affine(3, 2)
    net.stats = Stats(2)
    weight = net.affine.weight
    net.to(tn.float32)
    assert net.affine.weight is weight
    assert {str(t.dtype) for t in net.parameters()} == {"float32"}
    assert str(net.stats.running.dtype) == "float32"
    assert str(net.stats.count.dtype) == "int64"  # integer buffers keep their dtype
    net.double()
    assert {str(t.dtype) for t in net.parameters()} == {"float64"}
    with pytest.raises(TypeError, match="floating"):
        net.to(tn.int32)


@pytest.mark.skipif(tn.cuda.is_available(), reason="a GPU is usable here")
def test_to_an_unusable_device_moves_nothing():
    net = Net()
    with pytest.raises(RuntimeError):
        net.to("cuda")
    assert {str(p.device) for p in net.parameters()} == {"cpu"}


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    net = Net()
    net(tn.randn(2, 3, dtype=tn.float64)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad.shape == p.shape and not p.grad.numpy().any()


def test_requires_grad_false_freezes(device):
    net = Net(device=device)
    assert net.body.requires_grad_(False) is net.body
    assert net.num_parameters(trainable_only=True) == net.head.num_parameters()
    x = tn.randn(5, 3, dtype=tn.float64, device=device, requires_grad=True)
    net(x).sum().backward()
    for name, p in net.named_parameters():
        assert (p.grad is None) == name.startswith("body"), name
    assert x.grad is not None  # gradients still flow *through* frozen layers to the input
    net.body.requires_grad_()
    net.zero_grad()
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_apply_visits_children_before_parents_in_order():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(m)) is net
    expected = [net.body[0], net.body[1], net.body[2], net.body, net.head, net]
    assert seen == expected

    def reinit(m):
        if isinstance(m, Affine):
            with tn.no_grad():
                m.bias.zero_()

    net.apply(reinit)
    assert all(not m.bias.numpy().any() for m in net.modules() if isinstance(m, Affine))


def test_deepcopy_gives_an_independent_model(device):
    net = Net(device=device)
    twin = copy.deepcopy(net)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in net.named_parameters()]
    assert all(p is not q for p, q in zip(twin.parameters(), net.parameters(), strict=True))
    with tn.no_grad():
        twin.head.bias += 1.0
    assert not np.array_equal(values(twin)["head.bias"], values(net)["head.bias"])
    assert twin.head.bias.device == device


# --------------------------------------------------------------------------------------------
# display and counts
# --------------------------------------------------------------------------------------------


def test_repr_shows_nesting_and_shapes():
    class Scaled(Affine):
        def extra_repr(self):
            return "in=3, out=2, note=custom"

    net = Net()
    net.extra = Scaled(3, 2)
    text = repr(net)
    assert text.splitlines()[0] == "Net("
    assert "  (body): Sequential(\n    (0): Affine(weight: (3, 4), bias: (4,))" in text
    assert "    (1): Tanh()\n" in text
    assert "  (head): Affine(weight: (4, 2), bias: (2,))" in text
    assert "  (extra): Scaled(in=3, out=2, note=custom)" in text
    assert text.endswith("\n)")
    assert repr(Parameter(tn.zeros(1))).startswith("Parameter containing:\n")


def test_num_parameters_and_summary():
    net = Net()
    shapes = {"body.0.weight": (3, 4), "body.0.bias": (4,), "body.2.weight": (4, 4),
              "body.2.bias": (4,), "head.weight": (4, 2), "head.bias": (2,)}
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert net.num_parameters() == total
    net.body.requires_grad_(False)
    head = 4 * 2 + 2
    assert net.num_parameters(trainable_only=True) == head
    lines = net.summary().splitlines()
    assert len(lines) == 1 + len(shapes) + 1
    for line, (name, shape) in zip(lines[1:-1], shapes.items(), strict=True):
        assert line.split()[0] == name
        assert str(shape) in line and line.split()[-2] == str(int(np.prod(shape)))
        assert line.split()[-1] == ("no" if name.startswith("body") else "yes")
    assert lines[-1] == f"total {total} parameters, {head} trainable"


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


def test_sequential():
    a, t, b = Affine(3, 4), Tanh(), Affine(4, 2, seed=1)
    seq = Sequential(a, t, b)
    x = tn.randn(5, 3, dtype=tn.float64)
    np.testing.assert_array_equal(seq(x).numpy(), b(t(a(x))).numpy())
    assert len(seq) == 3 and list(seq) == [a, t, b]
    assert seq[0] is a and seq[-1] is b
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    tail = seq[1:]
    assert isinstance(tail, Sequential) and list(tail) == [t, b]
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]  # slices keep the names
    seq.append(Tanh())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    del seq[1]
    assert list(seq) == [a, b, seq[2]] and [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    seq.insert(0, Tanh())
    assert list(seq.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    named = Sequential(OrderedDict([("fc", Affine(3, 4)), ("act", Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert named[0] is named.fc


def test_module_list():
    m = Module()
    m.layers = ModuleList([Affine(2, 2, seed=i) for i in range(2)])
    m.layers.append(Affine(2, 3))
    m.layers += [Tanh()]
    assert len(m.layers) == 4
    assert list(m.state_dict())[2:4] == ["layers.1.weight", "layers.1.bias"]
    assert m.layers[-2].weight.shape == (2, 3)
    first = m.layers[0]
    m.layers[0] = Affine(2, 2, seed=9)
    assert m.layers[0] is not first and len(m.layers) == 4
    del m.layers[0]
    assert [n for n, _ in m.layers.named_children()] == ["0", "1", "2"]
    assert isinstance(m.layers[:2], ModuleList) and len(m.layers[:2]) == 2
    with pytest.raises(NotImplementedError):
        m.layers(tn.zeros(1))  # a list, not a model


def test_module_dict():
    m = Module()
    m.blocks = ModuleDict({"b": Affine(2, 2), "a": Affine(2, 3)})
    assert list(m.blocks) == ["b", "a"]  # insertion order, not sorted
    assert list(m.state_dict()) == ["blocks.b.weight", "blocks.b.bias", "blocks.a.weight",
                                    "blocks.a.bias"]
    assert "a" in m.blocks and m.blocks["a"].weight.shape == (2, 3)
    m.blocks["c"] = Tanh()
    m.blocks.update({"d": Tanh()})
    assert list(m.blocks.keys()) == ["b", "a", "c", "d"]
    assert isinstance(m.blocks.pop("c"), Tanh) and len(m.blocks) == 3
    with pytest.raises(KeyError):
        m.blocks["x.y"] = Tanh()


# --------------------------------------------------------------------------------------------
# hooks
# --------------------------------------------------------------------------------------------


def test_forward_hooks_read_and_replace_the_output():
    net = Net()
    seen = {}
    handles = [m.register_forward_hook(lambda mod, args, out, n=n: seen.__setitem__(n, out))
               for n, m in net.named_modules() if n]
    x = tn.randn(2, 3, dtype=tn.float64)
    y = net(x)
    h0 = net.body[0](x)
    np.testing.assert_allclose(seen["body.0"].numpy(), h0.numpy())
    np.testing.assert_allclose(seen["body.1"].numpy(), np.tanh(h0.numpy()))
    np.testing.assert_array_equal(seen["head"].numpy(), y.numpy())
    for h in handles:
        h.remove()
    seen.clear()
    net(x)
    assert seen == {}
    handle = net.body.register_forward_hook(lambda mod, args, out: out * 0)
    np.testing.assert_array_equal(net(x).numpy(), net.head(tn.zeros(2, 4, dtype=tn.float64))
                                  .numpy())
    handle.remove()
    np.testing.assert_array_equal(net(x).numpy(), y.numpy())


def test_forward_pre_hooks_replace_the_input():
    m = Affine(3, 2)
    x = tn.randn(4, 3, dtype=tn.float64)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append(args[0]))
    h2 = m.register_forward_pre_hook(lambda mod, args: args[0] * 2)  # one value: wrapped
    np.testing.assert_allclose(m(x).numpy(), (m.forward(x * 2)).numpy())
    assert calls[0] is x
    h2.remove()
    h3 = m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    np.testing.assert_allclose(m(x).numpy(), (m.forward(x + 1)).numpy())
    h1.remove()
    h3.remove()
    np.testing.assert_array_equal(m(x).numpy(), m.forward(x).numpy())


def _central_difference(f, x: np.ndarray, eps=1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (f(xp) - f(xm)) / (2 * eps)
    return grad


@given(batch=st.integers(1, 3), d_in=st.integers(1, 4), d_out=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_full_backward_hook_sees_the_true_gradients(batch, d_in, d_out, seed):
    """grad_output = dL/dy and grad_input = dL/dx for y = tanh(x W + b), L = sum(c * sin(y)),
    both checked against central differences computed with NumPy."""
    rng = np.random.default_rng(seed)
    layer = Sequential(Affine(d_in, d_out, seed=seed), Tanh())
    w, b = layer[0].weight.numpy(), layer[0].bias.numpy()
    x0 = rng.standard_normal((batch, d_in))
    c = rng.standard_normal((batch, d_out))
    seen = []
    layer.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    x = tn.tensor(x0, requires_grad=True)
    y = layer(x)
    (tn.tensor(c) * y.sin()).sum().backward()

    assert len(seen) == 1
    (grad_in,), (grad_out,) = seen[0]
    y0 = np.tanh(x0 @ w + b)
    np.testing.assert_allclose(
        grad_out.numpy(), _central_difference(lambda v: np.sum(c * np.sin(v)), y0), atol=1e-7)
    numeric_x = _central_difference(lambda v: np.sum(c * np.sin(np.tanh(v @ w + b))), x0)
    np.testing.assert_allclose(grad_in.numpy(), numeric_x, atol=1e-7)
    np.testing.assert_allclose(x.grad.numpy(), numeric_x, atol=1e-7)


def test_full_backward_hook_can_replace_grad_input():
    layer = Affine(3, 2)
    x = tn.randn(4, 3, dtype=tn.float64, requires_grad=True)
    layer(x).sum().backward()
    true_x, true_w = x.grad.numpy().copy(), layer.weight.grad.numpy().copy()
    x.grad = None
    layer.zero_grad()
    handle = layer.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 3,))
    layer(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * true_x)
    np.testing.assert_allclose(layer.weight.grad.numpy(), true_w)  # parameters: untouched
    handle.remove()
    x.grad = None
    layer(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), true_x)


def test_full_backward_hook_when_the_input_needs_no_gradient(device):
    layer = Affine(3, 2, device=device)
    seen = []
    layer.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    out = layer(tn.randn(4, 3, dtype=tn.float64, device=device))
    (out * 2).sum().backward()
    (grad_in,), (grad_out,) = seen[0]
    assert grad_in is None
    np.testing.assert_array_equal(grad_out.cpu().numpy(), np.full((4, 2), 2.0))


# --------------------------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------------------------


def test_state_dict_values_are_detached_views(device):
    net = Net(device=device)
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert not any(v.requires_grad for v in sd.values())
    assert not any(isinstance(v, Parameter) for v in sd.values())
    assert sd["head.bias"].data is net.head.bias.data  # shares memory, as PyTorch's does
    assert net.state_dict(keep_vars=True)["head.bias"] is net.head.bias
    assert list(net.state_dict(prefix="model.")) == [f"model.{k}" for k in sd]


def test_load_state_dict_round_trip_gives_identical_outputs(device):
    src, dst = Net(seed=0, device=device), Net(seed=10, device=device)
    x = tn.randn(5, 3, dtype=tn.float64, device=device)
    assert not np.array_equal(src(x).cpu().numpy(), dst(x).cpu().numpy())
    params = list(dst.parameters())
    result = dst.load_state_dict(src.state_dict())
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    assert all(p is q for p, q in zip(dst.parameters(), params, strict=True))  # copied in place
    np.testing.assert_array_equal(src(x).cpu().numpy(), dst(x).cpu().numpy())
    with tn.no_grad():
        src.head.bias += 1.0  # the loaded model holds copies, not the source's memory
    assert not np.array_equal(src(x).cpu().numpy(), dst(x).cpu().numpy())


def test_load_state_dict_casts_and_moves(device):
    src = Net(seed=0)  # float64 on the CPU
    dst = Net(seed=1).to(device).to(tn.float32)
    dst.load_state_dict(src.state_dict())
    for k, v in values(dst).items():
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, values(src)[k].astype(np.float32))
    host = {k: v.numpy() for k, v in src.state_dict().items()}  # NumPy arrays load too
    dst2 = Net(seed=2)
    dst2.load_state_dict(host)
    for k, v in values(dst2).items():
        np.testing.assert_array_equal(v, host[k])


def test_strict_load_lists_every_problem_and_changes_nothing():
    net = Net()
    before = values(net)
    bad = Net(seed=5).state_dict()
    del bad["body.0.bias"]
    del bad["head.weight"]
    bad["head.extra"] = tn.zeros(2)
    bad["body.2.weight"] = tn.zeros(5, 4)  # shape mismatch
    bad["body.2.bias"] = "not an array"
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(bad)
    message = str(info.value)
    assert "Net" in message
    assert re.search(r"missing keys: body\.0\.bias, head\.weight", message)
    assert "unexpected keys: head.extra" in message
    assert "body.2.weight: checkpoint (5, 4), model (4, 4)" in message
    assert "body.2.bias" in message
    after = values(net)
    for k in before:  # keys that matched were not loaded either
        np.testing.assert_array_equal(after[k], before[k])


def test_non_strict_load_takes_the_intersection():
    net, src = Net(seed=0), Net(seed=3)
    sd = src.state_dict()
    del sd["head.bias"]
    sd["unknown.weight"] = tn.zeros(1)
    before = values(net)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["head.bias"] and unexpected == ["unknown.weight"]
    after, source = values(net), values(src)
    for k in after:
        np.testing.assert_array_equal(after[k], before[k] if k == "head.bias" else source[k])
    sd["head.weight"] = tn.zeros(9)
    with pytest.raises(RuntimeError, match="shape mismatches: head.weight"):
        net.load_state_dict(sd, strict=False)  # a wrong shape is never silently skipped


def test_buffers_load_and_non_persistent_ones_are_ignored():
    a, b = Stats(), Stats()
    a(tn.ones(2, 3, dtype=tn.float64))
    with tn.no_grad():
        a.scratch += 7.0
        a.count += 4
    b.load_state_dict(a.state_dict())
    assert b.running.tolist() == [1.0, 1.0, 1.0] and b.count.item() == 4
    assert b.scratch.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(RuntimeError, match="unexpected keys: scratch"):
        b.load_state_dict({**a.state_dict(), "scratch": tn.zeros(3)})


# --------------------------------------------------------------------------------------------
# freezing and fine-tuning with an optimizer
# --------------------------------------------------------------------------------------------


def test_frozen_parameters_get_no_gradient_and_no_update(device):
    optim = pytest.importorskip("tinynet.optim", reason="tinynet.optim is not there yet")
    net = Net(device=device)
    net.body.requires_grad_(False)
    frozen = {n: v for n, v in values(net).items() if n.startswith("body")}
    # Every parameter is handed to the optimizer (PyTorch style), with weight decay and momentum:
    # an optimizer that updated parameters without a gradient would move the frozen ones.
    for opt in (optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1),
                optim.Adam([{"params": net.body.parameters(), "lr": 1e-2},
                            {"params": net.head.parameters()}], lr=1e-2, weight_decay=0.1)):
        head_before = values(net)["head.weight"]
        for _ in range(3):
            opt.zero_grad()
            y = net(tn.randn(4, 3, dtype=tn.float64, device=device))
            (y * y).sum().backward()
            assert all(p.grad is None for p in net.body.parameters())
            opt.step()
        now = values(net)
        for n, v in frozen.items():
            np.testing.assert_array_equal(now[n], v)
        assert not np.array_equal(now["head.weight"], head_before)


def _fine_tuning_report(out: str) -> dict:
    def number(pattern):
        found = re.search(pattern, out, re.M)
        assert found, (pattern, out)
        return float(found.group(1))

    return {"pre": number(r"^pre-trained accuracy on task A (\S+)$"),
            "head": number(r"^stage 1 \(head only\) accuracy on task B (\S+)$"),
            "stage2": number(r"^stage 2 \(head \+ last body layer\) accuracy on task B (\S+)$"),
            "final": number(r"^stage 3 \(all layers\) accuracy on task B (\S+)$"),
            "scratch": number(r"^from scratch on task B's 48 points: accuracy (\S+)$"),
            "chance": number(r"^chance on task B (\S+)$")}


def run_fine_tuning_example(*args: str) -> str:
    # The timeout only stops a hung run; the example takes seconds.
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "04_fine_tuning.py"), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fine_tuning_example():
    """examples/04_fine_tuning.py: the frozen body gets no gradient and does not move, the new
    head learns task B, unfreezing gradually with smaller rates for lower layers improves it, and
    the transferred model beats the same network trained from scratch on the few labels."""
    out = run_fine_tuning_example()
    assert out.splitlines()[0].startswith("pre-training on task A: 4000 points, 8 classes")
    report = _fine_tuning_report(out)
    assert report["pre"] >= 0.9, out
    trainable = re.search(r"^body frozen: (\d+) of (\d+) parameters trainable$", out, re.M)
    hidden, classes_b, total_a = 64, 4, (2 * 64 + 64) + (64 * 64 + 64)
    assert trainable and int(trainable.group(1)) == hidden * classes_b + classes_b, out
    assert int(trainable.group(2)) == total_a + hidden * classes_b + classes_b
    assert "frozen body unchanged after head training: True" in out
    assert "frozen parameters had no gradient: True" in out
    assert report["chance"] == 0.25
    assert report["head"] > report["chance"] + 0.25, out
    assert report["final"] > report["head"], out
    assert report["final"] >= 0.8 and report["final"] > report["scratch"] + 0.1, out
    lrs = re.findall(r"^stage (\d) learning rates: (.*)$", out, re.M)
    assert [s for s, _ in lrs] == ["1", "2", "3"]
    stage3 = {k: float(v) for k, v in (item.split("=") for item in lrs[2][1].split(", "))}
    assert list(stage3) == ["head", "body.2", "body.0"]
    assert stage3["head"] > stage3["body.2"] > stage3["body.0"]


def test_fine_tuning_example_is_device_independent():
    cpu = run_fine_tuning_example()
    standin = run_fine_tuning_example("--device", "standin")
    assert "device standin" in standin
    assert _fine_tuning_report(standin) == _fine_tuning_report(cpu)  # same seed, same numbers


# --------------------------------------------------------------------------------------------
# documentation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("title", ["Modules", "Freezing and fine-tuning"])
def test_docs_snippets_run(title):
    text = (ROOT / "docs" / "nn.md").read_text()
    section = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert section, f"docs/nn.md has no '## {title}' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.DOTALL)
    assert blocks
    for block in blocks:
        code = compile(block, f"docs/nn.md ({title})", "exec")
        exec(code, {"__name__": "docs_nn"})  # noqa: S102 - our own docs
