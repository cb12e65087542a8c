"""tinynet.testing: property-testing tools for tinynet ops, including your own ``Function``\\ s.

* :func:`check_gradients`: gradcheck (and gradgradcheck) as an assertion with a readable message.
* Hypothesis strategies (``strategies.py``): :func:`shapes`, :func:`broadcastable_shapes`,
  :func:`dtypes`, :func:`elements`, :func:`arrays`, :func:`tensors`, and value :class:`Domain`\\ s.
* :data:`OP_TABLE` (``op_table.py``): every built-in op with its NumPy reference and input domains,
  the table the library's own op tests run on.

Needs the ``test`` extra (``pip install "tinynet[test]"``, which brings hypothesis). ``import
tinynet`` never imports this package, so the library itself does not depend on hypothesis.

Example (a property test for a user-defined op):
    >>> from hypothesis import given
    >>> from tinynet.testing import check_gradients, tensors
    >>> @given(tensors(shape=(2, 3)))
    ... def test_cube(x):
    ...     check_gradients(lambda x: x ** 3, x, second_order=True)
"""

from importlib.util import find_spec

if find_spec("hypothesis") is None:  # fail early, with the fix in the message
    raise ImportError('tinynet.testing needs hypothesis: pip install "tinynet[test]"')

from .checks import check_gradients
from .op_table import OP_TABLE, OpCase
from .strategies import (
    DOMAINS, FLOAT_DTYPES, Domain, arrays, as_domain, broadcastable_shapes, dtypes, elements,
    shapes, tensors,
)

__all__ = [
    "DOMAINS", "FLOAT_DTYPES", "OP_TABLE", "Domain", "OpCase", "arrays", "as_domain",
    "broadcastable_shapes", "check_gradients", "dtypes", "elements", "shapes", "tensors",
]
