"""Build ``docs/ops.md``, the op reference, from :data:`tinynet.ops.OPS`.

Every op class's docstring opens with ``forward  ->  gradient``; this module splits that paragraph
at the first ``->`` and writes one table row per op: its name, the file it lives in, the forward and
gradient formulas, and whether it is differentiable. Regenerate after changing an op::

    python -m tinynet.ops.reference > docs/ops.md

``tests/test_ops_doc.py`` fails when the committed file differs from the generated text.
"""

from __future__ import annotations

import inspect
import sys

from . import OPS

REGENERATE = "python -m tinynet.ops.reference > docs/ops.md"


def op_formulas(op) -> tuple[str, str]:
    """(forward, gradient) from the first paragraph of ``op``'s docstring, on one line each."""
    doc = inspect.cleandoc(op.__doc__ or "")
    paragraph = doc.split("\n\n", 1)[0]
    text = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
    if "->" not in text:
        raise ValueError(f"{op.__module__}.{op.__name__}: the docstring's first paragraph must "
                         f"read 'forward  ->  gradient', got {text!r}")
    forward, gradient = text.split("->", 1)
    return forward.strip(), gradient.strip()


def _cell(text: str) -> str:
    """A formula as a Markdown table cell: a code span, with the table's pipes escaped."""
    text = text.replace("|", "\\|")
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _source(op) -> str:
    """``ops/elementwise.py`` for ``tinynet.ops.elementwise``."""
    return op.__module__.removeprefix("tinynet.").replace(".", "/") + ".py"


def render_ops_markdown() -> str:
    """The text of ``docs/ops.md``: one row per op of :data:`tinynet.ops.OPS`, in module order."""
    lines = [
        "# Op reference",
        "",
        f"<!-- Generated from tinynet.ops.OPS by `{REGENERATE}`; do not edit by hand. -->",
        "",
        ("Every primitive op is one `Function` subclass in `tinynet/ops/`, with `forward` and "
         "`backward` side by side. Each row below is read from the op class's docstring, "
         "`forward  ->  gradient`: `g` is the gradient arriving from the output, `out` the op's "
         "output, `[cond]` is 1 where `cond` holds and 0 elsewhere. Broadcasting is undone by the "
         "engine (`sum_to`), not by each op. Ops that are not differentiable (comparisons, argmax) "
         "return outputs that never require grad."),
        "",
        f"{len(OPS)} ops, {sum(1 for op in OPS if op.differentiable)} differentiable.",
        "",
        "| Op | Module | Forward | Gradient | Differentiable |",
        "| --- | --- | --- | --- | --- |",
    ]
    for op in OPS:
        forward, gradient = op_formulas(op)
        lines.append(f"| `{op.__name__}` | `{_source(op)}` | {_cell(forward)} | {_cell(gradient)} "
                     f"| {'yes' if op.differentiable else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_ops_markdown())
