"""tinynet: a from-scratch neural-network engine in NumPy, with the same code running on CuPy.

Reading order: ``backend/`` (devices, array namespaces) -> ``tensor.py`` -> ``autograd.py`` (graph
and backward walk) -> ``ops/`` (every forward and backward formula) -> ``gradcheck.py``.
"""

from .tensor import Tensor, is_tensor  # first: autograd and ops import it  # isort: skip
from . import backend, cuda, runtime
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
    ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros,
    zeros_like,
)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .ops import (
    abs, add, argmax, argmin, broadcast_to, cast, cat, clamp, clip, clone, cos, div, eq, erf, exp,
    expand, flatten, ge, gelu, gt, index_add, le, leaky_relu, log, log_softmax, logical_and,
    logical_not, logical_or, logsumexp, lt, matmul, max, maximum, mean, min, minimum, mul, ne, neg,
    pad, permute, pow, relu, reshape, sigmoid, sin, softmax, softplus, split, sqrt, squeeze, stack,
    std, sub, sum, swapaxes, tanh, transpose, unsqueeze, var, where,
)
from . import nn  # noqa: E402  (after the ops it is built from)  # isort: skip
from . import optim  # noqa: E402  (after nn)  # isort: skip
from . import train  # noqa: E402  (after optim: fit drives both)  # isort: skip
from . import data  # noqa: E402  (after the tensor ops it batches with)  # isort: skip
from . import datasets  # noqa: E402  (after data: returns TensorDatasets)  # isort: skip
from . import models  # noqa: E402  (after nn)  # isort: skip
from . import distributed  # noqa: E402  (after optim and data: it wraps both)  # isort: skip
from .debug import detect_anomaly, trace  # noqa: E402  (hooks into autograd)  # isort: skip
from . import viz  # noqa: E402  (draws the recorded graph)  # isort: skip
from .serialization import load, save  # noqa: E402  (saves nn.Parameter)  # isort: skip

device = Device  # tn.device("cuda"), also a context manager: with tn.device("cuda"): ...
bool = bool_  # noqa: A001 - tn.bool, as torch.bool

__version__ = "0.1.0"
