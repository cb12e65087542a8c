"""Epoch time of the MLP and the small CNN: tinynet vs a hand-written NumPy MLP and PyTorch,
on the CPU and (when CuPy sees one) a GPU, plus the MLP width sweep and the fixed cost per
training step. A thin wrapper over ``tinynet.bench``; the options are those of ``tinynet bench``:

    python benchmarks/epoch.py --threads 1 --epochs 3 --out benchmarks/results/epoch
    python benchmarks/epoch.py --threads 1,2 --model mlp --widths 256,512,1024,2048,4096
    python benchmarks/epoch.py --quick

The records also carry this checkout's git revision and OpenBLAS's runtime thread count
(``_timing.environment``), in the child processes of ``--threads`` too: they rerun this script.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing

from tinynet import bench, cli


def main(argv: list) -> int:
    args = cli.build_parser().parse_args(["bench", *argv])
    # extra record fields: git revision, OpenBLAS runtime threads; a child process (one per
    # --threads count) reruns this script, so it keeps them
    return bench.main(args, ["bench", *argv], extra_environment=_timing.environment,
                      child_command=[sys.executable, os.path.abspath(__file__)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
