"""``tn.nn``: modules, layers, losses, initialisation, with ``torch.nn``'s names and defaults.

Reading order: ``module.py`` (Module, Parameter, state dicts, hooks) -> ``container.py`` ->
the layers (``layers.py``, ``conv.py``, ``normalization.py``, ``activation.py``, ``rnn.py``; each is
a thin Module over a function in ``functional.py``) -> ``loss.py`` -> ``init.py``.
"""

from . import functional, init
from .container import ModuleDict, ModuleList, Sequential
from .module import Module, Parameter, RemovableHandle

# --- conv and pooling (conv.py) ---
# --- linear, dropout, embedding, flatten, identity (layers.py) ---
# --- normalization (normalization.py) ---
# --- activations (activation.py) ---
# --- recurrent (rnn.py) ---
# --- losses (loss.py) ---
