# Run: python examples/12_mnist1d_table.py [--models linear mlp cnn] [--seeds 42] [--no-torch]
"""MNIST-1D: the paper's table (logistic regression, MLP, CNN, GRU) with tinynet, next to PyTorch.

MNIST-1D (Greydanus and Kobak, arXiv:2011.14439) is small -- 4,000 training signals of length 40
-- but hard in a way that separates models: a linear model cannot undo the random translations
(about 32% test accuracy), an MLP learns the training set perfectly yet generalises poorly (about
68%: a large over-fitting gap, because nothing in it knows that a pattern shifted by a few
positions is the same pattern), and models that share weights across positions -- a CNN (94%) or
a GRU reading the signal step by step (91%) -- generalise far better from the same data. That is
inductive bias, measured.

Each model is trained with the paper's recipe (its ``notebooks/train.py`` and
``mnist1d-classification.ipynb``; details in docs/mnist1d.md): Adam, lr 1e-2, no weight decay,
batches of 100 taken in order from the unshuffled training set, 6,000 steps (plus the step at 0),
the test accuracy read at the end. With PyTorch installed, the same recipe runs in PyTorch from
the same initial weights, side by side (one BLAS thread each). A full run (3 seeds, four models,
both libraries) takes about 8 minutes on one CPU core, most of it the GRU; ``--models linear
mlp`` takes seconds, ``--models cnn`` about a minute per seed.
"""

import argparse
import importlib.util
import statistics
import time

import numpy as np

import tinynet as tn

PAPER = {"linear": 32, "mlp": 68, "cnn": 94, "gru": 91}  # test accuracy (%), the paper's table
BUILDERS = {"linear": tn.models.mnist1d_linear, "mlp": tn.models.mnist1d_mlp,
            "cnn": tn.models.mnist1d_cnn, "gru": tn.models.mnist1d_gru}
BATCH_SIZE, LR, EVAL_EVERY = 100, 1e-2, 250


def forever(loader):
    """Epoch after epoch of ``loader``'s batches (the reference counts steps, not epochs)."""
    while True:
        yield from loader


def run_recipe(update, evaluate, steps: int) -> dict:
    """The reference loop around one library's ``update(step)`` and ``evaluate()`` (which
    returns training and test accuracy): ``steps + 1`` updates, an evaluation every 250 steps and
    at the end, all of it timed (as the reference's own timings are)."""
    curve = []  # (train accuracy, test accuracy) at every evaluation
    start = time.perf_counter()
    for step in range(steps + 1):
        update(step)
        if step % EVAL_EVERY == 0 or step == steps:
            curve.append(evaluate())
    seconds = time.perf_counter() - start
    return {"train": curve[-1][0], "test": curve[-1][1], "best": max(c[1] for c in curve),
            "seconds": seconds}


def train_tinynet(name: str, seed: int, train, test, steps: int) -> dict:
    tn.manual_seed(seed)
    model = BUILDERS[name]()
    initial = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    loss_fn = tn.nn.CrossEntropyLoss()
    optimizer = tn.optim.Adam(model.parameters(), lr=LR)
    batches = forever(tn.data.DataLoader(train, batch_size=BATCH_SIZE))  # in order: no shuffle

    def update(step):
        xb, yb = next(batches)  # (100, 40), (100,)
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def accuracy(dataset) -> float:
        x, y = dataset.tensors
        with tn.no_grad():
            return float((model(x).argmax(-1) == y).float().mean().item()) * 100

    result = run_recipe(update, lambda: (accuracy(train), accuracy(test)), steps)
    return {**result, "initial": initial}


