"""docs/ops.md is generated from tinynet.ops.OPS; fail when the committed file is stale."""

from pathlib import Path

import pytest

import tinynet as tn
from tinynet.ops.reference import REGENERATE, op_formulas, render_ops_markdown

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
        assert row.endswith("| yes |" if op.differentiable else "| no |")


def test_multiline_docstrings_are_joined():
    forward, gradient = op_formulas(tn.ops.linalg.MatMul)
    assert forward == "a @ b"
    assert "\n" not in gradient and gradient.endswith("is done by the engine)")


def test_missing_arrow_is_an_error():
    class NoFormula(tn.Function):
        """Something without a formula."""

    with pytest.raises(ValueError, match="forward  ->  gradient"):
        op_formulas(NoFormula)
