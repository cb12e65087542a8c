"""docs/testing.md runs as written: every ```python block, in order, in one namespace, and a block
followed by a ```text block prints exactly that text (the outputs in the doc are real ones).
Property tests a block defines (``test_*``) are run too."""

import contextlib
import io
import pathlib
import re

import pytest
from hypothesis import settings

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "testing.md"
# A python block, and the text block right after it (its printed output), when there is one.
BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```\n)?", re.DOTALL)


def doc_blocks():
    return BLOCK.findall(DOC.read_text())


@pytest.fixture
def keep_profile():
    """A block loads a hypothesis profile, as users would in conftest.py: restore ours after."""
    before = settings._current_profile
    yield
    settings.load_profile(before)


def test_testing_doc_blocks_run_and_print_what_the_doc_shows(keep_profile):
    namespace: dict = {}
    blocks = doc_blocks()
    assert sum(1 for _, out in blocks if out) >= 6  # the doc shows its features with output
    for index, (code, expected) in enumerate(blocks):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/testing.md block {index}", "exec"), namespace)
        for name in [n for n in namespace if n.startswith("test_")]:
            namespace.pop(name)()  # a property test the block defines must pass
        if expected:
            assert printed.getvalue() == expected, f"block {index} printed:\n{printed.getvalue()}"
