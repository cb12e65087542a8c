"""docs/backprop.md: every ```python block runs, in order, in one namespace (as a reader would run
them one after the other), and the asserts inside the blocks check the numbers the page shows."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "backprop.md"


def _blocks() -> list[str]:
    """Each ```python block, padded with blank lines so tracebacks give its line in the file."""
    text = DOC.read_text()
    return ["\n" * text.count("\n", 0, m.start(1)) + m.group(1)
            for m in re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL)]


def test_backprop_doc_blocks_run_in_order_and_their_checks_hold(capsys):
    blocks = _blocks()
    assert len(blocks) >= 6
    namespace = {"__name__": "docs_backprop"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    # Section 4 compared every gradient of the network, hand against tinynet.
    for name in ("a", "h", "z", "loss", "dz", "dW2", "db2", "dh", "da", "dW1", "db1"):
        assert re.search(rf"^\s*{name}  by hand .* tinynet ", out, re.M), name
    assert "b.grad = [5.0, 7.0, 9.0]" in out


def test_backprop_doc_every_block_asserts_something_or_compares():
    # A block without a check would only prove that it runs.
    for block in _blocks()[1:]:
        assert "assert" in block or "same(" in block, block.strip()[:60]
