"""``tn.nn.functional`` (usually imported as ``F``): the functional form of every layer and loss.

Each function lives next to its module class (``conv.py``, ``layers.py``, ``normalization.py``,
``activation.py``, ``rnn.py``, ``loss.py``); this file gathers them under PyTorch's names.
"""

from ..ops import (  # noqa: F401 - the elementwise activations are plain ops
    gelu, leaky_relu, log_softmax, pad, relu, sigmoid, softmax, softplus, tanh,
)

# --- conv and pooling (conv.py) ---
# --- linear, dropout, embedding (layers.py) ---
# --- normalization (normalization.py) ---
# --- losses (loss.py) ---
