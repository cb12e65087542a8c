"""Data parallelism across real processes: ``mpiexec -n 2`` runs of tests/mpi_worker.py and of
``tinynet train``, each bounded by a timeout.

Each run writes what every rank measured to JSON files; the assertions are here. They are skipped,
with the reason, only where MPI cannot start (mpi4py or an ``mpiexec`` missing, or a trivial job
failing); the ``test`` extra installs mpi4py and the MPICH wheel, so CI runs them.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mpi_worker.py"
TIMEOUT = 120  # seconds for one job on a shared 2-core machine; a healthy one takes a few


def _mpiexec() -> list | None:
    """The launcher next to this interpreter (the MPI mpi4py was built against), else PATH's;
    Open MPI needs leave to oversubscribe and, as root, to run."""
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or \
        shutil.which("mpiexec")
    if found is None:
        return None
    command = [found]
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        command += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return command


def _env() -> dict:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"  # two ranks on two cores: one BLAS thread each
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def mpiexec():
    """The mpiexec command, or a skip saying why MPI cannot start here."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip('mpi4py is not installed (pip install "tinynet[dist]")')
    command = _mpiexec()
    if command is None:
        pytest.skip("no mpiexec found (the MPICH wheel of the dist extra provides one)")
    size_is_2 = "import sys; from mpi4py import MPI; sys.exit(MPI.COMM_WORLD.Get_size() != 2)"
    probe = subprocess.run(command + ["-n", "2", sys.executable, "-c", size_is_2],
                           capture_output=True, text=True, timeout=TIMEOUT, env=_env(),
                           stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        pytest.skip(f"MPI cannot start a 2-process job here (exit status {probe.returncode}): "
                    f"{probe.stderr.strip()[-300:]}")
    return command


def run_job(mpiexec, args, timeout=TIMEOUT, ranks=2):
    start = time.perf_counter()
    try:
        done = subprocess.run(mpiexec + ["-n", str(ranks), *args], capture_output=True, text=True,
                              timeout=timeout, env=_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the 2-process job hung for {timeout} s: {args}\n{error.stderr}")
    return done, time.perf_counter() - start


def scenario(mpiexec, name, tmp_path, ranks=2, backend="mpi") -> list:
    done, _ = run_job(mpiexec, [sys.executable, str(WORKER), name, str(tmp_path), backend],
                      ranks=ranks)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp_path / f"{name}-rank{r}.json").read_text()) for r in range(ranks)]


def test_two_ranks_train_as_one_process_on_the_global_batches(mpiexec, tmp_path):
    r0, r1 = scenario(mpiexec, "train", tmp_path)
    assert r0["world"] == 2
    for key in ("cpu-flat", "cpu-overlap", "standin-flat", "standin-overlap"):
        # ranks bitwise equal after two epochs; float64 equal to one process on the global
        # batches (SyncBatchNorm, Adam, averaged gradients) within 1e-12
        assert r0[key]["identical"] and r1[key]["identical"], key
        assert r0[key]["max_diff"] < 1e-12, (key, r0[key]["max_diff"])
        # the logs are the job's: the same on both ranks
        assert r0[key]["history"] == r1[key]["history"], key
    assert r0["cpu-flat"]["buckets"] == 1 and r0["cpu-overlap"]["buckets"] > 1
    # float32 with dropout: each rank draws its own masks, the weights stay bitwise equal
    assert r0["float32_dropout"]["identical"] and r0["float32_dropout"]["masks_differ"]


def test_collectives_and_broadcasts_between_two_ranks(mpiexec, tmp_path):
    r0, r1 = scenario(mpiexec, "collectives", tmp_path)
    for r in (r0, r1):  # rank r holds [r + 1, 10 r]
        assert r["sum"] == [3.0, 10.0] and r["avg"] == [1.5, 5.0] and r["max"] == [2.0, 10.0]
        assert r["strided"] == [2.0, 10.0, 18.0]  # a strided view, reduced and written back
        assert r["broadcast_standin"] == [1.0, 1.0, 1.0]  # staged through the host
        assert r["object"] == {"seed": 7} and r["gathered"] == ["rank0", "rank1"]
        assert "src=2 is not a rank of this 2-process group" in r["bad_src"]
        assert r["differ_before"] and r["identical_after"]
    # rank 1 had lr 0.5 and no state: now rank 0's hyper-parameters and moments
    assert r1["optimizer"] == r0["optimizer"]
    assert r1["optimizer"]["lr"] == 0.1 and r1["optimizer"]["state"]["0/step"] == 3
    # buckets started from hooks on the 2nd backward of each step: the same as in step()
    assert r0["overlap_accumulates"] == r1["overlap_accumulates"] == [True, 2]
    assert r0["moved"] == r1["moved"] == ["float64", True]


