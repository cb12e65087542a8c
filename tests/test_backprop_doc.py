"""docs/backprop.md: every ```python block runs, in order, in one namespace (as a reader would run
them one after the other), the asserts inside the blocks check the numbers the page shows, and a
block followed by a ```text block prints exactly that text (the outputs on the page are real)."""

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "backprop.md"
# A python block, and the text block right after it (its printed output), when there is one.
BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```\n)?", re.DOTALL)


def _blocks() -> list[tuple[str, str | None]]:
    """Each ```python block, padded with blank lines so tracebacks (and the file:line that
    detect_anomaly prints) give its line in the file, with its expected output or None."""
    text = DOC.read_text()
    return [("\n" * text.count("\n", 0, m.start(1)) + m.group(1), m.group(2))
            for m in BLOCK.finditer(text)]


def test_backprop_doc_blocks_run_in_order_and_print_what_the_page_shows(capsys):
    blocks = _blocks()
    assert len(blocks) >= 16
    assert sum(1 for _, expected in blocks if expected) >= 8  # the tools shown with output
    namespace = {"__name__": "docs_backprop"}
    printed_all = []
    for index, (code, expected) in enumerate(blocks):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            # a relative name: the file:line detect_anomaly prints is the same on every machine
            exec(compile(code, "docs/backprop.md", "exec"), namespace)  # noqa: S102
        printed_all.append(printed.getvalue())
        if expected is not None:
            assert printed.getvalue() == expected, f"block {index} printed:\n{printed.getvalue()}"
    out = "".join(printed_all)
    # Section 4 compared every gradient of the network, hand against tinynet.
    for name in ("a", "h", "z", "loss", "dz", "dW2", "db2", "dh", "da", "dW1", "db1"):
        assert re.search(rf"^\s*{name}  by hand .* tinynet ", out, re.M), name
    assert "b.grad = [5.0, 7.0, 9.0]" in out


def test_backprop_doc_every_block_asserts_something_or_compares():
    # A block without a check would only prove that it runs.
    for code, _ in _blocks()[1:]:
        assert "assert" in code or "same(" in code or "print(err)" in code, code.strip()[:60]


def test_the_derivations_cover_the_composite_layers():
    text = DOC.read_text()
    for title in ("Convolution: a correlation with the flipped kernel", "Layer norm",
                  "One LSTM step and its gates", "Backpropagation through time"):
        section = text.split(title, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        assert "```python" in section and ".grad" in section, title
