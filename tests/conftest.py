"""Test set-up: the device every op test runs on, and the hypothesis profiles.

Devices: ``cpu`` (NumPy), ``standin`` (NumPy behind CuPy's rules: proves the GPU code path has no
stray host-NumPy call), and ``cuda`` (CuPy; skipped with a reason when CuPy or a GPU is missing).
``pytest --device cuda`` runs the device-parametrised tests on one device only.

Hypothesis profiles: ``ci`` (derandomized, bounded; used by .ci/run through HYPOTHESIS_PROFILE=ci)
and ``dev`` (the default locally: more examples, random), both built on ``tinynet.testing``'s public
``"tinynet"`` profile (no deadline, no explain phase, print_blob). The function-scoped-fixture
health check is off: the ``device`` fixture only names a device, so sharing it across the examples
of one test is what we want.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import tinynet as tn
from tinynet.testing import PROFILE

# Both derive from tinynet.testing's public profile (no explain phase, no deadline, print_blob).
settings.register_profile(
    "ci", settings.get_profile(PROFILE), derandomize=True, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
settings.register_profile(
    "dev", settings.get_profile(PROFILE), max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ALL_DEVICES = ("cpu", "standin", "cuda")


def pytest_addoption(parser):
    parser.addoption("--device", action="append", choices=ALL_DEVICES, default=None,
                     help="run device-parametrised tests on this device only (repeatable)")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--device") or list(ALL_DEVICES)
        params = [pytest.param(d, marks=[pytest.mark.gpu] if d == "cuda" else [], id=d)
                  for d in chosen]
        metafunc.parametrize("device", params, indirect=True)


@pytest.fixture
def device(request):
    """The device name a test runs on; cuda is skipped with the reason when unusable."""
    name = request.param
    if name == "cuda" and not tn.cuda.is_available():
        try:
            import cupy  # noqa: F401
            reason = "CuPy is installed but sees no CUDA device"
        except ImportError:
            reason = 'CuPy is not installed (pip install "tinynet[gpu]")'
        pytest.skip(f"cuda: {reason}")
    return name


@pytest.fixture(autouse=True)
def _restore_defaults():
    """Tests that change the default device/dtype cannot leak into others, nor can a deferred
    device check one test leaves unread (it would raise in the next test's first read)."""
    dev, dtype = tn.get_default_device(), tn.get_default_dtype()
    yield
    tn.set_default_device(dev)
    tn.set_default_dtype(dtype)
    tn.backend.checks.reset()


# --- skips: one line per reason --------------------------------------------------------------
# pyproject.toml's addopts lists failures and errors at the end (-rfE), not every skip: on a
# machine without a GPU ~350 "SKIPPED cuda" lines would bury them. Skips are counted here instead.

def pytest_terminal_summary(terminalreporter):
    """After the run: how many tests were skipped, grouped by reason, most frequent first."""
    reasons: dict = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped tests by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            terminalreporter.write_line(f"{count:5d}  {reason}")
