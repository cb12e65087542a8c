"""Convolution and pooling layers (NCHW, and NCL in 1-D), with ``torch.nn``'s names, arguments and
defaults.

Functions (also in ``tn.nn.functional``) and their modules:

* ``conv2d`` / ``Conv2d``, ``conv1d`` / ``Conv1d``: the ``Conv2dOp`` / ``Conv1dOp`` primitives of
  ``tinynet/ops/conv.py`` (im2col through a strided view, one matrix product, col2im by kernel
  offsets; differentiable to any order; a 1-D geometry is planned as the 2-D one of the
  (N, C, 1, L) view, so both share one layout).
* ``max_pool2d`` / ``MaxPool2d``, ``max_pool1d`` / ``MaxPool1d``: the ``MaxPool2dOp`` /
  ``MaxPool1dOp`` primitives (gradient to each window's first maximum, as PyTorch).
* ``avg_pool2d`` / ``AvgPool2d``, ``avg_pool1d`` / ``AvgPool1d``: a convolution of each channel
  with a kernel of ones, divided by the window size (or by the number of input elements in it,
  ``count_include_pad=False``).
* ``adaptive_avg_pool2d`` / ``AdaptiveAvgPool2d``, ``adaptive_avg_pool1d`` /
  ``AdaptiveAvgPool1d``: PyTorch's bins (``floor(i H / OH)`` to ``ceil((i + 1) H / OH)``, any
  output size); a 2-D bin average is a row average times a column average, so the output is
  ``A_h @ x @ A_w^T`` with two small averaging matrices (``x @ A^T`` in 1-D).
* ``adaptive_max_pool1d`` / ``AdaptiveMaxPool1d``, ``adaptive_max_pool2d`` /
  ``AdaptiveMaxPool2d``: the same bins, each gathered into a window of the largest bin's size
  (short bins repeat their last element, which cannot change a maximum), then one max pooling
  with stride = window.

Every function accepts a batch ``(N, C, H, W)`` or a single image ``(C, H, W)`` (``(N, C, L)`` or
``(C, L)`` in 1-D), as PyTorch does.

Read next: ``tinynet/ops/conv.py`` (the primitives) and ``im2col.py`` (their layout),
``normalization.py``.
"""

from __future__ import annotations


import math

