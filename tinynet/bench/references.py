"""What tinynet is measured against in ``tinynet bench``: a hand-written NumPy MLP (the NumPy
ceiling: manual backprop, no framework) and PyTorch eager, with the same network, initial
weights (drawn by tinynet with the same seed), optimizer and batch order.
"""

from __future__ import annotations

import time

import numpy as np  # the hand-written reference computes in NumPy

import tinynet as tn

from .harness import batch_starts, timed_epochs
from .workloads import (
    FIXED_SIZES, LR, MLP_SIZES, MOMENTUM, build_network, build_tinynet, fixed_step_data,
)


class NumpyMLP:
    """A hand-written NumPy MLP with manual backprop and SGD momentum: the NumPy ceiling.

    Args:
        weights: ``(out, in)`` float32 matrices, as ``tn.nn.Linear`` stores them.
        biases: the matching bias vectors.
    """

    def __init__(self, weights: list, biases: list):
        self.params = [np.array(p, dtype=np.float32) for pair in zip(weights, biases)
                       for p in pair]
        self.velocity = [None] * len(self.params)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list]:
        """Mean cross-entropy of a batch and the gradients of every parameter."""
        ws, bs = self.params[0::2], self.params[1::2]
        acts = [x]
        for k, (w, b) in enumerate(zip(ws, bs)):
            h = acts[-1] @ w.T  # (B, O)
            h += b
            if k < len(ws) - 1:
                np.maximum(h, 0, out=h)
            acts.append(h)
        logits = acts[-1]  # (B, C)
        shifted = logits - logits.max(axis=1, keepdims=True)  # log-sum-exp shift
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)  # (B, 1)
        rows = np.arange(len(y))
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
        g = exp / total  # softmax - one_hot, over the batch
        g[rows, y] -= 1
        g /= len(y)
        grads = [None] * len(self.params)
        for k in range(len(ws) - 1, -1, -1):
            grads[2 * k] = g.T @ acts[k]  # (O, I)
            grads[2 * k + 1] = g.sum(axis=0)
            if k:
                g = g @ ws[k]
                g *= acts[k] > 0  # ReLU's gradient
        return loss, grads

    def step(self, grads: list, lr: float = LR, momentum: float = MOMENTUM) -> None:
        """SGD with (Polyak) momentum, in place, as ``tn.optim.SGD`` does it."""
        for i, (p, g) in enumerate(zip(self.params, grads)):
            v = self.velocity[i]
            if v is None:
                v = self.velocity[i] = g.copy()
            else:
                v *= momentum
                v += g
            p -= lr * v


def numpy_reference(sizes: tuple = MLP_SIZES, seed: int = 0) -> NumpyMLP:
    """The hand-written NumPy MLP with the initial weights tinynet draws with ``seed``."""
    tn.manual_seed(seed)
    linears = [m for m in build_tinynet("mlp", sizes).modules() if isinstance(m, tn.nn.Linear)]
    return NumpyMLP([m.weight.numpy() for m in linears], [m.bias.numpy() for m in linears])


def run_numpy(x: np.ndarray, y: np.ndarray, batch: int, epochs: int, seed: int = 0,
              sizes: tuple = MLP_SIZES) -> list:
    """Time the hand-written NumPy MLP (same initial weights as tinynet's with ``seed``)."""
    ref = numpy_reference(sizes, seed)
    order_rng = np.random.default_rng(seed)

    def one_epoch(max_steps: int | None = None) -> dict:
        losses = []
        order = order_rng.permutation(len(y))
        start = time.perf_counter()
        for lo in batch_starts(len(y), batch, max_steps):
            idx = order[lo:lo + batch]
            loss, grads = ref.loss_and_grads(x[idx], y[idx])
            ref.step(grads)
            losses.append(loss)
        return {"seconds": time.perf_counter() - start, "losses": losses}

    return timed_epochs(one_epoch, epochs, traced=True)


def numpy_fixed_step():
    """One training step of the fixed-cost MLP in NumPy, as a function (the loss is already a
    Python float: nothing to read)."""
    x, y = fixed_step_data()
    ref = numpy_reference(FIXED_SIZES)
    return lambda: ref.step(ref.loss_and_grads(x, y)[1])


# --- PyTorch ----------------------------------------------------------------------------------

def torch_status(device: str) -> str | None:
    """None when PyTorch can run on ``device`` ("cpu" or "cuda"), else why not."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if device == "cuda" and not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    return None


def build_torch(model: str, sizes: tuple = MLP_SIZES, seed: int = 0):
    """The same network in PyTorch, with the initial weights tinynet draws with ``seed``."""
    import torch

    tn.manual_seed(seed)
    src = build_tinynet(model, sizes)
    net = build_network(torch.nn, model, sizes)
    with torch.no_grad():
        for p, q in zip(net.parameters(), src.parameters(), strict=True):
            p.copy_(torch.from_numpy(q.numpy()))
    return net


def _torch_training(model: str, sizes: tuple, device: str, seed: int = 0) -> tuple:
    import torch

    net = build_torch(model, sizes, seed).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    return net, opt, torch.nn.CrossEntropyLoss()


def run_torch(model: str, x: np.ndarray, y: np.ndarray, batch: int, epochs: int, device: str,
              seed: int = 0, sizes: tuple = MLP_SIZES) -> list:
    """Time PyTorch eager with the same network, initial weights, optimizer and batch order."""
    import torch

    net, opt, loss_fn = _torch_training(model, sizes, device, seed)
    order_rng = np.random.default_rng(seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def one_epoch(max_steps: int | None = None) -> dict:
        losses = []
        order = order_rng.permutation(len(y))
        sync()
        start = time.perf_counter()
        for lo in batch_starts(len(y), batch, max_steps):
            idx = order[lo:lo + batch]
            xt = torch.from_numpy(x[idx]).to(device)
            yt = torch.from_numpy(y[idx]).to(device)
            opt.zero_grad()
            loss = loss_fn(net(xt), yt)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sync()
        return {"seconds": time.perf_counter() - start, "losses": losses}

    # PyTorch's allocator does not report to tracemalloc: a traced figure would be meaningless
    return timed_epochs(one_epoch, epochs, traced=False)


def torch_fixed_step(dev: str):
    """One training step of the fixed-cost MLP in PyTorch on ``dev``, as a function."""
    import torch

    x, y = fixed_step_data()
    net, opt, loss_fn = _torch_training("mlp", FIXED_SIZES, dev)
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def step():
        opt.zero_grad()
        loss = loss_fn(net(xt), yt)
        loss.backward()
        opt.step()
        loss.item()  # last, so that on a GPU the whole step has finished (it synchronises)

    return step
