"""In-place writes: version counters, recorded assignment (setitem), in-place operators.

PyTorch is the reference: a tensor's ``_version`` counts the in-place writes into its memory
(shared with its views and ``detach()``), every saved value remembers the version it was saved
at, and backward raises "one of the variables needed for gradient computation has been modified
by an inplace operation" when it moved. ``y[i] = v`` with ``v`` requiring grad is recorded
(CopySlices). Where torch is installed the tests run the same program in both and compare.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.testing import OP_TABLE, arrays

try:
    import torch
except ImportError:  # PyTorch is optional: the tests then check tinynet's side alone
    torch = None

STALE = r"modified by an inplace operation: \[.*\] is at version \d+; expected version \d+ instead"
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


# --- the issue's example, against PyTorch ------------------------------------------------------


def test_writing_a_saved_leaf_in_place_makes_backward_raise_naming_op_tensor_and_versions():
    t = tn.tensor([1.0, 2.0], requires_grad=True)
    t.name = "t"
    z = (t * t).sum()
    with tn.no_grad():
        t *= 3
    with pytest.raises(RuntimeError, match=STALE) as info:
        z.backward()
    message = str(info.value)
    assert message.startswith("Mul.backward: one of the variables needed for gradient")
    assert "[input 0 ('t') of Mul, shape (2,), float32] is at version 1; expected version 0" \
        in message
    assert t.grad is None  # nothing was accumulated from stale values


@needs_torch
def test_the_issue_example_raises_in_both_libraries():
    """PyTorch is the reference: the same program raises there too."""
    for lib in (tn, torch):
        t = lib.tensor([1.0, 2.0], requires_grad=True)
        z = (t * t).sum()
        with lib.no_grad():
            t *= 3
        with pytest.raises(RuntimeError, match=STALE):
            z.backward()


# --- every writer bumps the version --------------------------------------------------------------


def _sgd_step(p):
    p.grad = tn.ones_like(p)
    tn.optim.SGD([p], lr=0.1).step()


def _flat_adam_steps(p):
    """Adam's multi-tensor path (flat buffers), taken from the second step of a group of two."""
    q = tn.zeros(3, requires_grad=True)
    opt = tn.optim.Adam([p, q], lr=0.1)
    for _ in range(2):
        p.grad, q.grad = tn.ones_like(p), tn.ones_like(q)
        opt.step()


WRITERS = {  # name -> (write(t), how many writes it makes)
    "+=": (lambda t: t.__iadd__(1.0), 1),
    "-=": (lambda t: t.__isub__(1.0), 1),
    "*=": (lambda t: t.__imul__(2.0), 1),
    "/=": (lambda t: t.__itruediv__(2.0), 1),
    "setitem": (lambda t: t.__setitem__(0, 5.0), 1),
    "zero_": (lambda t: t.zero_(), 1),
    "init.normal_": (lambda t: tn.nn.init.normal_(t), 1),
    "load_state_dict": (lambda t: _load_into(t), 1),
    "SGD.step": (_sgd_step, 1),
    "Adam.step x2 (flat)": (_flat_adam_steps, 2),
}


def _load_into(t):
    module = tn.nn.Module()
    module.w = tn.nn.Parameter(t.detach())  # shares t's memory, so t sees the load
    module.load_state_dict({"w": tn.ones(*t.shape)})


@pytest.mark.parametrize("writer", WRITERS, ids=list(WRITERS))
def test_every_in_place_writer_bumps_the_version_and_stales_saved_values(writer):
    write, count = WRITERS[writer]
    p = tn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (p * p).sum()  # Mul saved p at version 0
    assert p._version == 0
    with tn.no_grad():
        write(p)
    assert p._version == count
    with pytest.raises(RuntimeError, match=STALE):
        loss.backward()


@needs_torch
@pytest.mark.parametrize("writer", ["+=", "-=", "*=", "/=", "setitem", "zero_"])
def test_versions_count_writes_as_pytorch(writer):
    write, _ = WRITERS[writer]
    ours, theirs = tn.zeros(3), torch.zeros(3)
    for _ in range(3):
        write(ours)
        write(theirs)
    assert ours._version == theirs._version == 3


