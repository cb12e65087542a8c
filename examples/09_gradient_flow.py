# Run: python examples/09_gradient_flow.py [--epochs 3] [--depth 12] [--plot runs/flow.png]
"""Gradient flow: why a deep sigmoid network does not learn and a ReLU network with Kaiming
initialisation does.

Backpropagation multiplies the gradient by each layer's local derivative on its way from the loss
to the input. The sigmoid's derivative is at most 0.25 and PyTorch-style default weights shrink it
further, so in a deep sigmoid stack the first layers get gradients many orders of magnitude smaller
than the last: they barely move (vanishing gradients). ReLU passes the gradient through unchanged
where it is active, and Kaiming initialisation (weights with variance 2 / fan_in) keeps the
gradient's size about constant from layer to layer. Both networks are trained on the digits with
``tn.train.GradientFlow`` recording each layer's gradient norm, weight norm and update-to-weight
ratio, and flagging vanishing or exploding gradients. Runs in a few seconds on a CPU.
"""

import argparse
import importlib.util
import io
from pathlib import Path

import tinynet as tn
from tinynet import nn


def deep_mlp(activation: str, depth: int, width: int) -> nn.Module:
    """``depth`` hidden layers of ``width`` units; ReLU layers get Kaiming initialisation."""
    layers, d_in = [], 64
    for _ in range(depth):
        linear = nn.Linear(d_in, width)
        if activation == "relu":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU() if activation == "relu" else nn.Sigmoid()]
        d_in = width
    layers.append(nn.Linear(d_in, 10))
    return nn.Sequential(*layers)


def train(activation: str, args, train_loader, val_loader):
    tn.manual_seed(args.seed)  # the same seed for both networks
    model = deep_mlp(activation, args.depth, args.width)
    flow = tn.train.GradientFlow(every="epoch", stream=io.StringIO())  # warnings kept, not printed
    optimizer = tn.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    history = tn.train.fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, args.epochs,
                           val_loader=val_loader, callbacks=[flow], progress=False)
    return flow, history


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="runs/09_gradient_flow/gradient_flow.png",
                        help="image file for the plots, one per network with its name added "
                             "(written when matplotlib is installed; runs/ is git-ignored)")
    args = parser.parse_args(argv)

    x, y = tn.datasets.digits().tensors
    data = tn.data.TensorDataset((x - 0.3) / 0.37, y)
    train_set, val_set = tn.data.random_split(data, [0.8, 0.2], seed=args.seed)
    train_loader = tn.data.DataLoader(train_set, batch_size=64, shuffle=True, seed=args.seed)
    val_loader = tn.data.DataLoader(val_set, batch_size=512)
    print(f"{args.depth} hidden layers of {args.width} units, {args.epochs} epochs of SGD on the "
          f"digits (N = {len(train_set)})")

    runs = {name: train(name, args, train_loader, val_loader) for name in ("sigmoid", "relu")}
    sigmoid, relu = (runs[name][0].records[-1]["layers"] for name in ("sigmoid", "relu"))
    print("\nweight gradient norm per layer after the last epoch (layer 1 is next to the input)")
    print(f"{'layer':>5}  {'sigmoid, default init':>21}  {'relu, kaiming init':>18}")
    weights = [i for i, layer in enumerate(sigmoid) if layer["name"].endswith("weight")]
    for n, i in enumerate(weights, start=1):
        print(f"{n:>5}  {sigmoid[i]['grad_norm']:>21.3e}  {relu[i]['grad_norm']:>18.3e}")
    first, last = weights[0], weights[-1]
    for name, layers in (("sigmoid", sigmoid), ("relu", relu)):
        ratio = layers[first]["grad_norm"] / layers[last]["grad_norm"]
        print(f"{name}: first-layer / last-layer gradient norm = {ratio:.3e}")

    print()
    for name, (flow, history) in runs.items():
        flagged = flow.flagged("vanishing")
        print(f"{name}: val accuracy {history.epochs[-1]['val_accuracy']:.4f}; "
              f"vanishing gradients flagged in {len(flagged)} parameters"
              + (f" ({', '.join(flagged[:4])}{', ...' if len(flagged) > 4 else ''})"
                 if flagged else ""))
    messages = [f["message"] for r in runs["sigmoid"][0].records for f in r["flags"]]
    if messages:
        print(f"first warning: {messages[0]}")

    if importlib.util.find_spec("matplotlib") is None:
        print("plot not drawn: matplotlib is not installed (pip install \"tinynet[plot]\")")
        return
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    for name in ("sigmoid", "relu"):
        path = args.plot.replace(".png", f"_{name}.png") if args.plot.endswith(".png") \
            else f"{args.plot}_{name}"
        tn.train.plot_gradient_flow(runs[name][0].records, path,
                                    title=f"{name}: gradient norm per parameter")
        print(f"gradient-flow plot ({name}) written to {path}")


if __name__ == "__main__":
    main()
