"""``tn.optim``: optimizers and learning-rate schedules, with ``torch.optim``'s names, defaults,
update formulas and state-dict layout.

Reading order: ``optimizer.py`` (parameter groups, state, state dicts) -> ``sgd.py`` -> ``adam.py``
-> ``rmsprop.py`` -> ``adagrad.py`` -> ``flat.py`` (the multi-tensor step) -> ``scheduler.py`` ->
``lr_scheduler.py`` (with ``one_cycle.py``, ``plateau.py``). Gradient clipping lives in
``tn.nn.utils``. The guide is ``docs/optim.md``.
"""

from . import flat, lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "flat", "lr_scheduler"]
