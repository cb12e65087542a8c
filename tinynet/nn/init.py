"""Parameter initialisation (seeded), matching PyTorch's ``torch.nn.init`` formulas and names.

Every function fills a tensor in place and returns it. Random values come from tinynet's seeded
generator (``generator=`` or the default one, seeded by ``tn.manual_seed``): drawn on the host and
moved to the tensor's device, or, for tensors of at least ``backend.random.COUNTER_STREAM_MIN``
elements, drawn on the device by one kernel (no host draw, no upload). Either way a seed gives the
same weights on CPU, stand-in and GPU (``backend/random.py`` says how).

Fans, as PyTorch defines them for a weight of shape ``(out, in, *kernel)``:
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``.

Read next: ``layers.py`` (``Linear`` uses ``kaiming_uniform_`` with ``a=sqrt(5)``).
"""

from __future__ import annotations

import math
import warnings

from .. import backend
from ..autograd import no_grad
from ..backend.random import on_counter_stream
from ..tensor import Tensor

_LINEAR_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    ``linear``/``conv*``/``sigmoid``: 1, ``tanh``: 5/3, ``relu``: sqrt(2), ``leaky_relu``:
    sqrt(2 / (1 + negative_slope**2)) with ``param`` the slope (default 0.01), ``selu``: 3/4.

    Example:
        >>> tn.nn.init.calculate_gain("leaky_relu", 0.2)
        1.3867504905630728
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # the value PyTorch uses for self-normalising networks
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shaped ``(out, in, *receptive_field)``."""
    if tensor.ndim < 2:
        raise ValueError("fan in and fan out can not be computed for a tensor with fewer than 2 "
                         f"dimensions (shape {tuple(tensor.shape)})")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill_from_host(tensor: Tensor, host) -> Tensor:
    """Copy a host array into the tensor's memory, in place (views of it see the new values)."""
    arr = backend.transfer(host.astype(tensor.dtype, copy=False), backend.Device("cpu"),
                            tensor.device)
    with no_grad():
        tensor[...] = arr  # setitem: the write bumps the tensor's version
    return tensor


def _check_float(tensor: Tensor, fn: str) -> None:
    if tensor.dtype.kind != "f":
        raise TypeError(f"nn.init.{fn}: needs a floating-point tensor, got {tensor.dtype}")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with samples of U(a, b).

    Example:
        >>> w = tn.nn.init.uniform_(tn.empty(3, 5), -0.1, 0.1)
    """
    _check_float(tensor, "uniform_")
    gen = generator or backend.default_generator
    if on_counter_stream(tensor.shape, tensor.dtype):  # large: one kernel, into the tensor
        with no_grad():
            gen.device_uniform(tensor.device.xp, tensor.shape, tensor.dtype, a, b,
                               out=tensor.data)
        return tensor
    return _fill_from_host(tensor, gen.uniform(tensor.shape, tensor.dtype, a, b))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with samples of N(mean, std**2)."""
    _check_float(tensor, "normal_")
    gen = generator or backend.default_generator
    if on_counter_stream(tensor.shape, tensor.dtype):
        with no_grad():
            gen.device_normal(tensor.device.xp, tensor.shape, tensor.dtype, mean, std,
                              out=tensor.data)
        return tensor
    return _fill_from_host(tensor, gen.normal(tensor.shape, tensor.dtype, mean, std))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    with no_grad():
        tensor[...] = val
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    return constant_(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    return constant_(tensor, 1)


def _empty(tensor: Tensor, fn: str) -> bool:
    if tensor.numel() == 0:
        warnings.warn(f"nn.init.{fn}: initializing a zero-element tensor is a no-op",
                      stacklevel=3)
        return True
    return False


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # a uniform on [-a, a] has std a / sqrt(3)
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator=generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He et al. (2015): U(-bound, bound) with ``bound = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``; ``fan`` is ``fan_in`` (preserves the forward
    variance) or ``fan_out`` (preserves the backward variance).

    Example:
        >>> w = tn.nn.init.kaiming_uniform_(tn.empty(8, 4), a=math.sqrt(5))
    """
    if _empty(tensor, "kaiming_uniform_"):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator=generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He et al. (2015): N(0, std**2) with ``std = gain / sqrt(fan)``."""
    if _empty(tensor, "kaiming_normal_"):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator=generator)


def layer_default_(weight: Tensor, bias: Tensor | None = None) -> None:
    """PyTorch's default initialisation of ``Linear`` and ``Conv2d``: ``kaiming_uniform_`` with
    ``a=sqrt(5)`` on the weight (i.e. U(+-1/sqrt(fan_in))) and U(+-1/sqrt(fan_in)) on the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)


__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]