def test_a_training_loop_is_unaffected_and_a_graph_kept_across_a_step_raises():
    """zero_grad / forward / backward / step never trips the check; backward through a graph
    recorded before a step does (it would pair new weights with old activations)."""
    tn.manual_seed(0)
    model = tn.nn.Sequential(tn.nn.Linear(3, 4), tn.nn.Tanh(), tn.nn.Linear(4, 1))
    opt = tn.optim.Adam(model.parameters(), lr=0.01)
    x, y = tn.randn(8, 3), tn.randn(8, 1)
    for _ in range(3):
        opt.zero_grad()
        loss = tn.nn.functional.mse_loss(model(x), y)
        loss.backward(retain_graph=True)
        opt.step()
    with pytest.raises(RuntimeError, match=r"Linear.backward: .*\[input 1 \('.*weight'\)|"
                                           r"Linear.backward: .*\[input 1 of Linear"):
        loss.backward()


def test_the_data_setter_takes_other_memory_and_keeps_saved_values_valid():
    """``t.data = array`` does not write into the memory a graph saved: no error, and the
    gradient is the one of the values forward used."""
    t = tn.tensor([1.0, 2.0], requires_grad=True)
    z = (t * t).sum()
    t.data = np.array([5.0, 6.0], dtype=np.float32)
    z.backward()
    assert t.grad.tolist() == [2.0, 4.0] and t._version == 0


def test_a_saved_output_written_in_place_is_caught():
    x = tn.tensor([0.0, 1.0], requires_grad=True)
    y = x.exp()  # Exp saves its output
    with tn.no_grad():
        y += 1  # no recording under no_grad: a write into y's memory, as PyTorch
    assert y.grad_fn is not None and y._version == 1
    with pytest.raises(RuntimeError, match=r"\[the output of Exp, shape \(2,\), float32\] is at "
                                           r"version 1; expected version 0"):
        y.sum().backward()


# --- views share the counter; copies do not -------------------------------------------------------


VIEWS = {
    "reshape": lambda t: t.reshape(6),
    "view": lambda t: t.view(3, 2),
    "flatten": lambda t: t.flatten(),
    "unsqueeze": lambda t: t.unsqueeze(0),
    "T": lambda t: t.T,
    "transpose": lambda t: t.transpose(0, 1),
    "permute": lambda t: t.permute(1, 0),
    "getitem_slice": lambda t: t[1:, ::2],
    "getitem_int": lambda t: t[0],
    "detach": lambda t: t.detach(),
}
COPIES = {
    "getitem_int_array": lambda t: t[[0, 1, 1]],
    "getitem_mask": lambda t: t[t > 0],
    "reshape_of_transposed": lambda t: t.T.reshape(6),
    "clone": lambda t: t.clone(),
    "tensor": lambda t: tn.tensor(t),
}


def _base():
    return tn.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


@pytest.mark.parametrize("saved", ["base", "view"])
@pytest.mark.parametrize("make", VIEWS, ids=list(VIEWS))
def test_a_view_and_its_base_share_one_version(make, saved):
    """A write through either one stales the values a graph saved from the other."""
    base = _base()
    view = VIEWS[make](base)
    kept, written = (base, view) if saved == "base" else (view, base)
    w = tn.ones(*kept.shape, requires_grad=True)
    loss = (w * kept).sum()  # Mul saves it
    written[...] = 0.0
    assert base._version == view._version == 1 and base.sum().item() < 21.0
    with pytest.raises(RuntimeError, match=STALE):
        loss.backward()


@pytest.mark.parametrize("make", COPIES, ids=list(COPIES))
def test_copies_have_their_own_version(make):
    base = _base()
    copy = COPIES[make](base)
    w = tn.ones(*copy.shape, requires_grad=True)
    loss = (w * copy).sum()
    base += 1.0  # the copy's memory is not written: its saved values are still right
    assert copy._version == 0
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), COPIES[make](_base()).numpy())


@pytest.mark.parametrize("n", [3, 4096])
def test_expand_shares_the_version_when_it_is_a_view(n):
    """broadcast_to/expand: a read-only view (shared version), or on the CPU a copy for small
    results (its own version, and its saved values are unaffected by writes to the base)."""
    base = tn.zeros(1, n)
    expanded = base.expand(4, n)
    w = tn.ones(4, n, requires_grad=True)
    loss = (w * expanded).sum()
    base += 1.0
    if np.shares_memory(expanded.numpy(), base.numpy()):
        assert expanded._version == 1
        with pytest.raises(RuntimeError, match=STALE):
            loss.backward()
    else:
        assert expanded._version == 0
        loss.backward()
        assert w.grad.sum().item() == 0.0


