"""Convolution and pooling layers (NCHW), with ``torch.nn``'s names, arguments and defaults.

Functions (also in ``tn.nn.functional``) and their modules:

* ``conv2d`` / ``Conv2d``: the ``Conv2dOp`` primitive of ``tinynet/ops/conv.py`` (im2col through a
  strided view, one matrix product, col2im by kernel offsets; differentiable to any order).
* ``max_pool2d`` / ``MaxPool2d``: the ``MaxPool2dOp`` primitive (gradient to each window's first
  maximum, as PyTorch).
* ``avg_pool2d`` / ``AvgPool2d``: a convolution of each channel with a kernel of ones, divided by
  the window size (or by the number of input pixels in it, ``count_include_pad=False``).
* ``adaptive_avg_pool2d`` / ``AdaptiveAvgPool2d``: PyTorch's bins (``floor(i H / OH)`` to
  ``ceil((i + 1) H / OH)``, any output size); a 2-D bin average is a row average times a column
  average, so the output is ``A_h @ x @ A_w^T`` with two small averaging matrices.

Every function accepts a batch ``(N, C, H, W)`` or a single image ``(C, H, W)``, as PyTorch does.

Read next: ``tinynet/ops/conv.py`` (the primitives) and ``im2col.py`` (their layout),
``normalization.py``.
"""

from __future__ import annotations