def test_callbacks_decide_together_and_rank_zero_writes(mpiexec, tmp_path):
    r0, r1 = scenario(mpiexec, "callbacks", tmp_path)
    assert r0["history"] == r1["history"]
    # one checkpoint writer, one log writer, each rank having asked for its own folder/file
    assert (tmp_path / "ckpt-rank0" / "last.npz").is_file()
    assert not (tmp_path / "ckpt-rank1").exists() and not (tmp_path / "log-rank1.csv").exists()
    assert (tmp_path / "log-rank0.csv").read_text().count("\n") == 4  # header + 3 epochs
    assert r0["rank_rngs"] == [2, True]  # both ranks' dropout streams, different
    assert r0["early_stop"] == r1["early_stop"] == 2
    # rank 1 alone stopped at its 2nd batch: rank 0 stopped there too, with rank 1's reason
    assert r0["stop_on_one"] == r1["stop_on_one"] == [0, "rank 1 stopped", 2]
    assert r0["nan"] == r1["nan"]
    assert r0["nan"][0] == 0 and "iteration 1/4" in r0["nan"][1]
    # 1 epoch + resume + 1 epoch is bitwise the 2-epoch run on every rank, dropout included
    assert r0["resume_bitwise"] and r1["resume_bitwise"]


def test_an_exception_on_one_rank_aborts_the_job_within_seconds(mpiexec, tmp_path):
    done, seconds = run_job(mpiexec, [sys.executable, str(WORKER), "fail", str(tmp_path)],
                            timeout=60)
    assert done.returncode != 0
    assert "boom on rank 1" in done.stderr and "rank 1 of 2 raised" in done.stderr
    assert seconds < 30  # rank 0, blocked in an all-reduce, was ended, not left waiting
    assert not list(tmp_path.glob("fail-rank*.json"))


def test_tinynet_train_runs_under_mpiexec(mpiexec, tmp_path):
    out = tmp_path / "run"
    done, _ = run_job(mpiexec, [sys.executable, "-m", "tinynet", "train", "--epochs", "2",
                                "--augment", "none", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(re.findall(r"^test accuracy [0-9.]+ ", done.stdout, re.M)) == 1  # rank 0 alone
    assert "data-parallel on 2 ranks (mpi)" in done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2 and config["backend"] == "mpi"
    assert config["result"]["test_accuracy"] > 0.85
    assert (out / "best.npz").is_file() and (out / "history.csv").is_file()


def test_tinynet_train_errors_end_every_rank(mpiexec, tmp_path):
    done, _ = run_job(mpiexec, [sys.executable, "-m", "tinynet", "train", "--dataset",
                                "mnist", "--data-dir", str(tmp_path / "missing")], timeout=60)
    assert done.returncode == 2
    # each rank says it (the first to abort may end the other before it has printed)
    assert "--data-dir: no such folder" in done.stderr and " of 2): " in done.stderr
    assert "Traceback" not in done.stderr


def test_the_example_runs_on_two_ranks(mpiexec):
    done, _ = run_job(mpiexec, [sys.executable, str(HERE.parent / "examples" /
                                                    "11_data_parallel.py"), "--epochs", "4"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 rank(s): 719 of the 1438 training samples per rank" in done.stdout
    assert "32 per rank = 64 per step" in done.stdout
    assert "weights identical on every rank: True" in done.stdout
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.9


@pytest.mark.gpu
@pytest.mark.parametrize("ranks,backend", [(1, "nccl"), (2, "nccl"), (2, "mpi")],
                         ids=["nccl-1-rank", "nccl-2-ranks", "mpi-2-ranks-one-gpu"])
def test_training_on_gpus(mpiexec, tmp_path, ranks, backend):
    """NCCL with a GPU per rank; MPI with host staging for two ranks sharing one GPU (NCCL
    refuses two ranks on one device)."""
    import tinynet as tn

    if not tn.cuda.is_available():
        pytest.skip("cuda: CuPy or a CUDA device is missing")
    if backend == "nccl" and tn.cuda.device_count() < ranks:
        pytest.skip(f"nccl with {ranks} ranks needs {ranks} GPUs, this machine has "
                    f"{tn.cuda.device_count()}")
    results = scenario(mpiexec, "gpu", tmp_path, ranks=ranks, backend=backend)
    for r in results:
        assert r["backend"] == backend
        assert r["avg"] == [(ranks + 1) / 2, 2.0]
        for key in ("overlap=False", "overlap=True"):
            assert r[key]["identical"], key
    for key in ("overlap=False", "overlap=True"):
        assert results[0][key]["max_diff"] < 1e-12, key
