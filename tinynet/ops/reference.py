"""Build ``docs/ops.md``, the op reference, from :data:`tinynet.ops.OPS`.

Every op class's docstring opens with ``forward  ->  gradient``; this module splits that paragraph
at the first ``->`` and writes one table row per op: its name, where its ``backward`` is written
(``file:line``, a link), the forward and gradient formulas, whether it is differentiable, and its
result-dtype rule (``Function.result_dtype``).
Regenerate after changing an op::

    python -m tinynet.ops.reference > docs/ops.md

``tests/test_ops_doc.py`` fails when the committed file differs from the generated text.
"""

from __future__ import annotations

import inspect
import os
import sys

from ..function import RESULT_DTYPES
from . import OPS

REGENERATE = "python -m tinynet.ops.reference > docs/ops.md"
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def backward_location(op) -> str:
    """``tinynet/ops/elementwise.py:123``: where ``op``'s backward is written (a family's base
    class for an op that inherits it), or its class for an op without a gradient."""
    method = op.backward if op.differentiable else op
    target = inspect.unwrap(method)
    path = os.path.relpath(inspect.getsourcefile(target), _PACKAGE_ROOT).replace(os.sep, "/")
    lines, first = inspect.getsourcelines(target)
    skip = next(i for i, text in enumerate(lines) if text.lstrip().startswith(("def ", "class ")))
    return f"{path}:{first + skip}"  # the def line, below any decorator


def _cell(text: str) -> str:
    """A formula as a Markdown table cell: a code span, with the table's pipes escaped."""
    text = text.replace("|", "\\|")
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _link(location: str) -> str:
    """``[ops/elementwise.py:123](../tinynet/ops/elementwise.py#L123)`` (relative to docs/)."""
    path, line = location.rsplit(":", 1)
    return f"[{path.removeprefix('tinynet/')}:{line}](../{path}#L{line})"


def render_ops_markdown() -> str:
    """The text of ``docs/ops.md``: one row per op of :data:`tinynet.ops.OPS`, in module order."""
    lines = [
        "# Op reference",
        "",
        f"<!-- Generated from tinynet.ops.OPS by `{REGENERATE}`; do not edit by hand. -->",
        "",
        ("Every primitive op is one `Op` subclass in `tinynet/ops/`, with `forward` and "
         "`backward` side by side and the function users call right below. Each row below is "
         "read from the op class's docstring, `forward  ->  gradient`: `g` is the gradient "
         "arriving from the output, `out` the op's output, `[cond]` is 1 where `cond` holds and 0 "
         "elsewhere. *Backward* links to the line where the gradient is computed (for ops of a "
         "family, the shared base class's). Broadcasting is undone by the engine (`sum_to`), not "
         "by each op. Ops that are not differentiable (comparisons, argmax) return outputs that "
         "never require grad. How to add one: [adding-an-op.md](adding-an-op.md)."),
        "",
        f"{len(OPS)} ops, {sum(1 for op in OPS if op.differentiable)} differentiable.",
        "",
        ("*Result dtype* is the op's `result_dtype` rule (one per op; `Function.apply` enforces "
         "`float`, so every floating op gives float32 for integer and bool inputs, as PyTorch):"),
        "",
        *(f"- `{rule}`: {meaning}" for rule, meaning in RESULT_DTYPES.items()),
        "",
        "| Op | Backward | Forward | Gradient | Differentiable | Result dtype |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for op in OPS:
        forward, gradient = op_formulas(op)
        lines.append(f"| `{op.__name__}` | {_link(backward_location(op))} | {_cell(forward)} | "
                     f"{_cell(gradient)} | {'yes' if op.differentiable else 'no'} | "
                     f"`{op.result_dtype}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_ops_markdown())
