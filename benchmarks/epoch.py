"""Epoch time of the MLP and the small CNN: tinynet vs a hand-written NumPy MLP and PyTorch,
on the CPU and (when CuPy sees one) a GPU. A thin wrapper over ``tinynet.bench``; the options are
those of ``tinynet bench``:

    python benchmarks/epoch.py --threads 1 --epochs 3 --out benchmarks/results/epoch
    python benchmarks/epoch.py --quick

The records also carry this checkout's git revision and OpenBLAS's runtime thread count
(``_timing.environment``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing

from tinynet import bench, cli


def main(argv: list) -> int:
    args = cli.build_parser().parse_args(["bench", *argv])
    bench.EXTRA_ENVIRONMENT = _timing.environment  # git revision, OpenBLAS runtime threads
    # a rerun with pinned threads goes through ``python -m tinynet bench``, which lacks the extras
    return bench.main(args, ["bench", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
