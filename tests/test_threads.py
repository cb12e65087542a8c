"""Global state is per thread: ``tn.trace()``, ``tn.detect_anomaly()`` and the ``tn.device(...)``
context, like grad mode. Each test runs two real threads whose blocks overlap in time (barriers
order their steps), so state shared between threads would show in the other thread's results.
"""

import threading

import numpy as np

import tinynet as tn
from tinynet import autograd


def run_in_two_threads(first, second):
    """Run ``first(barrier)`` and ``second(barrier)`` in two threads; re-raise what they raised."""
    barrier = threading.Barrier(2, timeout=30)
    errors = []

    def guarded(fn):
        try:
            fn(barrier)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]


def test_a_trace_records_only_its_own_threads_backward():
    seen = {}

    def tracer(barrier):
        x = tn.tensor([0.5, 1.0], requires_grad=True)
        with tn.trace() as t:
            barrier.wait()  # the other thread runs its backward now
            barrier.wait()
            x.sin().sum().backward()
        seen["ops"] = [e["op"] for e in t.to_dict()]

    def other(barrier):
        y = tn.tensor([0.5, 1.0], requires_grad=True)
        barrier.wait()
        y.exp().mean().backward()  # inside the tracer's block, in another thread
        barrier.wait()

    run_in_two_threads(tracer, other)
    assert seen["ops"] == ["Sum", "Sin"]
    assert autograd._observers is None  # nothing left installed


def test_detect_anomaly_checks_only_its_own_thread():
    outcome = {}

    def checker(barrier):
        with tn.detect_anomaly():
            barrier.wait()
            barrier.wait()
            try:
                tn.log(tn.tensor([-1.0]))
            except RuntimeError as exc:
                outcome["checker"] = str(exc)

    def other(barrier):
        barrier.wait()
        with np.errstate(invalid="ignore"):
            outcome["other"] = tn.log(tn.tensor([-1.0])).tolist()  # not checked: no error
        barrier.wait()

    run_in_two_threads(checker, other)
    assert np.isnan(outcome["other"][0])
    assert outcome["checker"].startswith("detect_anomaly: Log produced NaN")
    assert autograd._anomaly is None and autograd._observers is None


def test_nested_and_overlapping_blocks_in_two_threads_leave_nothing_behind():
    def both(barrier):
        with tn.detect_anomaly(), tn.trace() as outer:
            with tn.trace() as inner:
                barrier.wait()
                x = tn.tensor([1.0, 2.0], requires_grad=True)
                (x * x).sum().backward()
            barrier.wait()
        assert [e["op"] for e in inner.to_dict()] == ["Sum", "Mul"]
        assert len(outer.to_dict()) == 2

    run_in_two_threads(both, both)
    assert autograd._anomaly is None and autograd._observers is None


def test_the_device_context_is_per_thread():
    made = {}

    def on_standin(barrier):
        with tn.device("standin"):
            barrier.wait()  # the other thread enters tn.device("cpu") now
            barrier.wait()
            made["standin thread"] = tn.zeros(2).device

    def on_cpu(barrier):
        barrier.wait()
        with tn.device("cpu"):
            made["cpu thread"] = tn.zeros(2).device
            barrier.wait()

    run_in_two_threads(on_standin, on_cpu)
    assert made == {"standin thread": tn.Device("standin"), "cpu thread": tn.Device("cpu")}


def test_grad_mode_is_per_thread():
    made = {}

    def without_grad(barrier):
        with tn.no_grad():
            barrier.wait()
            barrier.wait()
            made["no_grad thread"] = (tn.ones(2, requires_grad=True) * 2).requires_grad

    def with_grad(barrier):
        barrier.wait()
        made["other thread"] = (tn.ones(2, requires_grad=True) * 2).requires_grad
        barrier.wait()

    run_in_two_threads(without_grad, with_grad)
    assert made == {"no_grad thread": False, "other thread": True}
