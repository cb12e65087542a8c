"""The op table covers the library: an op without an entry in ``tinynet.testing.OP_TABLE`` fails.

* Every class in ``tinynet.ops.OPS`` is exercised by some entry. Differentiable ops are found by
  walking the graph each entry's output records (``grad_fn`` -> ``parents``, collecting
  ``node.fn``); ops with no gradient record no graph, so those are found by watching which classes
  ``Function.apply`` is called on while the no-gradient entries run.
* Every public op function exported from ``tinynet.ops`` is the ``api`` of some entry, and every
  entry's ``api`` is such a function.
* Every restricted input domain says why.
* Every built-in op's backward returns exactly one gradient per positional input (its parameters
  are keywords, so no trailing ``None``).
"""

import contextlib
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.autograd
import tinynet.ops
from tinynet.autograd import Function
from tinynet.testing import DOMAINS, OP_TABLE, arrays
from tinynet.testing.op_table import recorded_ops


@contextlib.contextmanager
def applied_ops():
    """Collect every Function class whose ``apply`` runs inside the block (behaviour unchanged)."""
    calls = set()
    original = Function.__dict__["apply"].__func__

    def watching(cls, *args, **kwargs):
        calls.add(cls)
        return original(cls, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Function, "apply", classmethod(watching))
        yield calls


@contextlib.contextmanager
def backward_counts():
    """Collect (op class, gradients its backward returned, positional inputs) for every backward
    run inside the block, through the engine's observer hook (what tn.trace() uses)."""
    counts = []

    def observe(node, grad_out, grads_in):
        counts.append((node.fn, len(grads_in), len(node.parents)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tinynet.autograd, "_observers", (observe,))
        yield counts


def run_case(case, examples: int = 5):
    """Run ``case`` on a few derandomized examples of its own shapes and domains, forward and,
    where it recorded a graph, backward.

    Returns (op classes in the recorded graphs, op classes applied, whether some example recorded
    a graph for every output: reshape to the same shape may return its input, but not always,
    and the (op, gradients returned, inputs) of every backward run).
    """
    recorded, applied, graphs, counted = set(), set(), [], []

    @settings(max_examples=examples, derandomize=True, database=None)
    @given(data=st.data())
    def run(data):
        input_shapes = data.draw(case.shapes(3))
        inputs = [tn.tensor(data.draw(arrays(s, np.float64, d)), requires_grad=True)
                  for s, d in zip(input_shapes, case.inputs)]
        with applied_ops() as calls:
            result = case.call(*inputs)
        outputs = list(result) if isinstance(result, tuple) else [result]
        recorded.update(recorded_ops(outputs))
        applied.update(calls)
        graphs.append(all(o.grad_fn is not None for o in outputs))
        if graphs[-1]:
            with backward_counts() as counts:
                tn.grad(outputs, inputs, [tn.ones_like(o) for o in outputs], allow_unused=True)
            counted.extend(counts)

    run()
    return recorded, applied, any(graphs), counted


@pytest.fixture(scope="module")
def coverage():
    return {case.id: run_case(case) for case in OP_TABLE}


def test_every_differentiable_op_class_is_in_some_entrys_graph(coverage):
    recorded = set().union(*(rec for rec, _, _, _ in coverage.values()))
    missing = [cls.__name__ for cls in tn.ops.OPS if cls.differentiable and cls not in recorded]
    assert not missing, f"ops with no entry in tinynet/testing/op_table.py: {missing}"


def test_every_op_class_without_gradient_is_run_by_some_entry(coverage):
    no_grad_ids = {case.id for case in OP_TABLE if not case.differentiable}
    applied = set().union(*(app for cid, (_, app, _, _) in coverage.items() if cid in no_grad_ids))
    missing = [cls.__name__ for cls in tn.ops.OPS if not cls.differentiable and cls not in applied]
    assert not missing, f"ops with no entry in tinynet/testing/op_table.py: {missing}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in OP_TABLE if c.differentiable])
def test_differentiable_entries_record_a_graph(case, coverage):
    assert coverage[case.id][2], f"{case.id}: no example recorded a graph: no op was tested"


def test_built_in_backwards_return_one_gradient_per_positional_input(coverage):
    counts = {c for _, _, _, counted in coverage.values() for c in counted}
    assert {op for op, _, _ in counts} >= {op for op in tn.ops.OPS if op.differentiable}
    wrong = sorted({f"{op.__name__}: {got} for {inputs}" for op, got, inputs in counts
                    if got != inputs})
    assert not wrong, f"backward returned a gradient count other than its inputs': {wrong}"


def public_op_functions() -> dict:
    """Each public function exported from tinynet.ops -> its exported names (clamp is clip)."""
    functions: dict = {}
    for name, obj in vars(tinynet.ops).items():
        if not name.startswith("_") and inspect.isfunction(obj) \
                and obj.__module__.startswith("tinynet.ops."):
            functions.setdefault(obj, []).append(name)
    return functions


def test_every_public_op_function_has_an_entry():
    apis = {case.api for case in OP_TABLE}
    missing = [names for names in public_op_functions().values() if not apis & set(names)]
    assert not missing, f"public ops with no entry in tinynet/testing/op_table.py: {missing}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in OP_TABLE])
def test_entry_names_a_public_op_function(case):
    names = {name for names in public_op_functions().values() for name in names}
    assert case.api in names, f"{case.id}: api {case.api!r} is not a public function of tinynet.ops"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in OP_TABLE if c.differentiable])
def test_restricted_domains_say_why(case):
    restricted = any(d != DOMAINS["real"] for d in case.inputs)
    assert case.why or not restricted, f"{case.id}: restricted input domain without a reason"
