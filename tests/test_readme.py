"""README.md: every ```python block runs on its own, the first look computes what it says, the
quick-start commands are the ones CI runs, and the test output ends with what failed.

Each block runs alone, in a fresh namespace (a reader copies one block, not the page), and must
import every name it uses; blocks that need a GPU (they mention "cuda") run only where CUDA is
available, but their imports are checked everywhere.
"""

import builtins
import os
import pathlib
import re
import subprocess
import symtable
import sys

import numpy as np
import pytest

import tinynet as tn

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
COMMANDS = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.DOTALL)


def run_block(index: int) -> dict:
    namespace = {"__name__": f"readme_block_{index}"}  # fresh: nothing from other blocks or tests
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)  # noqa: S102
    return namespace


def unbound_names(code: str) -> set:
    """Global names ``code`` reads but never imports or assigns (builtins aside)."""
    top = symtable.symtable(code, "block", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read, tables = set(), [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        read |= {s.get_name() for s in table.get_symbols()
                 if s.is_referenced() and (table is top or s.is_global())}
    return read - bound - set(dir(builtins))


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files (checkpoints)
    if "cuda" in BLOCKS[index] and not tn.cuda.is_available():
        pytest.skip("this README block uses a CUDA device")
    namespace = run_block(index)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    for test in tests:  # e.g. the property test users are shown: it must really pass
        test()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_imports_what_it_uses(index):
    assert unbound_names(BLOCKS[index]) == set(), f"README.md block {index}"


def test_unbound_names_finds_a_missing_import():  # the check above can fail
    assert unbound_names("x = tn.zeros(2)\ndef f():\n    return np.ones(x)") == {"tn", "np"}
    assert unbound_names("import numpy as np\nx = [np.e for _ in range(2)]") == set()


def test_readme_first_look_computes_what_it_says(capsys):
    namespace = run_block(0)
    assert namespace["da"].item() == pytest.approx(12.0)
    assert namespace["daa"].item() == pytest.approx(12.0)
    # The printed gradient is dloss/dw = x^T [x @ w0 > 0] (w0: w before the SGD step), not zeros.
    x, w, lr = namespace["x"].numpy(), namespace["w"], 0.1
    grad = w.grad.numpy()
    w0 = w.numpy() + lr * grad
    assert np.array_equal(grad, x.T * (x @ w0 > 0))
    assert 0 < np.count_nonzero(grad) < grad.size  # some units active, some cut by ReLU
    printed = capsys.readouterr().out.split("<class")[0]
    assert np.array_equal(np.array(re.findall(r"-?\d+\.?\d*", printed), float), grad.ravel())
    np.testing.assert_allclose(namespace["x"].grad.numpy(), (x @ w0 > 0) @ w0.T, rtol=1e-6)


def test_readme_custom_op_gives_three_x_squared():
    namespace = run_block(1)
    x = namespace["x"]
    np.testing.assert_array_equal(x.grad.numpy(), 3 * x.numpy() ** 2)


def test_readme_model_example_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = run_block(next(i for i, b in enumerate(BLOCKS) if "nn.Sequential" in b))
    assert namespace["accuracy"] >= 0.95
    assert (tmp_path / "xor.npz").exists()


def test_readme_commands_are_what_ci_runs_in_both_orders():
    main_job, tests = COMMANDS[:2]
    assert main_job == 'pip install -e ".[plot,progress]" && tinynet train'
    assert tests == 'pip install -e ".[test]" && python -m pytest'
    ci = CI.read_text()
    bare = ci[ci.index("bare() ("):ci.index(")\n", ci.index("bare() ("))]
    extras = ci[ci.index("extras() ("):ci.index(")\n", ci.index("extras() ("))]
    assert main_job not in bare and tests in bare  # the tests without the extras ...
    assert extras.index(main_job) < extras.index(tests)  # ... and after the main job's install
    assert "runs=(bare extras)" in ci  # both by default


def test_readme_names_the_hypothesis_profile_ci_uses():
    profile = re.search(r"HYPOTHESIS_PROFILE=(\w+)", CI.read_text()).group(1)
    assert f"HYPOTHESIS_PROFILE={profile} python -m pytest" in README.read_text()
    assert re.search(r"suite takes about \d+ minutes", README.read_text())


def test_test_output_counts_skips_by_reason_and_lists_failures_last(tmp_path):
    """The project's pytest settings and conftest, on a run with 30 skips and one failure: the
    skips take one line, the failure is in the closing summary."""
    ini = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1]
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]" + ini.split("\n[")[0])
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    skips = "".join(f"def test_gpu_{i}():\n    pytest.skip('cuda: no GPU here')\n\n"
                    for i in range(30))  # one function each: -ra would print 30 lines
    (tmp_path / "tests" / "test_output.py").write_text(
        f"import pytest\n\n{skips}def test_broken():\n    assert 1 == 2\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HYPOTHESIS_PROFILE="ci"))
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert not [line for line in lines if line.startswith("SKIPPED")], done.stdout
    assert re.search(r"^\s+30  cuda: no GPU here$", done.stdout, re.M), done.stdout
    failed = [i for i, line in enumerate(lines) if line.startswith("FAILED tests/test_output.py")]
    assert len(failed) == 1 and failed[0] > lines.index(next(x for x in lines if "30  cuda" in x))
