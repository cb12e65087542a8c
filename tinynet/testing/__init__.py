"""tinynet.testing: property-testing tools for tinynet ops, including your own ``Function``\\ s.

* :func:`check_gradients`: gradcheck (and gradgradcheck) as an assertion with a readable message;
  :func:`check_op`: the forward against a NumPy reference, then the gradients (``checks.py``).
* Hypothesis strategies (``strategies.py``): shapes (:func:`shapes`, :func:`broadcastable_shapes`,
  :func:`matmul_shapes`, :func:`conv_shapes`, :func:`pool_shapes`), arguments (:func:`dtypes`,
  :func:`axes`, :func:`reduction_kwargs`, :func:`index_arrays`) and values (:func:`elements`,
  :func:`arrays`, :func:`tensors`, :func:`grad_outputs`, :func:`to_tensor`), with value
  :class:`Domain`\\ s (``domains.py``).
* The hypothesis profile ``"tinynet"`` (``profiles.py``): ``settings.load_profile("tinynet")``.
* :data:`OP_TABLE` (``op_table.py``): every built-in op with its NumPy reference and input domains,
  the table the library's own op tests run on.

Needs the ``test`` extra (``pip install "tinynet[test]"``, which brings hypothesis). ``import
tinynet`` never imports this package, so the library itself does not depend on hypothesis.

Example (a property test for a user-defined op):
    >>> from hypothesis import given
    >>> from tinynet.testing import check_gradients, tensors
    >>> @given(tensors(shape=(2, 3), non_contiguous=True))
    ... def test_cube(x):
    ...     check_gradients(lambda x: x ** 3, x, second_order=True)
"""

from importlib.util import find_spec

if find_spec("hypothesis") is None:  # fail early, with the fix in the message
    raise ImportError('tinynet.testing needs hypothesis: pip install "tinynet[test]"')

from .checks import FORWARD_TOLERANCES, check_gradients, check_op
from .domains import DOMAINS, Domain, as_domain
from .op_table import OP_TABLE, OpCase
from .profiles import PROFILE
from .strategies import (
    FLOAT_DTYPES, MATMUL_KINDS, arrays, axes, broadcastable_shapes, conv_output_size, conv_shapes,
    dtypes, elements, grad_outputs, index_arrays, matmul_shapes, pool_shapes, reduction_kwargs,
    shapes, tensors, to_tensor,
)

__all__ = [
    "DOMAINS", "FLOAT_DTYPES", "FORWARD_TOLERANCES", "MATMUL_KINDS", "OP_TABLE", "PROFILE",
    "Domain", "OpCase", "arrays", "as_domain", "axes", "broadcastable_shapes", "check_gradients",
    "check_op", "conv_output_size", "conv_shapes", "dtypes", "elements", "grad_outputs",
    "index_arrays", "matmul_shapes", "pool_shapes", "reduction_kwargs", "shapes", "tensors",
    "to_tensor",
]