@needs_torch
@pytest.mark.parametrize("make", ["reshape", "T", "getitem_slice", "detach", "getitem_int_array",
                                  "clone"])
def test_which_tensors_share_a_version_matches_pytorch(make):
    fn = {**VIEWS, **COPIES}[make]
    ours = tn.zeros(2, 3)
    theirs = torch.zeros(2, 3)
    derived_ours, derived_theirs = fn(ours), fn(theirs)
    ours += 1
    theirs += 1
    assert derived_ours._version == derived_theirs._version


# --- never a silently wrong gradient, for every op of the table -------------------------------


DIFFERENTIABLE = [c for c in OP_TABLE if c.differentiable]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in DIFFERENTIABLE])
@settings(max_examples=2)
@given(data=st.data())
def test_a_write_after_forward_raises_or_leaves_the_gradient_right(case, data):
    """Each op of the table, each input in turn written in place after forward: backward either
    raises the version error or returns the gradient of the values forward used."""
    shapes = data.draw(case.shapes(3))
    values = [data.draw(arrays(s, np.float64, d)) for s, d in zip(shapes, case.inputs)]
    expected = _gradients(case, values)
    for i in range(len(values)):
        inputs = [tn.tensor(v, requires_grad=True) for v in values]
        outputs = _outputs(case.call(*inputs))
        with tn.no_grad():
            inputs[i] += 0.5
        try:
            grads = tn.grad(outputs, inputs, [tn.ones_like(o) for o in outputs],
                            allow_unused=True, materialize_grads=True)
        except RuntimeError as exc:
            assert "modified by an inplace operation" in str(exc), exc
            continue
        for got, want in zip(grads, expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{case.id}: input {i} written after forward")


def _outputs(result):
    return [o for o in (result if isinstance(result, tuple) else (result,)) if o.requires_grad]


def _gradients(case, values):
    inputs = [tn.tensor(v, requires_grad=True) for v in values]
    outputs = _outputs(case.call(*inputs))
    grads = tn.grad(outputs, inputs, [tn.ones_like(o) for o in outputs], allow_unused=True,
                    materialize_grads=True)
    return [g.numpy() for g in grads]


# --- y[index] = v is recorded: PyTorch's CopySlices -------------------------------------------


def test_setitem_keeps_the_values_gradient_path():
    """The issue's example: y = zeros(2); y[0] = v; (y.sum() + 2 v).backward() gives 3."""
    v = tn.tensor(1.0, requires_grad=True)
    y = tn.zeros(2)
    y[0] = v
    assert y.grad_fn is not None and repr(y.grad_fn) == "<SetItemBackward>"
    (y.sum() + 2 * v).backward()
    assert v.grad.item() == 3.0


@needs_torch
def test_setitem_gradients_match_pytorch():
    """Gradient to v is g[index] (summed where v was broadcast); to the old y it is g with the
    index zeroed. The same program in PyTorch gives the same numbers."""
    x_val = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    v_val, u_val = np.array([3.0, -2.0]), np.array(4.0)
    g_val = np.arange(6.0).reshape(2, 3) + 1

    def run(lib, tensor):
        x, v, u = (tensor(a, requires_grad=True) for a in (x_val, v_val, u_val))
        y = x * 2
        y[:, 1] = v  # a column from a vector
        y[y > 3] = u  # a mask, with a 0-d value broadcast over it
        (y * tensor(g_val)).sum().backward()
        return [t.grad.numpy() for t in (x, v, u)]

    ours = run(tn, lambda a, **kw: tn.tensor(a, dtype=tn.float64, **kw))
    theirs = run(torch, lambda a, **kw: torch.tensor(a, dtype=torch.float64, **kw))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_setitem_gradients_by_formula_and_gradcheck():
    x = tn.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=tn.float64, requires_grad=True)
    v = tn.tensor([3.0, -2.0, 1.0], dtype=tn.float64, requires_grad=True)
    g = np.arange(6.0).reshape(2, 3) + 1

    y = x.sin()
    y[1] = v
    (y * tn.tensor(g, dtype=tn.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(x.numpy()) * g * [[1], [0]])
    np.testing.assert_array_equal(v.grad.numpy(), g[1])

    def assign(x, v):
        y = x * 1.0
        y[1] = v * v
        return y

    assert tn.gradcheck(assign, (x, v)) and tn.gradgradcheck(assign, (x, v))


def test_setitem_casts_the_value_and_its_gradient_back():
    y = tn.zeros(3)  # float32
    v = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    y[1:] = v
    assert y.dtype == tn.float32
    (y * 3).sum().backward()
    assert v.grad.dtype == tn.float64 and v.grad.tolist() == [3.0, 3.0]


def test_setitem_value_with_extra_leading_ones():
    y = tn.zeros(2, 3)
    v = tn.ones(1, 3, requires_grad=True)  # NumPy assigns a (1, 3) value into a (3,) row
    y[0] = v
    y.sum().backward()
    assert v.grad.shape == (1, 3) and v.grad.tolist() == [[1.0, 1.0, 1.0]]


def test_a_recorded_assignment_is_out_of_place():
    """The tensor object becomes the result; memory it shared (a view taken before, values an op
    saved) is not written, so nothing saved goes stale (a difference from PyTorch, which writes
    and then fails the version check or regenerates the view's graph)."""
    v = tn.tensor(5.0, requires_grad=True)
    y = tn.zeros(3)
    view = y[1:]
    w = tn.ones(3, requires_grad=True)
    loss = (w * y).sum()  # Mul saved y's memory
    same = y
    y[1] = v
    assert same is y and y.tolist() == [0.0, 5.0, 0.0]
    assert view.tolist() == [0.0, 0.0]  # the old memory
    loss.backward()  # still valid
    assert w.grad.tolist() == [0.0, 0.0, 0.0]


def test_setitem_refusals_name_the_problem():
    leaf = tn.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem: a leaf tensor that requires grad is being "
                                           "used in an in-place operation"):
        leaf[0] = 1.0
    ints = tn.tensor([1, 2])
    with pytest.raises(TypeError, match="setitem: a value that requires grad can't be assigned "
                                        "into a int64 tensor"):
        ints[0] = tn.tensor(1.0, requires_grad=True)


