# Run: python examples/05_textbook_loop.py [--epochs 10] [--batch-size 64] [--seed 0] [--device cpu]
"""The training loop as the textbook writes it, by hand, with ``tn.data.DataLoader``.

    for each epoch:
        shuffle the training set                     (the DataLoader does it, every epoch)
        for each of the ceil(N / B) mini-batches:
            forward -> loss -> backward -> update
        validate on held-out data (no gradients, eval mode)

The data are the embedded 8x8 digits: 1,797 images, split 80/20 into training and validation
sets. A third tensor in the dataset holds each sample's index, so the loop can print which
samples the first batch of every epoch starts with: a different order each epoch. Expected: the
validation accuracy passes 0.95 within a few epochs, in a few seconds on a CPU.

On a GPU (``--device cuda``) the loop never reads a value back inside an epoch: the running loss
and the count of correct answers are summed on the device and read once per epoch, because every
read (``loss.item()``) makes the host wait until the GPU has finished the batch before it can
queue the next one.
"""

import argparse
import math
import time

import tinynet as tn
from tinynet import nn


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or standin")
    args = parser.parse_args(argv)
    tn.manual_seed(args.seed)  # the weights and the dropout masks
    device = tn.device(args.device)

    x, y = tn.datasets.digits().tensors  # (1797, 64) pixels in [0, 1], (1797,) labels
    x = (x - 0.3) / 0.37  # roughly zero mean, unit variance: what the optimizer likes best
    index = tn.arange(len(y))  # carried along so we can see the shuffling
    train_set, val_set = tn.data.random_split(tn.data.TensorDataset(x, y, index), [0.8, 0.2],
                                              seed=args.seed)
    train_loader = tn.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                      seed=args.seed)
    val_loader = tn.data.DataLoader(val_set, batch_size=512)
    n, b = len(train_set), args.batch_size
    print(f"N = {n} training samples, B = {b}: iterations per epoch = ceil({n}/{b}) = "
          f"{math.ceil(n / b)} = len(train_loader) = {len(train_loader)}")
    print(f"the last batch of each epoch holds {n - (len(train_loader) - 1) * b} samples")

    model = tn.models.mlp(in_features=64, hidden=(128, 64), num_classes=10, dropout=0.1)
    model.to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = tn.optim.Adam(model.parameters(), lr=args.lr)

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()  # dropout on
        seen, iterations = 0, 0
        loss_sum = tn.zeros((), dtype=tn.float64, device=device)  # summed where it is computed
        for xb, yb, ib in train_loader:  # a new order every epoch
            if iterations == 0:  # ib stays in host memory: printing it waits for nothing
                print(f"epoch {epoch:2d}: first batch starts with samples "
                      f"{ib[:6].numpy().tolist()}")
            xb, yb = xb.to(device), yb.to(device)  # (B, 64), (B,)
            logits = model(xb)  # (B, 10)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()  # gradients accumulate otherwise
            loss.backward()
            optimizer.step()
            seen += len(yb)
            loss_sum += loss.detach() * len(yb)  # no .item() here: it would wait for the batch
            iterations += 1

        model.eval()  # dropout off
        correct = tn.zeros((), dtype=tn.int64, device=device)
        with tn.no_grad():  # validation records no graph
            for xb, yb, _ in val_loader:
                correct += (model(xb.to(device)).argmax(axis=1) == yb.to(device)).sum()
        # The epoch's two reads from the device.
        print(f"epoch {epoch:2d}: {iterations} iterations, {seen} samples seen, train loss "
              f"{loss_sum.item() / seen:.4f}, val accuracy {correct.item() / len(val_set):.4f}")
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
