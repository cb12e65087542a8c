"""Recurrent layers: ``RNN`` (tanh or ReLU), ``LSTM`` and ``GRU``, with ``torch.nn``'s signatures,
parameter names and shapes, gate order and default initialisation.

Each layer runs, per layer and direction, one matrix product for the input projection of every time
step at once, then one primitive op for all time steps (``RNNSequenceOp``, ``LSTMSequenceOp``,
``GRUSequenceOp`` in ``tinynet/ops/rnn.py``): a Python loop over time steps (never over samples)
inside the op, and its backward is backpropagation through time written out, with the hidden
weight's gradient in one product over all steps. The step functions (:func:`rnn_tanh_cell`,
:func:`rnn_relu_cell`, :func:`lstm_cell`, :func:`gru_cell`) are one step each, a primitive with
its gate derivatives written out, for code that writes its own loop (and the reference the
sequence ops are tested against); the ``*_reference`` functions compose the same steps from
smaller ops and are what the step primitives are tested against.

Read ``module.py`` first (Parameter registration, state dicts).
"""

from __future__ import annotations

import math
import warnings

from .. import backend
from ..creation import zeros
from ..ops import cat, linear, matmul, relu, sigmoid, stack, tanh
from ..ops.rnn import (  # noqa: F401 - the step and sequence functions are public here too
    GRUCellOp, GRUSequenceOp, LSTMCellOp, LSTMSequenceOp, RNNReluCellOp, RNNSequenceOp,
    RNNTanhCellOp, gru_cell, gru_sequence, lstm_cell_hc, lstm_sequence, rnn_relu_cell,
    rnn_sequence, rnn_tanh_cell,
)
from ..tensor import Tensor
from . import init
from .arguments import integer, number
from .layers import dropout
from .module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# --- cell steps (the functional form) ---------------------------------------------------------
# Each step takes the input part of the pre-activation, ``xw = x W_ih^T + b_ih`` (B, G), already
# computed for all time steps at once by the layer, and the transposed hidden weight ``w_hh_t``
# (H, G), so that the loop over time does one matrix product per step. Each is one primitive op
# (``tinynet/ops/rnn.py``: forward and the gate derivatives written out); the ``*_reference``
# versions below compose the same step from ~15 smaller ops and are what the primitives are
# tested against (values, first and second derivatives).

