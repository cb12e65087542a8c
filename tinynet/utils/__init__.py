"""``tn.utils``: the corner of ``torch.utils`` that training scripts reach for.

``tinynet.utils.data`` *is* ``tinynet.data`` (the same module object, registered under both
names), so ``torch.utils.data.DataLoader``, ``from torch.utils.data import TensorDataset`` and
``import torch.utils.data`` all run once ``torch`` reads ``tinynet``. Porting guide:
docs/porting.md.
"""

import sys

from .. import data

sys.modules[__name__ + ".data"] = data  # import tinynet.utils.data finds tinynet.data

__all__ = ["data"]
