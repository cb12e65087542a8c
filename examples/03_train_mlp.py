# Run: python examples/03_train_mlp.py [--device cpu|standin|cuda] [--epochs 60] [--seed 0]
"""Train a small MLP on the three-arm spiral, with nothing but tinynet tensors and autograd.

Everything a framework would hide is written out: the dataset, the weights as leaf tensors, the
Kaiming initialisation, the mini-batch loop, the loss, and SGD with momentum. Expected result: the
loss falls from about 1.1 (a guess among 3 classes: ln 3) to below 0.05, and train and held-out
accuracy reach 99-100% after 60 epochs, in a few seconds on a CPU. The same seed gives the
same numbers on every device, because random draws are made on the host and then moved.
"""

import argparse
import math
import time

import numpy as np

import tinynet as tn


def make_spirals(points_per_class: int, classes: int, turns: float, noise: float, seed: int):
    """Points on ``classes`` interleaved spiral arms of ``turns`` turns each, with Gaussian noise
    on the angle (radians).

    Returns ``x`` of shape (N, 2), float32, and integer labels of shape (N,), shuffled.
    """
    rng = np.random.default_rng(seed)  # a private stream: NumPy's global RNG is left alone
    xs, ys = [], []
    for k in range(classes):
        radius = np.linspace(0.05, 1.0, points_per_class)
        start = 2 * math.pi * k / classes  # the arms are rotated copies of each other
        angle = start + np.linspace(0, 2 * math.pi * turns, points_per_class)
        angle = angle + noise * rng.standard_normal(points_per_class)
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        ys.append(np.full(points_per_class, k))
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]


def init_mlp(sizes: list, generator: tn.Generator, device) -> list:
    """Weights (D_in, D_out) ~ N(0, 2 / D_in) (Kaiming/He init for ReLU layers), biases zero."""
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        w = tn.randn(d_in, d_out, generator=generator, device=device) * math.sqrt(2.0 / d_in)
        params.append(w.requires_grad_())  # a leaf tensor: backward fills w.grad
        params.append(tn.zeros(d_out, device=device, requires_grad=True))
    return params


def forward(params: list, x: tn.Tensor) -> tn.Tensor:
    """Linear -> ReLU for every hidden layer, then a final Linear giving logits (B, C)."""
    *hidden, w_out, b_out = params
    h = x
    for w, b in zip(hidden[0::2], hidden[1::2]):
        h = (h @ w + b).relu()  # (B, H)
    return h @ w_out + b_out  # (B, C)


def nll_loss(logits: tn.Tensor, labels: tn.Tensor) -> tn.Tensor:
    """Mean negative log-likelihood of the true class: -mean_i log softmax(logits_i)[y_i]."""
    log_probs = logits.log_softmax(axis=1)  # (B, C)
    rows = tn.arange(labels.shape[0], device=labels.device)
    return -log_probs[rows, labels].mean()  # picks log_probs[i, y_i] for every row i


def accuracy(params: list, x: tn.Tensor, labels: tn.Tensor) -> float:
    with tn.no_grad():
        predicted = forward(params, x).argmax(axis=1)
    return (predicted == labels).float().mean().item()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, standin or cuda (default: cpu)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = tn.device(args.device)

    # Data: 3 spiral arms of 400 points, 1.6 turns each; the first 80% trains, the rest is held out.
    x_all, y_all = make_spirals(points_per_class=400, classes=3, turns=1.6, noise=0.2,
                                seed=args.seed)
    n_train = int(0.8 * len(y_all))
    x_train = tn.tensor(x_all[:n_train], device=device)  # (N_train, 2) float32
    y_train = tn.tensor(y_all[:n_train], device=device)  # (N_train,) int64
    x_test = tn.tensor(x_all[n_train:], device=device)
    y_test = tn.tensor(y_all[n_train:], device=device)

    generator = tn.Generator(args.seed)  # weights and batch order, reproducible from the seed
    params = init_mlp([2, args.hidden, args.hidden, 3], generator, device)
    velocities = [tn.zeros_like(p) for p in params]
    n_batches = math.ceil(n_train / args.batch_size)
    print(f"device {device}, {n_train} training and {len(y_all) - n_train} held-out points, "
          f"{sum(p.numel() for p in params)} parameters, {n_batches} batches per epoch")

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = tn.randperm(n_train, generator=generator, device=device)  # reshuffle every epoch
        total_loss = 0.0
        for i in range(n_batches):
            batch = order[i * args.batch_size:(i + 1) * args.batch_size]  # the last may be short
            xb, yb = x_train[batch], y_train[batch]  # (B, 2), (B,)

            loss = nll_loss(forward(params, xb), yb)
            loss.backward()  # fills p.grad for every parameter

            with tn.no_grad():  # the update is not part of the model: record no graph for it
                for p, v in zip(params, velocities):
                    v *= args.momentum  # v <- mu * v + dL/dp, in place
                    v += p.grad
                    p -= args.lr * v  # p <- p - lr * v, written into p's memory
                    p.grad = None  # zero the gradient: the next backward starts afresh
            total_loss += loss.item() * len(yb)

        print(f"epoch {epoch:3d}  loss {total_loss / n_train:.4f}  "
              f"train accuracy {accuracy(params, x_train, y_train):.4f}")
    tn.synchronize(device)  # GPU work is queued asynchronously: wait before reading the clock
    elapsed = time.perf_counter() - start

    result = {"train": accuracy(params, x_train, y_train),
              "held_out": accuracy(params, x_test, y_test)}
    print(f"final train accuracy {result['train']:.4f}")
    print(f"final held-out accuracy {result['held_out']:.4f}")
    print(f"trained {args.epochs} epochs in {elapsed:.1f} s")
    return result


if __name__ == "__main__":
    main()
