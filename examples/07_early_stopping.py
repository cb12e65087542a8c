# Run: python examples/07_early_stopping.py [--epochs 300] [--train-size 100] [--patience 15]
"""Over-fitting made visible, and early stopping that catches it.

A wide MLP without dropout is trained on only ``--train-size`` digits (100 by default) and
validated on 500 others. The training loss keeps falling towards zero, while the validation loss
reaches its minimum after a few dozen epochs and then rises: the network memorises its few
examples instead of learning digits. ``EarlyStopping(patience=...)`` stops the run once the
validation loss has not improved for ``patience`` epochs and restores the weights of the best
epoch. The learning curves go to ``runs/07_early_stopping/learning_curves.png`` (``--plot``) when
matplotlib is installed (``pip install "tinynet[plot]"``). Runs in a few seconds on a CPU.
"""

import argparse
import importlib.util
from pathlib import Path

import tinynet as tn
from tinynet import nn
from tinynet.train.callbacks import EarlyStopping


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="upper limit")
    parser.add_argument("--train-size", type=int, default=100)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="runs/07_early_stopping/learning_curves.png",
                        help="image file for the learning curves (runs/ is git-ignored)")
    args = parser.parse_args(argv)
    tn.manual_seed(args.seed)

    x, y = tn.datasets.digits().tensors
    data = tn.data.TensorDataset((x - 0.3) / 0.37, y)
    rest = len(data) - args.train_size - 500
    train_set, val_set, _ = tn.data.random_split(data, [args.train_size, 500, rest],
                                                 seed=args.seed)
    train_loader = tn.data.DataLoader(train_set, batch_size=20, shuffle=True, seed=args.seed)
    val_loader = tn.data.DataLoader(val_set, batch_size=500)

    model = tn.models.mlp(hidden=(256, 256), dropout=0.0)  # big for 100 samples: it will memorise
    optimizer = tn.optim.Adam(model.parameters(), lr=5e-3)
    stopper = EarlyStopping(monitor="val_loss", patience=args.patience,
                            restore_best_weights=True)
    history = tn.train.fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, args.epochs,
                           val_loader=val_loader, callbacks=[stopper], progress=False)

    epochs = history.epochs
    best = history.best("val_loss")
    last = epochs[-1]
    for row in epochs[:: max(1, len(epochs) // 10)] + ([last] if (len(epochs) - 1) % max(1, len(epochs) // 10) else []):
        print(f"epoch {row['epoch']:3d}  train loss {row['loss']:.4f}  val loss "
              f"{row['val_loss']:.4f}  train acc {row['accuracy']:.3f}  val acc "
              f"{row['val_accuracy']:.3f}")
    print(f"best epoch {best['epoch']}: val loss {best['val_loss']:.4f}")
    print(f"stopped after epoch {last['epoch']} of at most {args.epochs}"
          + (f" ({history.stop_reason})" if history.stop_reason else ""))
    print(f"from the best epoch to the end: train loss {best['loss']:.4f} -> {last['loss']:.4f}, "
          f"val loss {best['val_loss']:.4f} -> {last['val_loss']:.4f}")
    if last["val_loss"] > best["val_loss"] and last["loss"] < best["loss"]:
        print("over-fitting: the training loss kept falling while the validation loss rose")
    final = tn.train.evaluate(model, val_loader, loss_fn=nn.CrossEntropyLoss())
    print(f"restored weights: val loss {final['loss']:.4f} (the best epoch's)")
    if importlib.util.find_spec("matplotlib") is None:
        print('learning curves not drawn: pip install "tinynet[plot]" for matplotlib')
    else:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        history.plot(args.plot, title=f"{args.train_size} training digits, early stopping")
        print(f"learning curves written to {args.plot}")


if __name__ == "__main__":
    main()
