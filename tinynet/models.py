"""``tn.models``: small ready-made networks for the built-in datasets, built from ``tn.nn``.

``mlp`` is the default model of ``tinynet train`` (flattened 8x8 digits: 64 features); ``cnn`` is a
two-block convolutional network for small grey images (8x8 digits, 28x28 MNIST). Both return a plain
``nn.Sequential``, so ``print(model)`` shows every layer and the state-dict keys are the usual
``"0.weight"``, ``"1.bias"``, ... Read ``tinynet/nn/`` first; ``tinynet/cli.py`` uses these.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import nn


def mlp(in_features: int = 64, hidden: Sequence[int] = (128, 64), num_classes: int = 10,
        dropout: float = 0.1) -> nn.Sequential:
    """A multi-layer perceptron: ``[Linear -> ReLU -> Dropout] * len(hidden) -> Linear``.

    Inputs of any shape ``(B, ...)`` are flattened to ``(B, in_features)`` first, so the same model
    takes digits as ``(B, 64)`` vectors or ``(B, 1, 8, 8)`` images.

    Args:
        in_features: number of input features after flattening (64 for 8x8 digits).
        hidden: width of each hidden layer, in order; ``()`` gives a linear (softmax) classifier.
        num_classes: number of output logits.
        dropout: dropout probability after every hidden layer (``0`` leaves Dropout out).

    Returns:
        An ``nn.Sequential`` mapping ``(B, in_features)`` to logits ``(B, num_classes)``.

    Example:
        >>> model = tn.models.mlp()
        >>> model(tn.randn(32, 64)).shape
        (32, 10)
    """
    _check_positive("in_features", in_features)
    _check_positive("num_classes", num_classes)
    _check_dropout(dropout)
    layers: list = [nn.Flatten()]
    width = in_features
    for size in hidden:
        _check_positive("hidden width", size)
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def cnn(in_channels: int = 1, num_classes: int = 10, image_size: int = 8,
        channels: Sequence[int] = (32, 64), hidden: int = 128, dropout: float = 0.1,
        batch_norm: bool = True) -> nn.Sequential:
    """A small convolutional network for grey images such as 8x8 digits or 28x28 MNIST.

    Each block is ``Conv2d(3x3, padding 1) -> ReLU -> BatchNorm2d -> MaxPool2d(2)``: the
    convolution keeps the image size, the pooling halves it. After ``len(channels)`` blocks the
    feature maps ``(B, channels[-1], S, S)`` with ``S = image_size // 2**len(channels)`` are
    flattened and classified by ``Linear -> ReLU -> Dropout -> Linear``.

    For 8x8 digits: (B, 1, 8, 8) -> (B, 32, 4, 4) -> (B, 64, 2, 2) -> 256 features -> 128 -> 10.

    Args:
        in_channels: channels of the input image (1 for grey).
        num_classes: number of output logits.
        image_size: height (= width) of the input images.
        channels: output channels of each convolutional block.
        hidden: width of the fully connected hidden layer (``0``: classify the features directly).
        dropout: dropout probability before the last layer (``0`` leaves Dropout out).
        batch_norm: put a ``BatchNorm2d`` in every block.

    Returns:
        An ``nn.Sequential`` mapping ``(B, in_channels, image_size, image_size)`` to
        ``(B, num_classes)`` logits.

    Example:
        >>> model = tn.models.cnn(image_size=28)
        >>> model(tn.randn(4, 1, 28, 28)).shape
        (4, 10)
    """
    _check_positive("in_channels", in_channels)
    _check_positive("num_classes", num_classes)
    _check_dropout(dropout)
    if not channels:
        raise ValueError("cnn: channels must name at least one convolutional block")
    size = image_size
    for _ in channels:
        size //= 2  # each MaxPool2d(2) floors the size, as 7 -> 3
    if size < 1:
        raise ValueError(f"cnn: image_size {image_size} is too small for {len(channels)} "
                         f"pooling blocks (each halves it); use fewer channels entries")
    layers: list = []
    c_in = in_channels
    for c_out in channels:
        _check_positive("channels", c_out)
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
        if batch_norm:
            # After the ReLU, so BatchNorm sees (and re-centres) the non-negative activations.
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers.append(nn.Flatten())
    features = c_in * size * size
    if hidden:
        layers += [nn.Linear(features, hidden), nn.ReLU()]
        features = hidden
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
