"""Every primitive op: one ``Op`` subclass each, forward and backward side by side, and the function
users call right under its class.

Where to find a derivative: ``elementwise.py`` (arithmetic, math functions), ``activation.py``
(sigmoid, relu, gelu ...), ``select.py`` (maximum/minimum, clip, where, comparisons and logic),
``reduce.py`` (sum/mean, amax/amin and max/min, var/std, argmax), ``sorting.py`` (sort, argsort,
topk), ``stable.py`` (logsumexp, softmax, log_softmax, softmax_cross_entropy), ``shape.py``
(reshape/view, permute/transpose, broadcast, cat, pad), ``indexing.py`` (getitem and its
adjoint), ``gather_scatter.py`` (gather, scatter, index_select, masked_fill ...), ``linalg.py``
(matmul, linear), ``rnn.py`` (one time step of the Elman, LSTM and GRU cells), ``conv.py``
(convolution and its two gradients, max pooling; the im2col layout in ``im2col.py``),
``normalization.py`` (layer_norm, batch_norm in training and in eval), ``convert.py`` (cast,
device moves, clone). ``inplace.py`` holds the in-place methods (``add_``, ``copy_``,
``masked_fill_`` ...) and ``aliases.py`` PyTorch's other spellings (``t``, ``chunk``,
``x.where``, ``new_zeros`` ...). Each class's docstring opens with
``forward  ->  gradient``; ``OPS`` below lists them all (``docs/ops.md`` is generated from it, with
the file and line of every backward).

Supporting modules: ``operands.py`` (what a function does to its arguments before ``apply``),
``namespace.py`` (the array namespace backward formulas see under ``create_graph``),
``reference.py`` (generates ``docs/ops.md``). Adding an op: docs/adding-an-op.md.

Each op module's ``__all__`` lists the functions that are also ``tn.<name>``; the others here
(``linear``, ``convolution``, ``view`` ...) are the building blocks ``tn.nn`` and ``Tensor`` use.
"""

from ..autograd import Op
from . import (
    activation, aliases, conv, convert, elementwise, gather_scatter, indexing, inplace, linalg,
    normalization, reduce, rnn, select, shape, sorting, stable,
)
from .activation import *  # noqa: F403
from .aliases import *  # noqa: F403
from .conv import convolution, max_pool
from .convert import *  # noqa: F403
from .convert import to_device
from .elementwise import *  # noqa: F403
from .gather_scatter import *  # noqa: F403
from .indexing import *  # noqa: F403
from .indexing import getitem, setitem
from .linalg import *  # noqa: F403
from .linalg import linear
from .normalization import batch_norm_eval, batch_norm_train, layer_norm
from .reduce import *  # noqa: F403
from .reduce import ValuesIndices
from .rnn import (gru_cell, gru_sequence, lstm_cell_hc, lstm_sequence, rnn_relu_cell,
                  rnn_sequence, rnn_tanh_cell)
from .select import *  # noqa: F403
from .shape import *  # noqa: F403
from .shape import view
from .sorting import *  # noqa: F403
from .stable import *  # noqa: F403
from .stable import binary_cross_entropy, softmax_cross_entropy

_MODULES = (elementwise, activation, select, reduce, sorting, stable, shape, indexing,
            gather_scatter, linalg, rnn, conv, normalization, convert, aliases)

__all__ = [name for module in _MODULES for name in module.__all__]
"""The functions that are also ``tn.<name>`` (``tinynet/__init__.py`` star-imports this list)."""


def _all_ops():
    """Every concrete op class (named ``...Op``) defined in the op modules, in module order."""
    return [obj for module in _MODULES for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Op) and obj.__module__ == module.__name__
            and obj.__name__.endswith("Op")]


OPS = tuple(_all_ops())
