# Run: python examples/06_fit.py [--epochs 10] [--batch-size 64] [--seed 0]
"""The loop of ``05_textbook_loop.py``, written once and for all: ``tn.train.fit``.

``fit`` runs the same epochs and mini-batches (forward, loss, backward, update; then validation),
and measures what the hand-written loop printed: per-epoch train and validation loss and
accuracy, time and samples per second, in a ``History``. Callbacks add the rest: here a progress
bar (on stderr) and a CSV log. ``evaluate`` scores the held-out test set at the end. Expected: a
test accuracy above 0.95 in a few seconds on a CPU.
"""

import argparse
import os
import tempfile

import tinynet as tn
from tinynet import nn
from tinynet.train import callbacks


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tn.manual_seed(args.seed)

    x, y = tn.datasets.digits().tensors
    data = tn.data.TensorDataset((x - 0.3) / 0.37, y)  # roughly standardised pixels
    train_set, val_set, test_set = tn.data.random_split(data, [0.7, 0.15, 0.15], seed=args.seed)
    train_loader = tn.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                      seed=args.seed)
    val_loader = tn.data.DataLoader(val_set, batch_size=512)
    test_loader = tn.data.DataLoader(test_set, batch_size=512)

    model = tn.models.mlp(in_features=64, hidden=(128, 64), num_classes=10, dropout=0.1)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = tn.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = tn.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "history.csv")
        history = tn.train.fit(model, loss_fn, optimizer, train_loader, args.epochs,
                               val_loader=val_loader, scheduler=scheduler,
                               callbacks=[callbacks.CSVLogger(log)], progress=True)
        with open(log) as f:
            print(f"the CSV log has {len(f.readlines()) - 1} rows, one per epoch")

    print("epoch  loss    accuracy  val_loss  val_accuracy  lr        samples/s")
    for row in history.epochs:
        print(f"{row['epoch']:5d}  {row['loss']:.4f}  {row['accuracy']:.4f}    "
              f"{row['val_loss']:.4f}    {row['val_accuracy']:.4f}        {row['lr']:.2e}  "
              f"{row['samples_per_s']:,.0f}")
    best = history.best("val_loss")
    test = tn.train.evaluate(model, test_loader, loss_fn=loss_fn)
    print(f"best epoch by val_loss: {best['epoch']} (val_loss {best['val_loss']:.4f})")
    print(f"test accuracy {test['accuracy']:.4f} after {len(history.epochs)} epochs")


if __name__ == "__main__":
    main()
