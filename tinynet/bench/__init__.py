"""``tinynet bench``: epoch benchmarks of tinynet against a hand-written NumPy MLP and PyTorch,
on the CPU and a GPU (the command-line tool; ``benchmarks/`` holds the other benchmark scripts).

It trains the MLP 784-256-128-10 and a small CNN on MNIST-shaped synthetic data (and, with
``--model gru,lstm``, MNIST-1D's bidirectional GRU and an LSTM 64 -> 128 on sequences) with SGD
momentum and cross entropy, and times whole epochs: a warm-up epoch excluded, the median of the measured
epochs reported with its spread, each phase of a step timed (data, forward with the loss read,
backward, optimizer) with the device synchronised before every clock read. Matrix-product FLOPs
per epoch give GFLOP/s against a float32 matmul peak measured in the same run. Also: an MLP
width sweep (``--widths``), the fixed cost of one training step, and BLAS threads as a lever
(``--threads 1,2`` or ``auto``).

Modules, in reading order:

* ``workloads.py``: the networks, their synthetic data, FLOP counts, tinynet's training step;
* ``harness.py``: the timing machinery (warm-up, timed epochs, traced memory, the matmul peak)
  and tinynet's timed epochs;
* ``references.py``: the hand-written NumPy MLP and PyTorch, timed the same way;
* ``threads.py``: pinning BLAS threads, one child process per count, ``--threads auto``;
* ``run.py``: one run over devices, models, implementations and batch sizes -> a JSON document;
* ``report.py``: the Markdown tables, the GPU-vs-CPU crossover and the plot, from that document;
* ``cli.py``: the options and ``main``.
"""

from .cli import add_parser, main
from .harness import trial_step_us
from .references import NumpyMLP, torch_status
from .run import merge_thread_runs, run_bench
from .threads import THREAD_ENV_VARS, faster_thread_count
from .workloads import build_tinynet, step_flops, synthetic_data

__all__ = ["THREAD_ENV_VARS", "NumpyMLP", "add_parser", "build_tinynet", "faster_thread_count",
           "main", "merge_thread_runs", "run_bench", "step_flops", "synthetic_data",
           "torch_status", "trial_step_us"]
