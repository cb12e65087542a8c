"""Every ```python block of README.md runs, and any property test it defines passes.

Blocks that need a GPU (they mention "cuda") run only where CUDA is available.
"""

import pathlib
import re

import pytest

import tinynet as tn

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files (checkpoints)
    code = BLOCKS[index]
    if "cuda" in code and not tn.cuda.is_available():
        pytest.skip("this README block uses a CUDA device")
    namespace = {"tn": tn}
    exec(compile(code, f"README.md block {index}", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    for test in tests:  # e.g. the property test users are shown: it must really pass
        test()


def test_readme_first_look_computes_what_it_says():
    namespace = {}
    exec(compile(BLOCKS[0], "README.md block 0", "exec"), namespace)
    assert namespace["da"].item() == pytest.approx(12.0)
    assert namespace["daa"].item() == pytest.approx(12.0)
    w, x = namespace["w"], namespace["x"]
    assert w.grad is not None and x.grad is not None


def test_readme_model_example_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = next(b for b in BLOCKS if "nn.Sequential" in b)
    namespace = {}
    exec(compile(block, "README.md model block", "exec"), namespace)
    assert namespace["accuracy"] >= 0.95
    assert (tmp_path / "xor.npz").exists()


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    command = 'pip install -e ".[test]" && python -m pytest'
    assert command in README.read_text()
    assert command in ci
