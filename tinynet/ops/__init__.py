"""Every primitive op: one ``Function`` subclass each, forward and backward side by side.

Where to find a derivative: ``elementwise.py`` (arithmetic, math, activations), ``reduce.py``
(sum/max/min, mean/var/std), ``stable.py`` (logsumexp, softmax, log_softmax,
softmax_cross_entropy), ``shape.py`` (reshape, permute, broadcast, cat, pad), ``indexing.py``
(getitem and its adjoint), ``linalg.py`` (matmul, linear), ``conv.py`` (convolution and its two
gradients, max pooling), ``convert.py`` (cast, device moves, clone). Each class's one-line docstring reads ``forward  ->  gradient``; ``OPS``
below lists them all (``docs/ops.md`` is generated from it).
"""

from ..autograd import Function
from . import conv, convert, elementwise, indexing, linalg, reduce, shape, stable
from .conv import convolution, max_pool
from .convert import cast, clone, to_device
from .elementwise import (
    abs, add, clamp, clip, cos, div, eq, erf, exp, ge, gelu, gt, le, leaky_relu, log, logical_and,
    logical_not, logical_or, lt, maximum, minimum, mul, ne, neg, pow, relu, sigmoid, sin, softplus,
    sqrt, sub, tanh, where,
)
from .indexing import getitem, index_add, setitem
from .linalg import linear, matmul
from .reduce import argmax, argmin, max, mean, min, std, sum, var
from .shape import (
    broadcast_to, cat, expand, flatten, pad, permute, reshape, split, squeeze, stack, swapaxes,
    transpose, unsqueeze,
)
from .stable import log_softmax, logsumexp, softmax, softmax_cross_entropy


def _all_functions():
    """Every Function subclass defined in the op modules, in module order."""
    found = []
    for module in (elementwise, reduce, stable, shape, indexing, linalg, conv, convert):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Function) and obj is not Function \
                    and obj.__module__ == module.__name__:
                found.append(obj)
    return found


OPS = tuple(_all_functions())