def torch_model(name: str):
    """The paper's PyTorch models (``notebooks/models.py``): same layers, same state-dict keys."""
    import torch
    from torch import nn

    class LinearBase(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(40, 10)

        def forward(self, x):
            return self.linear(x.reshape(x.shape[0], -1))

    class MLPBase(nn.Module):
        def __init__(self, hidden=256):
            super().__init__()
            self.linear1, self.linear2 = nn.Linear(40, hidden), nn.Linear(hidden, hidden)
            self.linear3 = nn.Linear(hidden, 10)

        def forward(self, x):
            h = self.linear1(x.reshape(x.shape[0], -1)).relu()
            return self.linear3(h + self.linear2(h).relu())  # the residual connection

    class ConvBase(nn.Module):
        def __init__(self, channels=25):
            super().__init__()
            self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
            self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
            self.linear = nn.Linear(5 * channels, 10)

        def forward(self, x):
            h = self.conv1(x.view(-1, 1, x.shape[-1])).relu()  # (B, 25, 19)
            h = self.conv3(self.conv2(h).relu()).relu()  # (B, 25, 10), (B, 25, 5)
            return self.linear(h.view(h.shape[0], -1))

    class GRUBase(nn.Module):
        def __init__(self, hidden=6):
            super().__init__()
            self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
            self.linear = nn.Linear(40 * 2 * hidden, 10)

        def forward(self, x):
            out, _ = self.gru(x.reshape(x.shape[0], 40, 1))  # zero initial state; (B, 40, 12)
            return self.linear(out.reshape(x.shape[0], -1))

    torch.set_num_threads(1)
    return {"linear": LinearBase, "mlp": MLPBase, "cnn": ConvBase, "gru": GRUBase}[name]()


def train_torch(name: str, initial: dict, train, test, steps: int) -> dict:
    import torch

    model = torch_model(name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in initial.items()})
    (x, y), (x_test, y_test) = ([torch.from_numpy(t.numpy()) for t in d.tensors]
                                for d in (train, test))
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def update(step):
        i = step * BATCH_SIZE % len(x)  # the reference's batch index
        loss = loss_fn(model(x[i:i + BATCH_SIZE]), y[i:i + BATCH_SIZE])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def accuracy(xs, ys) -> float:
        with torch.no_grad():
            return float((model(xs).argmax(-1) == ys).float().mean()) * 100

    return run_recipe(update, lambda: (accuracy(x, y), accuracy(x_test, y_test)), steps)


def summary(runs: list, key: str) -> str:
    values = [r[key] for r in runs]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):5.1f} ± {spread:3.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(BUILDERS),
                        default=["linear", "mlp", "cnn", "gru"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
    args = parser.parse_args(argv)
    tn.runtime.set_blas_threads(1)
    tn.runtime.keep_freed_memory()
    with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None

    train, test = tn.datasets.mnist1d()
    print(f"MNIST-1D: {len(train)} training and {len(test)} test signals of length "
          f"{train.tensors[0].shape[1]}; {args.steps + 1} steps of batch {BATCH_SIZE}, Adam lr "
          f"{LR}; seeds {args.seeds}" + ("; PyTorch side by side" if with_torch else ""))
    results = {}
    for name in args.models:
        for seed in args.seeds:
            ours = train_tinynet(name, seed, train, test, args.steps)
            line = (f"{name:6s} seed {seed}: tinynet test {ours['test']:5.1f}% (best "
                    f"{ours['best']:5.1f}%) train {ours['train']:5.1f}% "
                    f"({ours['seconds']:6.1f} s)")
            theirs = None
            if with_torch:
                theirs = train_torch(name, ours["initial"], train, test, args.steps)
                line += (f" | pytorch test {theirs['test']:5.1f}% (best {theirs['best']:5.1f}%) "
                         f"train {theirs['train']:5.1f}% ({theirs['seconds']:6.1f} s)")
            print(line, flush=True)
            results.setdefault(name, []).append((ours, theirs))

    print("\nTest accuracy (%), mean ± standard deviation (min-max) over the seeds; s = seconds "
          "per run")
    header = (f"{'model':6s}  {'paper':>5s}  {'tinynet':22s}  {'within 2':8s}  {'train':>5s}  "
              f"{'s':>6s}")
    print(header + (f"  | {'pytorch':22s}  {'s':>6s}" if with_torch else ""))
    for name in ("linear", "mlp", "cnn", "gru"):
        if name not in results:
            continue
        ours = [o for o, _ in results[name]]
        mean = statistics.mean(r["test"] for r in ours)
        close = "yes" if abs(mean - PAPER[name]) <= 2 else f"no ({mean - PAPER[name]:+.1f})"
        row = (f"{name:6s}  {PAPER[name]:>4d}%  {summary(ours, 'test'):22s}  {close:8s}  "
               f"{statistics.mean(r['train'] for r in ours):5.1f}  "
               f"{statistics.mean(r['seconds'] for r in ours):6.1f}")
        if with_torch:
            theirs = [t for _, t in results[name]]
            row += (f"  | {summary(theirs, 'test'):22s}  "
                    f"{statistics.mean(r['seconds'] for r in theirs):6.1f}")
        print(row)
    if "mlp" in results:
        gap = np.mean([o["train"] - o["test"] for o, _ in results["mlp"]])
        print(f"\nMLP over-fitting gap (train - test accuracy): {gap:.1f} points")


if __name__ == "__main__":
    main()
