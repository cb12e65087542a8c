"""What one training step costs on a GPU, counted on the CPU: array calls (~ kernel launches),
host syncs and host -> device uploads per step of ``tn.train.fit``, on the stand-in device.

    python benchmarks/step_counts.py                      # table on stdout
    python benchmarks/step_counts.py --json counts.json   # and one JSON record per configuration

Each configuration trains with ``fit`` (no validation loader, no progress bar) on the stand-in
device, inside ``tn.backend.count_calls()``, for an epoch of ``SHORT`` batches and an epoch of
``LONG`` batches; the difference divided by ``LONG - SHORT`` is the cost of one step, with the
per-epoch work (setup, the epoch's reads) cancelled out. Counts are exact (no timing), so one run
is enough; docs/devices.md says what counts as what. No asserts: the budgets are tests.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing

import tinynet as tn

SHORT, LONG = 2, 6  # batches per epoch of the two runs that are differenced
BATCH = 32


def _mlp(dropout: float) -> tn.nn.Module:
    return tn.models.mlp(784, hidden=(256, 128), num_classes=10, dropout=dropout)


class GRUClassifier(tn.nn.Module):
    """A digit read row by row: (B, 8, 8) -> GRU(8 -> 32) -> the last hidden state -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.gru = tn.nn.GRU(8, 32, batch_first=True)
        self.head = tn.nn.Linear(32, 10)

    def forward(self, x):
        _, h_n = self.gru(x)  # (1, B, 32)
        return self.head(h_n[0])  # (B, 10)


CONFIGS = [  # (name, model builder, input shape, optimizer)
    ("MLP 784-256-128-10", lambda: _mlp(0.0), (784,), "adam"),
    ("MLP 784-256-128-10", lambda: _mlp(0.0), (784,), "sgd-momentum"),
    ("MLP 784-256-128-10, dropout 0.2", lambda: _mlp(0.2), (784,), "adam"),
    ("CNN 8x8 (tn.models.cnn)", lambda: tn.models.cnn(image_size=8), (1, 8, 8), "adam"),
    ("GRU 8x8 rows, hidden 32", GRUClassifier, (8, 8), "adam"),
]
OPTIMIZERS = {"adam": lambda ps: tn.optim.Adam(ps, lr=1e-3),
              "sgd-momentum": lambda ps: tn.optim.SGD(ps, lr=0.01, momentum=0.9)}


def counts_of_one_epoch(build, shape: tuple, optimizer: str, batches: int) -> tn.backend.CallCounts:
    """The calls, syncs and uploads of one ``fit`` epoch of ``batches`` batches on the stand-in."""
    tn.manual_seed(0)
    rng = np.random.default_rng(0)
    n = batches * BATCH
    data = tn.data.TensorDataset(rng.standard_normal((n, *shape), dtype=np.float32),
                                 rng.integers(0, 10, n))
    loader = tn.data.DataLoader(data, batch_size=BATCH, shuffle=True, seed=0)
    model = build().to("standin")
    opt = OPTIMIZERS[optimizer](model.parameters())
    with tn.backend.count_calls() as counts:
        tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=1, progress=False,
                     device="standin")
    return counts


def per_step(build, shape: tuple, optimizer: str) -> dict:
    """Counts per training step, from two epoch lengths (the first step's extra work, such as
    creating the optimizer's state, shows in ``per_epoch``). A warm-up epoch first: what the
    process makes once (the device's check flags, compiled kernels) counts in neither."""
    counts_of_one_epoch(build, shape, optimizer, SHORT)
    short = counts_of_one_epoch(build, shape, optimizer, SHORT)
    long = counts_of_one_epoch(build, shape, optimizer, LONG)
    steps = LONG - SHORT
    calls = {k: (long.calls[k] - short.calls[k]) / steps
             for k in long.calls if long.calls[k] != short.calls[k]}
    syncs = {k: (long.sync_calls[k] - short.sync_calls[k]) / steps
             for k in long.sync_calls if long.sync_calls[k] != short.sync_calls[k]}
    return {"array_calls": (long.array_calls - short.array_calls) / steps,
            "syncs": (long.syncs - short.syncs) / steps,
            "uploads": (long.uploads - short.uploads) / steps,
            "calls_by_name": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
            "syncs_by_name": syncs,
            "per_epoch": {"array_calls": short.array_calls - SHORT * (long.array_calls
                                                                      - short.array_calls) / steps,
                          "syncs": short.syncs - SHORT * (long.syncs - short.syncs) / steps}}


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="write the records here as JSON")
    args = parser.parse_args(argv)
    records = []
    print("| model | optimizer | array calls / step | syncs / step | uploads / step | "
          "top calls (per step) |\n|---|---|---|---|---|---|")
    for name, build, shape, optimizer in CONFIGS:
        rec = {"model": name, "optimizer": optimizer, "batch_size": BATCH,
               **per_step(build, shape, optimizer)}
        records.append(rec)
        top = ", ".join(f"{k} {v:g}" for k, v in list(rec["calls_by_name"].items())[:6])
        print(f"| {name} | {optimizer} | {rec['array_calls']:g} | {rec['syncs']:g} "
              f"({', '.join(f'{k} {v:g}' for k, v in rec['syncs_by_name'].items()) or '-'}) | "
              f"{rec['uploads']:g} | {top} |")
    if args.json:
        _timing.write_records(args.json, records, "step_counts", None, threads=1, quick=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
