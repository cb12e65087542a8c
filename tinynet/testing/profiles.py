"""A hypothesis profile for gradient property tests: ``settings.load_profile("tinynet")``.

What it changes from hypothesis's defaults, and why:

* no ``explain`` phase: after a failure hypothesis would rerun the test to print an "Explanation"
  of which lines only failing examples ran; for a gradient check that is always the line of the
  failing assertion, so it only adds noise under a message that already names the element;
* no deadline: a full-Jacobian check runs two forward passes per input element, and its time
  varies with the drawn shape;
* ``print_blob=True``: a failure prints the ``@reproduce_failure(...)`` line that replays it;
* the ``too_slow`` health check is off, for the same reason as the deadline.

tinynet's own suite derives its ``ci`` and ``dev`` profiles from this one (``tests/conftest.py``).
"""

from hypothesis import HealthCheck, Phase, settings

PROFILE = "tinynet"

settings.register_profile(
    PROFILE, phases=[p for p in Phase if p is not Phase.explain], deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])

__all__ = ["PROFILE"]
