"""tinynet: a from-scratch neural-network engine in NumPy, with the same code running on CuPy.

``import tinynet as tn`` gives the PyTorch-shaped API: tensors and their creation (``tn.tensor``,
``tn.zeros`` ...), autograd (``tn.grad``, ``tn.no_grad``, ``tn.Function``), every op function
(``tn.exp``, ``tn.sum``, ``tn.transpose`` ...: the ``__all__`` of ``tinynet.ops``), devices and
dtypes (also under PyTorch's other names: ``tn.float``, ``tn.long`` ...), the gradient checks,
and the packages ``tn.nn``, ``tn.optim``, ``tn.data``, ``tn.datasets``, ``tn.train``, ``tn.viz``;
``tn.utils.data``, ``tn.accelerator`` and ``tn.backends`` answer ported PyTorch code
(docs/porting.md).

Reading order: ``backend/`` (devices, array namespaces) -> ``tensor.py`` -> ``function.py`` (how
forward records the graph) -> ``autograd.py`` (the backward walk) -> ``ops/`` (every forward and
backward formula) -> ``gradcheck.py``.
"""

# tensor.py first: importing it also imports autograd and ops, which need Tensor defined.
from .tensor import Tensor, is_tensor  # isort: skip
from . import (
    accelerator, backend, backends, cuda, data, datasets, distributed, models, nn, optim, runtime,
    train, utils, viz,
)
from .autograd import (
    Function, backward, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled,
)
from .backend import (
    Device, Generator, bool_, float16, float32, float64, get_default_device, get_default_dtype,
    int8, int16, int32, int64, manual_seed, set_default_device, set_default_dtype, synchronize,
    uint8,
)
from .creation import (
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like, linspace,
    numel, ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros,
    zeros_like,
)
from .debug import detect_anomaly, trace
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .ops import *  # noqa: F403 - every op function: tn.exp, tn.sum, tn.transpose ...
from .ops.aliases import is_floating_point
from .serialization import load, save

device = Device  # tn.device("cuda"), also a context manager: with tn.device("cuda"): ...
# PyTorch's other names of the dtypes: tn.float is tn.float32, tn.long is tn.int64 ...
bool = bool_  # noqa: A001
float, double, half = float32, float64, float16  # noqa: A001
long, int, short = int64, int32, int16  # noqa: A001
# PyTorch's names for what tinynet spells otherwise (docs/porting.md): inference is no_grad (no
# separate inference tensors); the intra-op threads are NumPy's BLAS threads.
inference_mode = no_grad
set_num_threads, get_num_threads = runtime.set_blas_threads, runtime.blas_thread_count

__version__ = "0.1.0"