from ..creation import empty, ones, tensor
from ..ops.conv import convolution, max_pool, output_size
from ..tensor import Tensor
from . import init
from .arguments import integer, pair, single, spatial
from .module import Module, Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _batched(input: Tensor, op: str, dims: int = 2) -> tuple[Tensor, bool]:  # noqa: A002
    """(N, C, H, W) as is, or a single image (C, H, W) as a batch of one (and a flag to undo it);
    (N, C, L) or (C, L) for ``dims=1``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim == dims + 1:
        return input.unsqueeze(0), True
    if input.ndim != dims + 2:
        one, batch = ("(C, L)", "(N, C, L)") if dims == 1 else ("(C, H, W)", "(N, C, H, W)")
        raise ValueError(f"{op}: expected a {dims + 1}-D {one} or {dims + 2}-D {batch} input, got "
                         f"shape {tuple(input.shape)}")
    return input, False


def _unbatched(out: Tensor, squeeze: bool) -> Tensor:
    return out.squeeze(0) if squeeze else out


def _conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple,
                  op: str = "conv2d") -> tuple:
    """int, pair (1-tuple in 1-D), 'valid' or 'same' -> ((top, bottom), (left, right)) (or
    ``((left, right),)`` in 1-D: the rank of ``kernel``).

    'same' (stride 1 only, as PyTorch) pads ``dilation * (kernel - 1)`` in total, the odd element
    at the bottom/right.
    """
    dims = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * dims
        if padding != "same":
            raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of "
                             "'valid', 'same'")
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in spatial(op, "padding", padding, dims))


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


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,  # noqa: A002
           padding=0, dilation=1, groups: int = 1) -> Tensor:
    """1-D convolution (cross-correlation) of a batch of signals: ``torch.nn.functional.conv1d``.

    Args:
        input: ``(N, C_in, L)`` or ``(C_in, L)``.
        weight: ``(C_out, C_in / groups, k)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: an int (or a 1-tuple).
        padding: an int, ``'valid'`` (none) or ``'same'`` (output length = input length; stride
            1 only). Zeros are added on both sides.
        groups: split the channels into ``groups`` independent convolutions.

    Returns:
        ``(N, C_out, OL)`` with ``OL = floor((L + 2 p - d (k - 1) - 1) / s) + 1``.

    Example:
        >>> y = tn.nn.functional.conv1d(tn.randn(8, 1, 40), tn.randn(25, 1, 5), stride=2, padding=1)
        >>> y.shape
        (8, 25, 19)
    """
    x, squeeze = _batched(input, "conv1d", 1)
    stride = single("conv1d", "stride", stride, minimum=1)
    dilation = single("conv1d", "dilation", dilation, minimum=1)
    if not isinstance(weight, Tensor) or weight.ndim != 3:
        raise ValueError(f"conv1d: expected a 3-D weight (C_out, C_in/groups, k), got "
                         f"{getattr(weight, 'shape', weight)!r} for input of shape "
                         f"{tuple(input.shape)}")
    pads = _conv_padding(padding, tuple(weight.shape[2:]), stride, dilation, "conv1d")
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


def _pad_by_gather(x: Tensor, pads: tuple, mode: str, op: str = "conv2d") -> Tensor:
    """Non-zero padding modes as one gather per spatial axis (rows, then columns):
    differentiable to any order, gradients of repeated source pixels add up."""
    sizes = tuple(x.shape[2:])
    if mode == "reflect" and any(max(p) >= n for p, n in zip(pads, sizes)):
        raise ValueError(f"{op}: padding {pads} with padding_mode='reflect' must be smaller "
                         f"than the input size {sizes}")
    for axis, (size, (before, after)) in enumerate(zip(sizes, pads), 2):
        index = tensor(_pad_indices(size, before, after, mode), device=x.device)
        x = x[(slice(None),) * axis + (index,)]
    return x


class _ConvNd(Module):
    """The convolution layers' shared body: ``_dims`` spatial dims, errors naming ``_name``."""

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        name, dims = type(self).__name__, self._dims
        in_channels = integer(name, "in_channels", in_channels, minimum=1)
        out_channels = integer(name, "out_channels", out_channels, minimum=1)
        groups = integer(name, "groups", groups, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = spatial(name, "kernel_size", kernel_size, dims, minimum=1)
        self.stride = spatial(name, "stride", stride, dims, minimum=1)
        self.dilation = spatial(name, "dilation", dilation, dims, minimum=1)
        self.padding = padding if isinstance(padding, str) else \
            spatial(name, "padding", padding, dims)
        # Validates 'same'/'valid' now, as PyTorch does, rather than at the first forward.
        self._pads = _conv_padding(padding, self.kernel_size, self.stride, self.dilation, name)
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
        op = f"conv{self._dims}d"
        x, squeeze = _batched(input, op, self._dims)
        pads = self._pads
        if self.padding_mode != "zeros":
            x, pads = _pad_by_gather(x, pads, self.padding_mode, op), ((0, 0),) * self._dims
        out = convolution(x, self.weight, self.bias, self.stride, pads, self.dilation, self.groups)
        return _unbatched(out, squeeze)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
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

    _dims = 2


class Conv1d(_ConvNd):
    """1-D convolution layer, as ``torch.nn.Conv1d``: input ``(N, C_in, L)`` or ``(C_in, L)``.

    Parameters: ``weight`` ``(out_channels, in_channels / groups, kernel_size)`` and ``bias``
    ``(out_channels,)``, both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with ``fan_in = in_channels /
    groups * kernel_size`` (PyTorch's default).

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, dilation: an int (or a 1-tuple).
        padding: an int, ``'valid'`` or ``'same'`` (stride 1 only).
        groups: independent channel groups (``groups = in_channels``: depthwise).
        bias: whether to learn a bias.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        device, dtype: where and in which dtype to create the parameters.

    Example:
        >>> conv = tn.nn.Conv1d(1, 25, 5, stride=2, padding=1)
        >>> conv(tn.randn(100, 1, 40)).shape
        (100, 25, 19)
    """

    _dims = 1


# --- pooling -----------------------------------------------------------------------------------
def _pool_geometry(op: str, x: Tensor, kernel_size, stride, padding, dilation,
                   ceil_mode: bool, dims: int = 2) -> tuple:
    """Tuples (kernel, stride, padding, dilation), per-side padding with ceil_mode's extra rows
    and columns at the bottom/right, and the output size, following PyTorch's rules."""
    kernel, stride, pad, dil = _pool_arguments(op, kernel_size, stride, padding, dilation, dims)
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


def _pool_arguments(op: str, kernel_size, stride, padding, dilation, dims: int = 2) -> tuple:
    """Pooling's arguments as pairs (1-tuples for ``dims=1``), checked: kernel, stride (default:
    the kernel) and dilation positive, padding non-negative."""
    kernel = spatial(op, "kernel_size", kernel_size, dims, minimum=1)
    stride = kernel if stride is None or stride == [] else \
        spatial(op, "stride", stride, dims, minimum=1)
    return (kernel, stride, spatial(op, "padding", padding, dims),
            spatial(op, "dilation", dilation, dims, minimum=1))


def _max_pool(op: str, dims: int, input: Tensor, kernel_size, stride, padding,  # noqa: A002
              dilation, ceil_mode: bool, return_indices: bool) -> Tensor:
    if return_indices:
        raise NotImplementedError(f"{op}: return_indices=True is not supported")
    x, squeeze = _batched(input, op, dims)
    kernel, stride, pads, dil, _ = _pool_geometry(op, x, kernel_size, stride, padding, dilation,
                                                  ceil_mode, dims)
    return _unbatched(max_pool(x, kernel, stride, pads, dil, op=op), squeeze)


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
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,  # noqa: A002
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """1-D max pooling, as ``torch.nn.functional.max_pool1d``.

    Args:
        input: ``(N, C, L)`` or ``(C, L)``.
        kernel_size: an int.
        stride: an int; default ``kernel_size``.
        padding: implicit ``-inf`` on both sides, at most half the kernel size.
        dilation: spacing of the window's elements.
        ceil_mode: round the output length up (the last window may run past the input).
        return_indices: not supported (tinynet has no ``max_unpool1d``).

    Ties: the gradient of a window goes to its first maximum, as in PyTorch.

    Example:
        >>> tn.nn.functional.max_pool1d(tn.randn(8, 16, 40), 2).shape
        (8, 16, 20)
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _window_counts(size: int, n_out: int, k: int, s: int, lo: int, hi: int) -> list[int]:
    """For each output position along one axis, how many of its ``k`` window positions (in
    padded coordinates ``o * s + i``) fall in ``[lo, hi)``."""
    return [sum(lo <= o * s + i < hi for i in range(k)) for o in range(n_out)]


def _avg_pool(op: str, dims: int, input: Tensor, kernel_size, stride, padding,  # noqa: A002
              ceil_mode: bool, count_include_pad: bool, divisor_override) -> Tensor:
    x, squeeze = _batched(input, op, dims)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    kernel, stride, pads, _, out = _pool_geometry(op, x, kernel_size, stride, padding, 1,
                                                  ceil_mode, dims)
    n, c = x.shape[:2]
    sizes = tuple(x.shape[2:])
    # Window sums: every channel convolved with a kernel of ones (a constant: no weight gradient).
    ones_kernel = ones(1, 1, *kernel, dtype=x.dtype, device=x.device)
    sums = convolution(x.reshape(n * c, 1, *sizes), ones_kernel, None, stride, pads, (1,) * dims)
    sums = sums.reshape(n, c, *out)
    if divisor_override is not None:
        integer(op, "divisor_override", divisor_override, minimum=1)
        return _unbatched(sums / float(divisor_override), squeeze)
    ceil_extra = any(after != before for before, after in pads)
    if count_include_pad and not ceil_extra:
        return _unbatched(sums / float(math.prod(kernel)), squeeze)
    counts = []
    for size, n_out, k, s, (p, _) in zip(sizes, out, kernel, stride, pads):
        lo, hi = (0, size + 2 * p) if count_include_pad else (p, p + size)
        counts.append(_window_counts(size, n_out, k, s, lo, hi))
    table = counts[0] if dims == 1 else [[a * b for b in counts[1]] for a in counts[0]]
    divisor = tensor(table, dtype=x.dtype, device=x.device)  # (OL,) or (OH, OW)
    return _unbatched(sums / divisor, squeeze)


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
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0,  # noqa: A002
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """1-D average pooling, as ``torch.nn.functional.avg_pool1d`` (which has no
    ``divisor_override``).

    Args:
        input: ``(N, C, L)`` or ``(C, L)``.
        kernel_size: an int.
        stride: an int; default ``kernel_size``.
        padding: zeros on both sides, at most half the kernel.
        ceil_mode: round the output length up.
        count_include_pad: divide by the whole window (padding included; the part past the
            padding in ceil mode is not counted, as PyTorch), or only by its input elements.

    Example:
        >>> tn.nn.functional.avg_pool1d(tn.randn(8, 16, 40), 4).shape
        (8, 16, 10)
    """
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def _bins(size: int, n_out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins along one axis: ``[floor(i size / n_out), ceil((i + 1) size /
    n_out))`` for each output position ``i``."""
    return [((i * size) // n_out, -(-((i + 1) * size) // n_out)) for i in range(n_out)]


def _bin_matrix(size: int, n_out: int, x: Tensor) -> Tensor:
    """(n_out, size) averaging matrix of PyTorch's adaptive bins along one axis."""
    rows = [[1.0 / (end - start) if start <= j < end else 0.0 for j in range(size)]
            for start, end in _bins(size, n_out)]
    return tensor(rows, dtype=x.dtype, device=x.device)


def _adaptive_sizes(op: str, x: Tensor, output_size, dims: int) -> tuple:
    """``output_size`` (an int, or a tuple whose entries may be None: keep that input size) as
    one positive int per spatial dim."""
    sizes = tuple(x.shape[2:])
    if isinstance(output_size, (tuple, list)) and len(output_size) == dims:
        wanted = tuple(n if o is None else o for n, o in zip(sizes, output_size))
    else:
        wanted = spatial(op, "output_size", output_size, dims, minimum=1)
    return tuple(integer(op, "output_size", o, minimum=1) for o in wanted)


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
    oh, ow = _adaptive_sizes("adaptive_avg_pool2d", x, output_size, 2)
    if (oh, ow) == (1, 1):
        out = x.mean(axis=(2, 3), keepdims=True)
    else:
        # (OH, H) @ (N, C, H, W) @ (W, OW) -> (N, C, OH, OW)
        out = _bin_matrix(h, oh, x) @ x @ _bin_matrix(w, ow, x).T
    return _unbatched(out, squeeze)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average pooling to a fixed output length, as ``torch.nn.functional.adaptive_avg_pool1d``:
    output ``i`` averages inputs ``floor(i L / OL)`` to ``ceil((i + 1) L / OL)`` (exclusive).

    Args:
        input: ``(N, C, L)`` or ``(C, L)``.
        output_size: an int (or a 1-tuple).

    Example:
        >>> tn.nn.functional.adaptive_avg_pool1d(tn.randn(8, 25, 5), 1).shape
        (8, 25, 1)
    """
    x, squeeze = _batched(input, "adaptive_avg_pool1d", 1)
    (n_out,) = _adaptive_sizes("adaptive_avg_pool1d", x, output_size, 1)
    if n_out == 1:
        return _unbatched(x.mean(axis=2, keepdims=True), squeeze)
    return _unbatched(x @ _bin_matrix(x.shape[2], n_out, x).T, squeeze)  # (N, C, L) @ (L, OL)


def _adaptive_max_pool(op: str, dims: int, input: Tensor, output_size,  # noqa: A002
                       return_indices: bool) -> Tensor:
    """Each bin gathered into a window of the largest bin's size, short bins padded with their
    own last element (a repeat cannot change a maximum, and max pooling gives the gradient to the
    first maximum, so never to a repeat); then one max pooling with stride = window."""
    if return_indices:
        raise NotImplementedError(f"{op}: return_indices=True is not supported")
    x, squeeze = _batched(input, op, dims)
    out = _adaptive_sizes(op, x, output_size, dims)
    windows = []
    for axis, (size, n_out) in enumerate(zip(x.shape[2:], out), 2):
        bins = _bins(size, n_out)
        k = max(end - start for start, end in bins)
        windows.append(k)
        if k == 1 and n_out == size:
            continue  # every bin is one element: nothing to gather
        index = [min(start + j, end - 1) for start, end in bins for j in range(k)]
        x = x[(slice(None),) * axis + (tensor(index, device=x.device),)]
    kernel = tuple(windows)
    return _unbatched(max_pool(x, kernel, kernel, ((0, 0),) * dims, (1,) * dims, op=op), squeeze)


def adaptive_max_pool1d(input: Tensor, output_size,  # noqa: A002
                        return_indices: bool = False) -> Tensor:
    """Max pooling to a fixed output length, as ``torch.nn.functional.adaptive_max_pool1d``:
    output ``i`` is the maximum of inputs ``floor(i L / OL)`` to ``ceil((i + 1) L / OL)``
    (exclusive); its gradient goes to the bin's first maximum.

    Args:
        input: ``(N, C, L)`` or ``(C, L)``.
        output_size: an int (or a 1-tuple).
        return_indices: not supported.

    Example:
        >>> tn.nn.functional.adaptive_max_pool1d(tn.randn(8, 25, 5), 1).shape
        (8, 25, 1)
    """
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size,  # noqa: A002
                        return_indices: bool = False) -> Tensor:
    """Max pooling to a fixed output size, as ``torch.nn.functional.adaptive_max_pool2d``, with
    :func:`adaptive_avg_pool2d`'s bins; each bin's gradient goes to its first maximum.

    Args:
        input: ``(N, C, H, W)`` or ``(C, H, W)``.
        output_size: an int, or a pair whose entries may be None (keep that input size).
        return_indices: not supported.

    Example:
        >>> tn.nn.functional.adaptive_max_pool2d(tn.randn(8, 64, 7, 7), (2, 3)).shape
        (8, 64, 2, 3)
    """
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size, return_indices)


class _MaxPoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        name = type(self).__name__
        if return_indices:
            raise NotImplementedError(f"{name}: return_indices=True is not supported")
        _pool_arguments(name, kernel_size, stride, padding, dilation, self._dims)  # fail at once
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return _max_pool(f"max_pool{self._dims}d", self._dims, input, self.kernel_size,
                         self.stride, self.padding, self.dilation, self.ceil_mode, False)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling layer, as ``torch.nn.MaxPool2d`` (see :func:`max_pool2d`).

    Example:
        >>> tn.nn.MaxPool2d(2)(tn.randn(8, 16, 28, 28)).shape
        (8, 16, 14, 14)
    """

    _dims = 2


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling layer, as ``torch.nn.MaxPool1d`` (see :func:`max_pool1d`).

    Example:
        >>> tn.nn.MaxPool1d(2)(tn.randn(8, 16, 40)).shape
        (8, 16, 20)
    """

    _dims = 1


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


class AvgPool1d(Module):
    """1-D average pooling layer, as ``torch.nn.AvgPool1d`` (see :func:`avg_pool1d`).

    Example:
        >>> tn.nn.AvgPool1d(4)(tn.randn(8, 16, 40)).shape
        (8, 16, 10)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        kernel, stride, (pad,), _ = _pool_arguments("AvgPool1d", kernel_size, stride, padding, 1,
                                                    dims=1)
        self.kernel_size = kernel  # 1-tuples, as torch.nn.AvgPool1d stores them
        self.stride = stride
        self.padding = (pad,)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptivePoolNd(Module):
    _dims = 2

    def __init__(self, output_size):
        super().__init__()
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
        if isinstance(output_size, (tuple, list)) and len(output_size) not in (1, self._dims):
            raise TypeError(f"{type(self).__name__}: output_size must be an int or a tuple of "
                            f"{self._dims}, got {output_size!r}")
        for size in sizes:
            if size is not None:
                integer(type(self).__name__, "output_size", size, minimum=1)
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePoolNd):
    """Average pooling to a fixed output size, as ``torch.nn.AdaptiveAvgPool2d``.

    Example:
        >>> tn.nn.AdaptiveAvgPool2d((1, 1))(tn.randn(8, 64, 7, 7)).shape
        (8, 64, 1, 1)
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool1d(_AdaptivePoolNd):
    """Average pooling to a fixed output length, as ``torch.nn.AdaptiveAvgPool1d``.

    Example:
        >>> tn.nn.AdaptiveAvgPool1d(1)(tn.randn(8, 25, 5)).shape
        (8, 25, 1)
    """

    _dims = 1

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return adaptive_avg_pool1d(input, self.output_size)


class AdaptiveMaxPool2d(_AdaptivePoolNd):
    """Max pooling to a fixed output size, as ``torch.nn.AdaptiveMaxPool2d``
    (``return_indices`` is not supported).

    Example:
        >>> tn.nn.AdaptiveMaxPool2d((2, 3))(tn.randn(8, 64, 7, 7)).shape
        (8, 64, 2, 3)
    """

    def __init__(self, output_size, return_indices: bool = False):
        if return_indices:
            raise NotImplementedError("AdaptiveMaxPool2d: return_indices=True is not supported")
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return adaptive_max_pool2d(input, self.output_size)


class AdaptiveMaxPool1d(_AdaptivePoolNd):
    """Max pooling to a fixed output length, as ``torch.nn.AdaptiveMaxPool1d``
    (``return_indices`` is not supported).

    Example:
        >>> tn.nn.AdaptiveMaxPool1d(1)(tn.randn(8, 25, 5)).shape
        (8, 25, 1)
    """

    _dims = 1

    def __init__(self, output_size, return_indices: bool = False):
        if return_indices:
            raise NotImplementedError("AdaptiveMaxPool1d: return_indices=True is not supported")
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return adaptive_max_pool1d(input, self.output_size)
