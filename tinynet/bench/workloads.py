"""What ``tinynet bench`` trains: the networks, their data, their FLOP counts, one training step.

The MLP 784-256-128-10 (or 784-W-(W/2)-10 in the width sweep), the small CNN of the
benchmarks (conv 3x3x8, ReLU, max-pool 2, conv 3x3x16, ReLU, max-pool 2, linear to 10) and the
MNIST-1D paper's CNN (``mnist1d-cnn``: Conv1d 1->25 k5 s2 p1, Conv1d 25->25 k3 s2 p1 twice, ReLU
after each, linear 125 -> 10), trained with SGD momentum and cross entropy on MNIST-shaped
(MNIST-1D-shaped: 4,000 signals of length 40) synthetic data. The labels are a fixed random
linear function of the inputs, so training is real (the loss goes down) while the pixel values,
which do not affect timing, cost nothing to make.

Two recurrent workloads (:data:`RECURRENT`, also timed by ``benchmarks/rnn_speed.py``): ``gru``,
the MNIST-1D paper's bidirectional GRU (hidden 6, 40 steps of one value, a linear head on all
outputs; ``tn.models.mnist1d_gru``), and ``lstm``, an LSTM 64 -> 128 over 50 steps with a linear
head on the last output.
"""

from __future__ import annotations

import itertools

import numpy as np  # host data only

import tinynet as tn

MLP_SIZES = (784, 256, 128, 10)
LR, MOMENTUM = 0.01, 0.9


# --- FLOP counts ------------------------------------------------------------------------------

def linear_flops(batch: int, in_features: int, out_features: int, input_grad: bool = True) -> int:
    """Matrix-product FLOPs of one training step of a linear layer (multiply-add = 2 FLOPs).

    Forward ``x @ W.T`` and the weight gradient ``g.T @ x`` are ``2*B*I*O`` each; the input
    gradient ``g @ W`` is another ``2*B*I*O`` unless the input needs no gradient (first layer).
    """
    return 2 * batch * in_features * out_features * (3 if input_grad else 2)


def conv_flops(batch: int, c_in: int, c_out: int, kernel: int, out_hw: int,
               input_grad: bool = True) -> int:
    """Matrix-product FLOPs of one training step of a square conv layer, as im2col matmuls."""
    return linear_flops(batch * out_hw * out_hw, c_in * kernel * kernel, c_out, input_grad)


def conv1d_flops(batch: int, c_in: int, c_out: int, kernel: int, out_len: int,
                 input_grad: bool = True) -> int:
    """Matrix-product FLOPs of one training step of a 1-D conv layer, as im2col matmuls."""
    return linear_flops(batch * out_len, c_in * kernel, c_out, input_grad)


def step_flops(model: str, batch: int, sizes: tuple = MLP_SIZES) -> int:
    """Matrix-product FLOPs of one training step of ``"mlp"`` (layer widths ``sizes``, input
    first), ``"cnn"``, ``"mnist1d-cnn"``, ``"gru"`` or ``"lstm"`` (``sizes`` ignored) at
    ``batch``."""
    if model in RECURRENT:
        return recurrent_flops(model, batch)
    if model == "mlp":
        pairs = itertools.pairwise(sizes)
        return sum(linear_flops(batch, i, o, k > 0) for k, (i, o) in enumerate(pairs))
    if model == "mnist1d-cnn":
        return (conv1d_flops(batch, 1, 25, 5, 19, False) + conv1d_flops(batch, 25, 25, 3, 10)
                + conv1d_flops(batch, 25, 25, 3, 5) + linear_flops(batch, 125, 10))
    return (conv_flops(batch, 1, 8, 3, 28, False) + conv_flops(batch, 8, 16, 3, 14)
            + linear_flops(batch, 16 * 7 * 7, 10))


def recurrent_flops(model: str, batch: int) -> int:
    """Matrix-product FLOPs of one training step of a :data:`RECURRENT` workload: per direction,
    the input projection of every step (no input gradient: it reads the data), one ``(B, H) @
    (H, G)`` product per step and its two gradients, and the linear head."""
    w = RECURRENT[model]
    gates = w["gates"] * w["hidden"]
    directions = 2 if w["bidirectional"] else 1
    per_direction = (linear_flops(batch * w["seq_len"], w["input_size"], gates, False)
                     + linear_flops(batch * w["seq_len"], w["hidden"], gates))
    return directions * per_direction + linear_flops(batch, w["head_in"], 10)