def test_setitem_without_gradients_writes_in_place():
    y = tn.zeros(3)
    view = y[1:]
    y[1] = 7.0
    assert y.grad_fn is None and view.tolist() == [7.0, 0.0] and y._version == 1
    with tn.no_grad():
        x = tn.ones(2, requires_grad=True) * 2  # no graph under no_grad
        x[0] = tn.tensor(3.0, requires_grad=True)
    assert x.grad_fn is None and x.tolist() == [3.0, 2.0]


# --- in-place operators follow the same rule --------------------------------------------------


def test_an_in_place_operator_with_an_operand_requiring_grad_is_recorded():
    """y += v with v requiring grad used to write v's values into y and drop its gradient."""
    v = tn.tensor([1.0, 2.0], requires_grad=True)
    y = tn.zeros(2)
    same = y
    y += v
    y *= v
    assert y is same and y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), 2 * v.detach().numpy())  # d(v*v)/dv


def test_an_in_place_result_is_cast_back_to_the_tensors_dtype_or_refused():
    y = tn.zeros(2)  # float32
    v = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    y += v
    assert y.dtype == tn.float32
    y.sum().backward()
    assert v.grad.dtype == tn.float64
    n = tn.tensor([1, 2])
    with pytest.raises(TypeError, match="in-place add: the result's dtype float32 can't be cast to "
                                        "the dtype int64"):
        n += tn.tensor([1.0, 2.0], requires_grad=True)
    b = tn.zeros(3)
    with pytest.raises(RuntimeError, match=r"in-place add: the result has shape \(2, 3\)"):
        b += tn.ones(2, 3, requires_grad=True)


@needs_torch
def test_in_place_on_a_graph_tensor_under_no_grad_writes_memory_as_pytorch():
    results = []
    for lib in (tn, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        alias = y
        with lib.no_grad():
            y += 1
        results.append((alias.tolist(), y._version, y.grad_fn is not None))
    assert results[0] == results[1] == ([3.0, 5.0], 1, True)
