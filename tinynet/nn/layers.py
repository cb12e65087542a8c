"""Core layers: ``Linear``, ``Flatten``, ``Identity``, ``Dropout``, ``Embedding``, each a thin
Module over a function (``linear``, ``dropout``, ``embedding``; all in ``tn.nn.functional``).

``linear`` is one op, defined with its derivative in ``tinynet/ops/linalg.py``; ``dropout`` and
``embedding`` are written here, composed from tinynet ops (indexing, where), so gradients of any
order come from those ops' backward formulas. Default initialisation is PyTorch's for each layer.

Read next: ``normalization.py``, ``activation.py``, ``init.py``.
"""

from __future__ import annotations

from .. import backend
from ..autograd import no_grad
from ..creation import empty
from ..ops import linear, where
from ..ops.indexing import GetItemOp
from ..tensor import Tensor
from . import init
from .arguments import integer
from .module import Module, Parameter


# --- Linear ------------------------------------------------------------------------------------
class Linear(Module):
    """A fully connected layer: ``y = x @ W.T + b``.

    Weight ``(out_features, in_features)`` from ``kaiming_uniform_(a=sqrt(5))``, i.e.
    U(-1/sqrt(in), 1/sqrt(in)); bias U(-1/sqrt(in), 1/sqrt(in)): PyTorch's defaults.

    Example:
        >>> fc = tn.nn.Linear(4, 2)
        >>> fc(tn.randn(8, 4)).shape
        (8, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.in_features = integer("Linear", "in_features", in_features)
        self.out_features = integer("Linear", "out_features", out_features)
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.layer_default_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


# --- Flatten, Identity -------------------------------------------------------------------------
class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` into one (by default all but the batch dimension).

    Example:
        >>> tn.nn.Flatten()(tn.zeros(2, 3, 4, 5)).shape
        (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input. Arguments are accepted and ignored (as in PyTorch), so it can stand in
    for any layer, e.g. to remove a model's classifier head."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


# --- Dropout -----------------------------------------------------------------------------------
def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            generator=None) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by ``1/(1-p)``
    (so the expected value is unchanged and evaluation needs no rescaling).

    The mask comes from ``generator`` (or the default, seeded by ``tn.manual_seed``): on the CPU
    it is drawn from the host stream; on a GPU (and the stand-in device) one kernel draws it from
    the counter stream where the input lives, with no host draw and no upload. So a seed
    reproduces a run on each device, and the masks of the stand-in and CUDA are the same
    (``backend/random.py``). With ``training=False`` or ``p=0`` the input is returned as is;
    ``p=1`` gives zeros.

    Example:
        >>> y = tn.nn.functional.dropout(tn.ones(4, 4), p=0.25)  # entries are 0 or 4/3
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0  # still recorded: the gradient is zero, as in PyTorch
    gen = generator or backend.default_generator
    dtype = input.dtype if input.dtype.kind == "f" else backend.get_default_dtype()
    scale = dtype.type(1.0 / (1.0 - p))
    device = input.device
    if device.type == "cpu":
        keep = gen.uniform(input.shape, dtype) < (1.0 - p)  # host bool array, P(keep) = 1 - p
        mask = keep.astype(dtype) * scale
    else:
        mask = device.xp.empty(input.shape, dtype=dtype)
        key, start = gen.take(mask.size)
        keep = backend.float32.type(1.0 - p)  # the kernel compares in float32
        backend.kernels.DROPOUT_MASK(device.xp, keep, scale, key, start, mask)
    return input * Tensor.wrap(mask, device)


class Dropout(Module):
    """Inverted dropout, active only in training mode (``model.train()``); identity in eval.

    Args:
        p: probability of zeroing an element.
        inplace: accepted so PyTorch code ports unchanged; the result is computed out of place.
        generator: a private ``tn.Generator`` for the masks (default: tinynet's default stream).

    Example:
        >>> drop = tn.nn.Dropout(0.1)
        >>> drop.eval()(x) is x
        True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, generator=None):
        super().__init__()
        _check_p(p)
        self.p = p
        self.inplace = inplace
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# --- Embedding ---------------------------------------------------------------------------------
def _resolve_padding_idx(padding_idx: int | None, num_embeddings: int) -> int | None:
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx {padding_idx} must be within num_embeddings "
                         f"({num_embeddings})")
    return padding_idx % num_embeddings


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by integer indices: ``weight[input]``.

    Args:
        input: integer tensor of any shape ``(*)`` with values in ``[0, num_embeddings)``.
        weight: ``(num_embeddings, D)``.
        padding_idx: a row that is looked up as usual but receives no gradient.

    Returns:
        ``(*, D)``.

    Raises:
        TypeError: ``input`` is not an integer tensor.
        IndexError: an index is out of range (the message gives the offending value). On the
            CPU at the call; on a GPU at the next read of a value (``docs/devices.md``).
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"embedding: indices must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor (e.g. tn.int64), got "
                        f"{input.dtype}")
    num = weight.shape[0]
    device = input.device
    note = "" if device.type == "cpu" else (
        f"; checked on {device} and reported at the first read of a value after it")
    # On the CPU the check reads min and max now (free); on a GPU it is one kernel whose failure
    # raises at the next read of a value (backend/checks.py): no host sync per call.
    backend.checks.index_range(
        device.xp, device, input.data, 0, num, ("embedding", num), IndexError,
        lambda count, bad: (f"embedding: index {bad} is out of range for an embedding table "
                            f"with {num} rows (valid indices are 0..{num - 1}){note}"))
    out = GetItemOp.apply(weight, index=input.data)  # (*, D): checked above, once
    padding_idx = _resolve_padding_idx(padding_idx, num)
    if padding_idx is not None:
        # Same values, but the padding positions take them from a detached weight: no gradient
        # reaches the padding row, whatever it holds.
        is_pad = (input == padding_idx).unsqueeze(-1)  # (*, 1)
        out = where(is_pad, out.detach(), out)
    return out


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    Weight ``(num_embeddings, embedding_dim)`` from N(0, 1) (PyTorch's default), with the
    ``padding_idx`` row (if given) set to zero and excluded from gradient updates.

    Example:
        >>> emb = tn.nn.Embedding(10, 3, padding_idx=0)
        >>> emb(tn.tensor([[1, 2, 0]])).shape
        (1, 3, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device=None, dtype=None, *, _weight: Tensor | None = None):
        super().__init__()
        self.num_embeddings = integer("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = integer("Embedding", "embedding_dim", embedding_dim)
        self.padding_idx = _resolve_padding_idx(padding_idx, num_embeddings)
        if _weight is None:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype,
                                          device=device))
            self.reset_parameters()
        else:  # a given table (from_pretrained): copied as is, no random draw spent
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight.detach().clone())

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: int | None = None) -> Embedding:
        """An Embedding holding a copy of ``embeddings`` (2-D), frozen unless ``freeze=False``."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, dim = embeddings.shape
        emb = cls(rows, dim, padding_idx=padding_idx, _weight=embeddings)
        emb.weight.requires_grad_(not freeze)
        return emb

    def forward(self, input: Tensor) -> Tensor:
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


__all__ = ["Dropout", "Embedding", "Flatten", "Identity", "Linear", "dropout", "embedding",
           "linear"]
