"""``tn.nn.functional`` (usually imported as ``F``): the functional form of every layer and loss.

Each function lives next to its module class (``conv.py``, ``layers.py``, ``normalization.py``,
``activation.py``, ``rnn.py``, ``loss.py``); this file gathers them under PyTorch's names.
"""

from ..ops import (  # noqa: F401 - the elementwise activations are plain ops
    gelu, leaky_relu, log_softmax, pad, relu, sigmoid, softmax, softplus, tanh,
)

# --- conv and pooling (conv.py) ---
from .conv import (  # noqa: F401
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d, avg_pool1d,
    avg_pool2d, conv1d, conv2d, max_pool1d, max_pool2d,
)
# --- linear, dropout, embedding (layers.py) ---
from .layers import dropout, embedding, linear  # noqa: F401
# --- normalization (normalization.py) ---
from .normalization import batch_norm, layer_norm  # noqa: F401
# --- losses (loss.py) ---
from .loss import (  # noqa: F401
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div,
    l1_loss, mse_loss, nll_loss, smooth_l1_loss,
)
