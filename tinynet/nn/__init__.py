"""``tn.nn``: modules, layers, losses, initialisation, with ``torch.nn``'s names and defaults.

Reading order: ``module.py`` (Module, Parameter, state dicts, hooks) -> ``container.py`` ->
the layers (``layers.py``, ``conv.py``, ``normalization.py``, ``activation.py``, ``rnn.py``; each is
a thin Module over a function in ``functional.py``) -> ``loss.py`` -> ``init.py``.
"""

from . import functional, init
from .container import ModuleDict, ModuleList, Sequential
from .module import Module, Parameter, RemovableHandle

# --- conv and pooling (conv.py) ---
from .conv import (
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d,
    Conv1d, Conv2d, MaxPool1d, MaxPool2d,
)
# --- linear, dropout, embedding, flatten, identity (layers.py) ---
from .layers import Dropout, Embedding, Flatten, Identity, Linear
# --- normalization (normalization.py) ---
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
# --- activations (activation.py) ---
from .activation import (
    GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh,
)
# --- recurrent (rnn.py) ---
from .rnn import GRU, LSTM, RNN, RNNBase
# --- losses (loss.py) ---
from .loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss,
    SmoothL1Loss,
)
from . import utils  # noqa: E402  (gradient clipping: clip_grad_norm_, clip_grad_value_)
