"""``tn.optim``: optimizers and learning-rate schedules, with ``torch.optim``'s names, defaults,
update formulas and state-dict layout.

Reading order: ``optimizer.py`` (parameter groups, state, state dicts) -> ``sgd.py`` -> ``adam.py``
-> ``rmsprop.py`` -> ``adagrad.py`` -> ``flat.py`` (the multi-tensor step) -> ``scheduler.py`` ->
``lr_scheduler.py`` (with ``one_cycle.py``, ``plateau.py``). ``adadelta.py``, ``adamax.py``,
``nadam.py``, ``radam.py`` and ``asgd.py`` are the rest of ``torch.optim``'s first-order
optimizers, with what they share in ``shared.py``. Gradient clipping lives in
``tn.nn.utils``. The guide is ``docs/optim.md``.
"""

from . import flat, lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["ASGD", "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "Optimizer",
           "RAdam", "RMSprop", "flat", "lr_scheduler"]