def lstm_cell(xw: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor,
              b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One LSTM step, PyTorch's gate order i, f, g, o along the 4H axis of ``xw`` (B, 4H)::

        i, f, g, o = split(xw + h W_hh^T + b_hh)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    Returns ``(h', c')``, each (B, H). The primitive (:func:`tinynet.ops.rnn.lstm_cell_hc`)
    carries the state packed as ``[h | c]``; the layers use it directly, this function packs and
    unpacks around it.
    """
    H = h.shape[-1]
    hc = lstm_cell_hc(xw, cat([h, c], axis=-1), w_hh_t, b_hh)
    return hc[:, :H], hc[:, H:]


# --- the composed references ----------------------------------------------------------------------

def rnn_tanh_cell_reference(xw: Tensor, h: Tensor, w_hh_t: Tensor,
                            b_hh: Tensor | None = None) -> Tensor:
    """:func:`rnn_tanh_cell` composed of matmul, add and tanh (the reference it is tested
    against)."""
    pre = xw + matmul(h, w_hh_t)  # (B, H)
    return tanh(pre if b_hh is None else pre + b_hh)


def rnn_relu_cell_reference(xw: Tensor, h: Tensor, w_hh_t: Tensor,
                            b_hh: Tensor | None = None) -> Tensor:
    """:func:`rnn_relu_cell` composed of matmul, add and relu."""
    pre = xw + matmul(h, w_hh_t)  # (B, H)
    return relu(pre if b_hh is None else pre + b_hh)


def lstm_cell_reference(xw: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor,
                        b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """:func:`lstm_cell` composed of matmul, sigmoid, tanh, slices and products; returns
    ``(h', c')``."""
    H = h.shape[-1]
    gates = xw + matmul(h, w_hh_t)  # (B, 4H)
    if b_hh is not None:
        gates = gates + b_hh
    # One sigmoid over all four blocks is fewer ops than three; the g block is then unused.
    act = sigmoid(gates)
    i, f, o = act[..., :H], act[..., H:2 * H], act[..., 3 * H:]
    g = tanh(gates[..., 2 * H:3 * H])
    c = f * c + i * g
    return o * tanh(c), c


def gru_cell_reference(xw: Tensor, h: Tensor, w_hh_t: Tensor,
                       b_hh: Tensor | None = None) -> Tensor:
    """:func:`gru_cell` composed of smaller ops, PyTorch's gate order r, z, n::

        hw = h W_hh^T + b_hh
        r = sigmoid(xw_r + hw_r),  z = sigmoid(xw_z + hw_z)
        n = tanh(xw_n + r * hw_n)              (b_hn inside the product, as PyTorch)
        h' = (1 - z) * n + z * h  =  n + z * (h - n)
    """
    H = h.shape[-1]
    hw = matmul(h, w_hh_t)  # (B, 3H)
    if b_hh is not None:
        hw = hw + b_hh
    rz = sigmoid(xw[..., :2 * H] + hw[..., :2 * H])  # (B, 2H)
    r, z = rz[..., :H], rz[..., H:]
    n = tanh(xw[..., 2 * H:] + r * hw[..., 2 * H:])
    return n + z * (h - n)


# --- one layer, one direction -------------------------------------------------------------------

def _run_direction(mode: str, x: Tensor, h: Tensor, c: Tensor | None, weights: list,
                   reverse: bool) -> tuple:
    """Run one direction of one layer over ``x`` (L, B, H_in) from state ``h`` (B, H) (and ``c``).

    Returns ``(outputs (L, B, H), h_last, c_last)``; outputs are in time order in both directions.
    """
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if len(weights) == 4 else (None, None)
    L, B, H_in = x.shape
    # The input projection of all time steps in one product: (L*B, H_in) @ (H_in, G), with the
    # biases added in the same op.
    bias = b_ih
    if b_ih is not None and mode != "GRU":  # b_hh adds to the same pre-activation; GRU keeps
        bias, b_hh = b_ih + b_hh, None      # b_hn inside r * (.), so it stays in the step
    xw = linear(x.reshape(L * B, H_in), w_ih, bias).reshape(L, B, w_ih.shape[0])  # (L, B, G)
    w_hh_t = w_hh.T  # (H, G), transposed once per layer rather than once per step
    # all steps in one node, whose backward is the whole of backpropagation through time
    if mode == "LSTM":
        out, c = LSTMSequenceOp.apply(xw, h, c, w_hh_t, reverse=reverse)
    elif mode == "GRU":
        out = GRUSequenceOp.apply(xw, h, w_hh_t, *([] if b_hh is None else [b_hh]),
                                  reverse=reverse)
    else:
        out = RNNSequenceOp.apply(xw, h, w_hh_t, nonlinearity=mode[4:].lower(), reverse=reverse)
    return out, out[0 if reverse else L - 1], c  # (L, B, H), the last h taken, the last c


# --- the modules --------------------------------------------------------------------------------

class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU`` (``mode`` picks the cell).

    Parameters, per layer ``k`` and direction (suffix ``_reverse`` for the backward one), registered
    in PyTorch's order: ``weight_ih_l{k}`` (G, H_in_k), ``weight_hh_l{k}`` (G, H),
    ``bias_ih_l{k}`` (G,), ``bias_hh_l{k}`` (G,), with G = gates * hidden_size and
    H_in_k = input_size for k = 0, else hidden_size * num_directions.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        name = _LAYER_NAMES[mode]
        input_size = integer(name, "input_size", input_size, minimum=1)
        hidden_size = integer(name, "hidden_size", hidden_size, minimum=1)
        num_layers = integer(name, "num_layers", num_layers, minimum=1)
        dropout = number(name, "dropout", dropout, 0.0, 1.0)
        if dropout and num_layers == 1:
            # PyTorch warns too: dropout acts between layers, so one layer never uses it.
            warnings.warn(f"{name}: dropout={dropout} and num_layers=1: dropout is applied after "
                          "every layer but the last, so it has no effect", stacklevel=3)
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size > 0 (LSTM projections) is not supported")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = 0
        num_directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        dev = backend.get_default_device() if device is None else backend.Device(device)
        dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_input)),
                          ("weight_hh", (gate_size, hidden_size))]
                if self.bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                for kind, shape in shapes:
                    setattr(self, kind + suffix,
                            Parameter(zeros(*shape, dtype=dtype, device=dev)))
                    self._flat_weights_names.append(kind + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch,
        drawn from the seeded default generator in registration order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """Does nothing (PyTorch's cuDNN weight packing); kept so ported code runs unchanged."""

    @property
    def all_weights(self) -> list:
        """The parameters grouped per layer and direction: ``[[w_ih, w_hh, b_ih, b_hh], ...]``."""
        per = 4 if self.bias else 2
        flat = [getattr(self, n) for n in self._flat_weights_names]
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, input: Tensor, hx=None):  # noqa: A002 - PyTorch's argument name
        x, batched = self._check_input(input)
        if not batched:
            x = x.unsqueeze(1)  # (L, 1, H_in)
        elif self.batch_first:
            x = x.transpose(0, 1)  # (B, L, H_in) -> (L, B, H_in)
        h0, c0 = self._initial_states(hx, x, batched)  # (layers * D, B, H)
        D = 2 if self.bidirectional else 1
        per = 4 if self.bias else 2
        flat = [getattr(self, n) for n in self._flat_weights_names]
        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                k = layer * D + direction
                c_k = None if c0 is None else c0[k]
                out, h, c = _run_direction(self.mode, layer_input, h0[k], c_k,
                                           flat[k * per:(k + 1) * per], reverse=direction == 1)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = outs[0] if D == 1 else cat(outs, axis=2)  # (L, B, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = dropout(layer_input, self.dropout)  # seeded, inverted
        output, h_n = layer_input, stack(h_n)  # (L, B, D*H), (layers * D, B, H)
        c_n = stack(c_n) if c0 is not None else None
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)  # (B, L, D*H); states stay (layers * D, B, H)
        return (output, (h_n, c_n)) if self.mode == "LSTM" else (output, h_n)

    # --- argument checks -------------------------------------------------------------------------
    def _describe(self) -> str:
        return f"{_LAYER_NAMES[self.mode]}({self.extra_repr()})"

    def _check_input(self, input) -> tuple:
        if not isinstance(input, Tensor):
            raise TypeError(f"{self._describe()}: input must be a Tensor, got "
                            f"{type(input).__name__} (packed sequences are not supported)")
        if input.ndim not in (2, 3):
            layout = "(B, L, H_in)" if self.batch_first else "(L, B, H_in)"
            raise ValueError(f"{self._describe()}: expected a 3-D input {layout} or a 2-D "
                             f"unbatched one (L, H_in), got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{self._describe()}: input has shape {tuple(input.shape)}, whose "
                             f"last dimension should be input_size={self.input_size}, got "
                             f"{input.shape[-1]}")
        if input.shape[0 if input.ndim == 2 or not self.batch_first else 1] == 0:
            raise ValueError(f"{self._describe()}: the sequence is empty (input shape "
                             f"{tuple(input.shape)}); it needs at least one time step")
        if input.dtype.kind != "f":
            raise TypeError(f"{self._describe()}: input must be floating point, got {input.dtype}")
        weight = self.weight_ih_l0
        if input.device is not weight.device:
            raise RuntimeError(f"{self._describe()}: input on {input.device}, parameters on "
                               f"{weight.device}; move one of them with .to()")
        if input.dtype != weight.dtype:  # PyTorch refuses too; each step is one op of one dtype
            raise ValueError(f"{self._describe()}: input must have the parameters' dtype "
                             f"{weight.dtype}, got {input.dtype}; convert one of them (x.to("
                             f"{weight.dtype}) or model.to(dtype={input.dtype}))")
        return input, input.ndim == 3

    def _initial_states(self, hx, x: Tensor, batched: bool) -> tuple:
        """(h0, c0) as (layers * D, B, H) tensors, zeros where not given; c0 is None unless LSTM."""
        D = 2 if self.bidirectional else 1
        B = x.shape[1]
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = zeros(self.num_layers * D, B, self.hidden_size, dtype=x.dtype, device=x.device)
            return h0, (h0 if lstm else None)
        if lstm:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"{self._describe()}: hx must be a tuple (h_0, c_0), got "
                                f"{type(hx).__name__}")
            return (self._check_state(hx[0], "h_0", B, batched),
                    self._check_state(hx[1], "c_0", B, batched))
        return self._check_state(hx, "h_0", B, batched), None

    def _check_state(self, state, name: str, B: int, batched: bool) -> Tensor:
        D = 2 if self.bidirectional else 1
        expected = (self.num_layers * D, B, self.hidden_size) if batched \
            else (self.num_layers * D, self.hidden_size)
        if not isinstance(state, Tensor):
            raise TypeError(f"{self._describe()}: {name} must be a Tensor, got "
                            f"{type(state).__name__}")
        if tuple(state.shape) != expected:
            raise ValueError(f"{self._describe()}: expected {name} of shape {expected} "
                             f"(num_layers * num_directions, {'batch, ' if batched else ''}"
                             f"hidden_size), got {tuple(state.shape)}")
        if state.dtype != self.weight_ih_l0.dtype:
            raise ValueError(f"{self._describe()}: {name} must have the parameters' dtype "
                             f"{self.weight_ih_l0.dtype}, got {state.dtype}")
        return state if batched else state.unsqueeze(1)