def mlp_sizes(width: int) -> tuple:
    """The swept MLP 784-W-(W/2)-10; ``mlp_sizes(256)`` is the standard network."""
    return (784, width, width // 2, 10)


# --- networks and data ------------------------------------------------------------------------

def build_network(nn, model: str, sizes: tuple = MLP_SIZES):
    """The benchmark network built from ``nn`` (``tinynet.nn`` or ``torch.nn``, which share these
    names): the MLP with layer widths ``sizes`` and a ReLU between linear layers, or the CNN. No
    dropout, so every implementation computes the same thing."""
    if model in RECURRENT:
        return build_recurrent(nn, model)
    if model == "mlp":
        layers = []
        for k, (i, o) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.ReLU()] if k else []
            layers.append(nn.Linear(i, o))
        return nn.Sequential(*layers)
    if model == "mnist1d-cnn":  # the MNIST-1D paper's ConvBase, as a Sequential
        return nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                             nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Flatten(), nn.Linear(125, 10))
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def build_tinynet(model: str, sizes: tuple = MLP_SIZES) -> tn.nn.Module:
    """The benchmark network in tinynet (see :func:`build_network`)."""
    if model == "gru":  # the model users train, not a copy of it
        return tn.models.mnist1d_gru()
    return build_network(tn.nn, model, sizes)


RECURRENT = {
    "gru": {"mode": "GRU", "gates": 3, "input_size": 1, "hidden": 6, "seq_len": 40,
            "bidirectional": True, "batch": 100, "head_in": 40 * 2 * 6},
    "lstm": {"mode": "LSTM", "gates": 4, "input_size": 64, "hidden": 128, "seq_len": 50,
             "bidirectional": False, "batch": 32, "head_in": 128},
}
"""The recurrent workloads: the layer, its sizes, the batch their speed targets are stated for,
and the width of the linear head (all outputs for ``gru``, the last output for ``lstm``)."""


def build_recurrent(nn, model: str):
    """A :data:`RECURRENT` workload's classifier from ``nn`` (``tinynet.nn`` or ``torch.nn``):
    the recurrent layer as attribute ``gru`` or ``lstm`` (batch first), then ``linear``. Inputs
    are ``(B, L)`` for ``gru`` (one value per step) and ``(B, L, 64)`` for ``lstm``. For
    ``gru`` in tinynet this is the same network, with the same state-dict keys, as
    ``tn.models.mnist1d_gru()``."""
    w = RECURRENT[model]
    rnn_cls = getattr(nn, w["mode"])

    class RecurrentClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            setattr(self, model, rnn_cls(w["input_size"], w["hidden"], batch_first=True,
                                         bidirectional=w["bidirectional"]))
            self.linear = nn.Linear(w["head_in"], 10)

        def forward(self, x):
            B = x.shape[0]
            if model == "gru":
                out, _ = self.gru(x.reshape(B, w["seq_len"], 1))
                return self.linear(out.reshape(B, -1))
            out, _ = self.lstm(x)
            return self.linear(out[:, -1])

    return RecurrentClassifier()


def synthetic_data(model: str, samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped float32 inputs (MNIST-1D-shaped, (N, 1, 40), for ``"mnist1d-cnn"``) and int64
    labels from a fixed random linear teacher (for a :data:`RECURRENT` workload: sequences of its
    shape, labelled the same way)."""
    rng = np.random.default_rng(seed)
    if model in RECURRENT:
        w = RECURRENT[model]
        shape = (samples, w["seq_len"]) + ((w["input_size"],) if w["input_size"] > 1 else ())
        x = rng.standard_normal(shape, dtype=np.float32)
        flat = x.reshape(samples, -1)
        teacher = rng.standard_normal((flat.shape[1], 10), dtype=np.float32)
        return x, np.argmax(flat @ teacher, axis=1).astype(np.int64)
    features = 40 if model == "mnist1d-cnn" else 784
    x = rng.standard_normal((samples, features), dtype=np.float32)
    y = np.argmax(x @ rng.standard_normal((features, 10), dtype=np.float32), axis=1)
    y = y.astype(np.int64)
    if model == "mnist1d-cnn":
        return x.reshape(samples, 1, 40), y
    return (x.reshape(samples, 1, 28, 28) if model == "cnn" else x), y


# --- tinynet's training step ------------------------------------------------------------------

def tinynet_training(model: str, sizes: tuple, device: tn.Device, seed: int = 0) -> tuple:
    """The benchmark network on ``device`` (seeded weights), its SGD-momentum optimizer and the
    cross-entropy loss: what every tinynet measurement trains."""
    tn.manual_seed(seed)
    net = build_tinynet(model, sizes).to(device)
    return net, tn.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM), tn.nn.CrossEntropyLoss()


def tinynet_step(net, opt, loss_fn, xt, yt) -> None:
    """One training step as ``fit`` runs it: forward, loss read, zero_grad, backward, step."""
    loss = loss_fn(net(xt), yt)
    loss.item()
    opt.zero_grad()
    loss.backward()
    opt.step()


# --- the fixed cost of a step -----------------------------------------------------------------

FIXED_SIZES, FIXED_BATCH = (16, 16, 16, 10), 8  # arithmetic negligible: what is left is fixed


def fixed_step_data() -> tuple[np.ndarray, np.ndarray]:
    """The one batch every fixed-cost step trains on (the same for every implementation)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((FIXED_BATCH, FIXED_SIZES[0]), dtype=np.float32)
    return x, rng.integers(0, FIXED_SIZES[-1], FIXED_BATCH)
