# Run: python examples/08_batch_size_vs_epochs.py [--max-epochs 40] [--target 0.97]
"""Batch size vs epochs: how many epochs, updates and seconds to reach a validation accuracy.

An epoch is one pass over the N training samples in ceil(N / B) updates. A small batch size B
makes many small, noisy updates per epoch: few epochs are needed, but each costs more time (many
small matrix products, Python overhead per step). A large B makes few, accurate updates: each
epoch is fast, but more epochs are needed. The same MLP (same seed, Adam with the same learning
rate) is trained on the digits with each batch size until its validation accuracy first reaches
``--target``; the table shows the trade-off. Runs in well under a minute on a CPU.
"""

import argparse
import math
import time

import tinynet as tn
from tinynet import nn


class StopAtTarget(tn.train.Callback):
    """Stop the run at the end of the first epoch whose val_accuracy reaches ``target``."""

    def __init__(self, target: float):
        self.target = target
        self.start = None
        self.seconds = None

    def on_train_begin(self, state):
        self.start = time.perf_counter()

    def on_epoch_end(self, state):
        if state.logs["val_accuracy"] >= self.target:
            self.seconds = time.perf_counter() - self.start
            state.stop_training = True
            state.stop_reason = f"val_accuracy reached {self.target}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = tn.datasets.digits().tensors
    data = tn.data.TensorDataset((x - 0.3) / 0.37, y)
    train_set, val_set = tn.data.random_split(data, [0.8, 0.2], seed=args.seed)
    val_loader = tn.data.DataLoader(val_set, batch_size=512)
    n = len(train_set)
    print(f"N = {n} training samples; target val accuracy {args.target}; "
          f"at most {args.max_epochs} epochs")
    print(f"{'batch':>5}  {'updates/epoch':>13}  {'epochs':>6}  {'updates':>7}  "
          f"{'seconds':>7}  {'s/epoch':>7}  {'val_acc':>7}")
    for b in args.batch_sizes:
        tn.manual_seed(args.seed)  # the same initial weights for every batch size
        model = tn.models.mlp(hidden=(128, 64), dropout=0.0)
        optimizer = tn.optim.Adam(model.parameters(), lr=args.lr)
        loader = tn.data.DataLoader(train_set, batch_size=b, shuffle=True, seed=args.seed)
        stop = StopAtTarget(args.target)
        start = time.perf_counter()
        history = tn.train.fit(model, nn.CrossEntropyLoss(), optimizer, loader, args.max_epochs,
                               val_loader=val_loader, callbacks=[stop], progress=False)
        seconds = stop.seconds if stop.seconds is not None else time.perf_counter() - start
        epochs = len(history.epochs)
        reached = "" if stop.seconds is not None else "  (target not reached)"
        print(f"{b:>5}  {math.ceil(n / b):>13}  {epochs:>6}  {epochs * len(loader):>7}  "
              f"{seconds:>7.2f}  {seconds / epochs:>7.3f}  "
              f"{history.epochs[-1]['val_accuracy']:>7.4f}{reached}")


if __name__ == "__main__":
    main()