from ..creation import empty, ones, tensor
from ..ops.conv import convolution, max_pool, output_size
from ..tensor import Tensor
from . import init
from .arguments import integer, pair
from .module import Module, Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _batched(input: Tensor, op: str) -> tuple[Tensor, bool]:  # noqa: A002
    """(N, C, H, W) as is, or a single image (C, H, W) as a batch of one (and a flag to undo it)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim == 3:
        return input.unsqueeze(0), True
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                         f"{tuple(input.shape)}")
    return input, False


def _unbatched(out: Tensor, squeeze: bool) -> Tensor:
    return out.squeeze(0) if squeeze else out


def _conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """int, pair, 'valid' or 'same' -> ((top, bottom), (left, right)).

    'same' (stride 1 only, as PyTorch) pads ``dilation * (kernel - 1)`` in total, the odd element
    at the bottom/right.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"conv2d: invalid padding string {padding!r}, should be one of "
                             "'valid', 'same'")
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return tuple((t // 2, t - t // 2) for t in totals)
    ph, pw = pair("conv2d", "padding", padding)
    return (ph, ph), (pw, pw)


# --- Conv2d ------------------------------------------------------------------------------------
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,  # noqa: A002
           padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of a batch of images: ``torch.nn.functional.conv2d``.

    Args:
        input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: an int or a pair ``(H, W)``.
        padding: an int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size;
            stride 1 only). Zeros are added on both sides.
        groups: split the channels into ``groups`` independent convolutions.

    Returns:
        ``(N, C_out, OH, OW)`` with ``OH = floor((H + 2 pH - dH (kH - 1) - 1) / sH) + 1``.

    Example:
        >>> y = tn.nn.functional.conv2d(tn.randn(8, 3, 32, 32), tn.randn(16, 3, 3, 3), padding=1)
        >>> y.shape
        (8, 16, 32, 32)
    """
    x, squeeze = _batched(input, "conv2d")
    stride = pair("conv2d", "stride", stride, minimum=1)
    dilation = pair("conv2d", "dilation", dilation, minimum=1)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (C_out, C_in/groups, kH, kW), got "
                         f"{getattr(weight, 'shape', weight)!r} for input of shape "
                         f"{tuple(input.shape)}")
    pads = _conv_padding(padding, tuple(weight.shape[2:]), stride, dilation)
    return _unbatched(convolution(x, weight, bias, stride, pads, dilation, groups), squeeze)


def _pad_indices(size: int, before: int, after: int, mode: str) -> list[int]:
    """Source index of each position of an axis padded by ``before``/``after`` in ``mode``."""
    positions = range(-before, size + after)
    if mode == "circular":
        return [p % size for p in positions]
    if mode == "replicate":
        return [min(max(p, 0), size - 1) for p in positions]
    period = 2 * (size - 1) or 1  # reflect: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
    return [min(p % period, period - p % period) for p in positions]


def _pad_by_gather(x: Tensor, pads: tuple, mode: str) -> Tensor:
    """Non-zero padding modes as two gathers (rows, then columns): differentiable to any order,
    gradients of repeated source pixels add up."""
    (top, bottom), (left, right) = pads
    h, w = x.shape[2:]
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise ValueError(f"conv2d: padding {pads} with padding_mode='reflect' must be smaller "
                         f"than the input size {(h, w)}")
    rows = tensor(_pad_indices(h, top, bottom, mode), device=x.device)
    cols = tensor(_pad_indices(w, left, right, mode), device=x.device)
    return x[:, :, rows][:, :, :, cols]


class Conv2d(Module):
    """2-D convolution layer, as ``torch.nn.Conv2d``.

    Parameters: ``weight`` ``(out_channels, in_channels / groups, kH, kW)`` and ``bias``
    ``(out_channels,)``, both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with ``fan_in = in_channels /
    groups * kH * kW`` (PyTorch's default: ``kaiming_uniform_(a=sqrt(5))`` for the weight).

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, dilation: an int or a pair.
        padding: an int, a pair, ``'valid'`` or ``'same'``.
        groups: independent channel groups (``groups = in_channels``: depthwise).
        bias: whether to learn a bias.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        device, dtype: where and in which dtype to create the parameters.

    Example:
        >>> conv = tn.nn.Conv2d(3, 16, 3, padding=1)
        >>> conv(tn.randn(8, 3, 32, 32)).shape
        (8, 16, 32, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        in_channels = integer("Conv2d", "in_channels", in_channels, minimum=1)
        out_channels = integer("Conv2d", "out_channels", out_channels, minimum=1)
        groups = integer("Conv2d", "groups", groups, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, minimum=1)
        self.stride = pair("Conv2d", "stride", stride, minimum=1)
        self.dilation = pair("Conv2d", "dilation", dilation, minimum=1)
        self.padding = padding if isinstance(padding, str) else pair("Conv2d", "padding", padding)
        # Validates 'same'/'valid' now, as PyTorch does, rather than at the first forward.
        self._pads = _conv_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.groups = groups
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(empty(shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.layer_default_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x, squeeze = _batched(input, "conv2d")
        pads = self._pads
        if self.padding_mode != "zeros":
            x, pads = _pad_by_gather(x, pads, self.padding_mode), ((0, 0), (0, 0))
        out = convolution(x, self.weight, self.bias, self.stride, pads, self.dilation, self.groups)
        return _unbatched(out, squeeze)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


# --- pooling -----------------------------------------------------------------------------------
def _pool_geometry(op: str, x: Tensor, kernel_size, stride, padding, dilation,
                   ceil_mode: bool) -> tuple:
    """Pairs (kernel, stride, padding, dilation), per-side padding with ceil_mode's extra rows and
    columns at the bottom/right, and the output size, following PyTorch's rules."""
    kernel, stride, pad, dil = _pool_arguments(op, kernel_size, stride, padding, dilation)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(f"{op}: pad should be at most half of kernel size, but got pad={pad} "
                         f"and kernel_size={kernel}")
    pads, out = [], []
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, pad, dil):
        n = output_size(size, k, s, 2 * p, d)
        if ceil_mode:
            n = -(-(size + 2 * p - d * (k - 1) - 1) // s) + 1
            if (n - 1) * s >= size + p:  # the last window must start inside the input or padding
                n -= 1
        extra = max(0, (n - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
        pads.append((p, p + extra))
        out.append(n)
    if min(out) < 1:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} is too small for kernel_size="
                         f"{kernel}, stride={stride}, padding={pad}, dilation={dil}: output size "
                         f"{tuple(out)}")
    return kernel, stride, tuple(pads), dil, tuple(out)


def _pool_arguments(op: str, kernel_size, stride, padding, dilation) -> tuple:
    """Pooling's arguments as pairs, checked: kernel, stride (default: the kernel) and dilation
    positive, padding non-negative."""
    kernel = pair(op, "kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None or stride == [] else pair(op, "stride", stride, minimum=1)
    return kernel, stride, pair(op, "padding", padding), pair(op, "dilation", dilation, minimum=1)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,  # noqa: A002
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Args:
        input: ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: an int or a pair.
        stride: an int or a pair; default ``kernel_size``.
        padding: implicit ``-inf`` on both sides, at most half the kernel size.
        dilation: spacing of the window's elements.
        ceil_mode: round the output size up (the last window may run past the input).
        return_indices: not supported (tinynet has no ``max_unpool2d``).

    Ties: the whole gradient of a window goes to its first maximum in row-major order (PyTorch's
    rule on CPU); overlapping windows that pick the same pixel add up.

    Example:
        >>> tn.nn.functional.max_pool2d(tn.randn(8, 16, 28, 28), 2).shape
        (8, 16, 14, 14)
    """
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices=True is not supported")
    x, squeeze = _batched(input, "max_pool2d")
    kernel, stride, pads, dil, _ = _pool_geometry("max_pool2d", x, kernel_size, stride, padding,
                                                  dilation, ceil_mode)
    return _unbatched(max_pool(x, kernel, stride, pads, dil), squeeze)


def _window_counts(size: int, n_out: int, k: int, s: int, lo: int, hi: int) -> list[int]:
    """For each output position along one axis, how many of its ``k`` window positions (in
    padded coordinates ``o * s + i``) fall in ``[lo, hi)``."""
    return [sum(lo <= o * s + i < hi for i in range(k)) for o in range(n_out)]


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0,  # noqa: A002
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Args:
        input: ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: an int or a pair.
        stride: an int or a pair; default ``kernel_size``.
        padding: zeros on both sides, at most half the kernel.
        ceil_mode: round the output size up.
        count_include_pad: divide by the whole window (padding included; the part past the
            padding in ceil mode is not counted, as PyTorch), or only by its input pixels.
        divisor_override: divide every sum by this instead.

    Example:
        >>> tn.nn.functional.avg_pool2d(tn.randn(8, 16, 28, 28), 2).shape
        (8, 16, 14, 14)
    """
    x, squeeze = _batched(input, "avg_pool2d")
    if x.dtype.kind != "f":
        raise TypeError(f"avg_pool2d: expected a floating-point input, got {x.dtype}")
    kernel, stride, pads, _, (oh, ow) = _pool_geometry("avg_pool2d", x, kernel_size, stride,
                                                       padding, 1, ceil_mode)
    n, c, h, w = x.shape
    # Window sums: every channel convolved with a kernel of ones (a constant: no weight gradient).
    ones_kernel = ones(1, 1, *kernel, dtype=x.dtype, device=x.device)
    sums = convolution(x.reshape(n * c, 1, h, w), ones_kernel, None, stride, pads)
    sums = sums.reshape(n, c, oh, ow)
    if divisor_override is not None:
        integer("avg_pool2d", "divisor_override", divisor_override, minimum=1)
        return _unbatched(sums / float(divisor_override), squeeze)
    ceil_extra = pads[0][1] != pads[0][0] or pads[1][1] != pads[1][0]
    if count_include_pad and not ceil_extra:
        return _unbatched(sums / float(kernel[0] * kernel[1]), squeeze)
    counts = []
    for size, n_out, k, s, (p, _) in zip((h, w), (oh, ow), kernel, stride, pads):
        lo, hi = (0, size + 2 * p) if count_include_pad else (p, p + size)
        counts.append(_window_counts(size, n_out, k, s, lo, hi))
    divisor = tensor([[a * b for b in counts[1]] for a in counts[0]], dtype=x.dtype,
                     device=x.device)  # (OH, OW)
    return _unbatched(sums / divisor, squeeze)


def _bin_matrix(size: int, n_out: int, x: Tensor) -> Tensor:
    """(n_out, size) averaging matrix of PyTorch's adaptive bins along one axis."""
    rows = []
    for i in range(n_out):
        start, end = (i * size) // n_out, -(-((i + 1) * size) // n_out)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(size)])
    return tensor(rows, dtype=x.dtype, device=x.device)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output pixel ``(i, j)`` averages input rows ``floor(i H / OH)`` to ``ceil((i + 1) H / OH)``
    (exclusive) and the same for columns: any output size, bins may overlap or differ in size.

    Args:
        input: ``(N, C, H, W)`` or ``(C, H, W)``.
        output_size: an int, or a pair whose entries may be None (keep that input size).

    Example:
        >>> tn.nn.functional.adaptive_avg_pool2d(tn.randn(8, 64, 7, 7), 1).shape
        (8, 64, 1, 1)
    """
    x, squeeze = _batched(input, "adaptive_avg_pool2d")
    h, w = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        oh, ow = (h if output_size[0] is None else output_size[0],
                  w if output_size[1] is None else output_size[1])
    else:
        oh, ow = pair("adaptive_avg_pool2d", "output_size", output_size, minimum=1)
    oh = integer("adaptive_avg_pool2d", "output_size", oh, minimum=1)
    ow = integer("adaptive_avg_pool2d", "output_size", ow, minimum=1)
    if (oh, ow) == (1, 1):
        out = x.mean(axis=(2, 3), keepdims=True)
    else:
        # (OH, H) @ (N, C, H, W) @ (W, OW) -> (N, C, OH, OW)
        out = _bin_matrix(h, oh, x) @ x @ _bin_matrix(w, ow, x).T
    return _unbatched(out, squeeze)


class MaxPool2d(Module):
    """2-D max pooling layer, as ``torch.nn.MaxPool2d`` (see :func:`max_pool2d`).

    Example:
        >>> tn.nn.MaxPool2d(2)(tn.randn(8, 16, 28, 28)).shape
        (8, 16, 14, 14)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise NotImplementedError("MaxPool2d: return_indices=True is not supported")
        _pool_arguments("MaxPool2d", kernel_size, stride, padding, dilation)  # fail at once
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """2-D average pooling layer, as ``torch.nn.AvgPool2d`` (see :func:`avg_pool2d`).

    Example:
        >>> tn.nn.AvgPool2d(2)(tn.randn(8, 16, 28, 28)).shape
        (8, 16, 14, 14)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        _pool_arguments("AvgPool2d", kernel_size, stride, padding, 1)  # fail at once
        if divisor_override is not None:
            integer("AvgPool2d", "divisor_override", divisor_override, minimum=1)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, as ``torch.nn.AdaptiveAvgPool2d``.

    Example:
        >>> tn.nn.AdaptiveAvgPool2d((1, 1))(tn.randn(8, 64, 7, 7)).shape
        (8, 64, 1, 1)
    """

    def __init__(self, output_size):
        super().__init__()
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
        for size in sizes:
            if size is not None:
                integer("AdaptiveAvgPool2d", "output_size", size, minimum=1)
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