_LAYER_NAMES = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


class RNN(RNNBase):
    """Multi-layer Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU).

    Args:
        input_size: features of each input step (H_in).
        hidden_size: features of the hidden state (H).
        num_layers: stacked layers; layer k > 0 reads layer k-1's outputs.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: learn ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: input and output are (B, L, ...) instead of (L, B, ...); states are always
            (num_layers * num_directions, B, H).
        dropout: probability of zeroing outputs of every layer but the last (training mode only).
        bidirectional: add a reverse-time direction per layer; outputs are concatenated (D*H).

    Call: ``output, h_n = rnn(input, h_0=None)`` with input (L, B, H_in) (or (L, H_in) unbatched),
    ``output`` (L, B, D*H) and ``h_n`` (num_layers * D, B, H).

    Example:
        >>> rnn = tn.nn.RNN(10, 20, num_layers=2)
        >>> output, h_n = rnn(tn.randn(5, 3, 10))   # (5, 3, 20), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r} (use 'tanh' or 'relu')")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


class LSTM(RNNBase):
    """Multi-layer long short-term memory, PyTorch's equations and gate order (i, f, g, o)::

        i, f, g, o = sigmoid/sigmoid/tanh/sigmoid of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
        c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)

    Arguments as :class:`RNN` (no ``nonlinearity``). Call:
    ``output, (h_n, c_n) = lstm(input, (h_0, c_0))``, the initial states optional (zeros).

    Example:
        >>> lstm = tn.nn.LSTM(10, 20, batch_first=True)
        >>> output, (h_n, c_n) = lstm(tn.randn(3, 5, 10))   # (3, 5, 20), (1, 3, 20), (1, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Multi-layer gated recurrent unit, PyTorch's equations and gate order (r, z, n)::

        r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
        z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h_t = (1 - z) * n + z * h_{t-1}

    Arguments as :class:`RNN` (no ``nonlinearity``). Call: ``output, h_n = gru(input, h_0)``.

    Example:
        >>> gru = tn.nn.GRU(10, 20, num_layers=2, bidirectional=True)
        >>> output, h_n = gru(tn.randn(5, 3, 10))   # (5, 3, 40), (4, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)
