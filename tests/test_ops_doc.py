"""docs/ops.md is generated from tinynet.ops.OPS; fail when the committed file is stale."""

import re
from pathlib import Path

import pytest

import tinynet as tn
from tinynet.ops.reference import REGENERATE, backward_location, op_formulas, render_ops_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "ops.md"


def test_ops_md_is_up_to_date():
    expected = render_ops_markdown()
    actual = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert actual == expected, (
        f"docs/ops.md is out of date with tinynet.ops.OPS; regenerate it with:\n    {REGENERATE}")


def test_every_op_has_a_row_with_its_formulas():
    text = render_ops_markdown()
    for op in tn.ops.OPS:
        forward, gradient = op_formulas(op)
        assert forward and gradient, op.__name__
        row = next(line for line in text.splitlines() if line.startswith(f"| `{op.__name__}` |"))
        assert forward.replace("|", "\\|") in row
        differentiable = "| yes |" if op.differentiable else "| no |"
        assert row.endswith(f"{differentiable} `{op.result_dtype}` |")


def test_multiline_docstrings_are_joined():
    forward, gradient = op_formulas(tn.ops.linalg.MatMulOp)
    assert forward == "a @ b"
    assert "\n" not in gradient and gradient.endswith("is done by the engine)")


def test_missing_arrow_is_an_error():
    class NoFormula(tn.Function):
        """Something without a formula."""

    with pytest.raises(ValueError, match="forward  ->  gradient"):
        op_formulas(NoFormula)


def test_each_row_links_to_the_line_of_its_backward():
    root = DOC.parent.parent
    text = render_ops_markdown()
    for op in tn.ops.OPS:
        path, line = backward_location(op).rsplit(":", 1)
        source = (root / path).read_text(encoding="utf-8").splitlines()[int(line) - 1]
        if op.differentiable:
            assert "def backward(" in source, op
            # the op's own backward, or the one its family's base class shares
            assert op.backward.__qualname__.split(".")[0] in {c.__name__ for c in op.__mro__}
        else:
            assert source.startswith(f"class {op.__name__}("), op
        row = next(r for r in text.splitlines() if r.startswith(f"| `{op.__name__}` |"))
        assert f"](../{path}#L{line})" in row, row


def test_adding_an_op_recipe_runs():
    """docs/adding-an-op.md: its snippets, in order, in one namespace (the second builds on the
    first); the example op then works as a function, a method and in backward formulas."""
    path = DOC.parent / "adding-an-op.md"
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2
    namespace = {"__name__": "docs_adding_an_op"}
    exec(compile("".join(blocks), str(path), "exec"), namespace)  # noqa: S102 - our own docs
    x = tn.tensor([1.0, -3.0])
    assert x.softsign().tolist() == [0.5, -0.75]
    assert tn.ops.namespace.tensor_namespace.softsign is namespace["softsign"]
