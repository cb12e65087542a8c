"""tn.distributed in one process: the process group and its errors, the ``local`` backend's
collectives, the flat gradient buffer, DistributedOptimizer, SyncBatchNorm, broadcasts,
per-rank seeds, fit and checkpoints with a group, and ``tinynet train --backend``.

Runs across real processes are in test_distributed_mpi.py; the sampler in
test_distributed_sampler.py.
"""

import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.distributed as dist
from tinynet import cli
from tinynet.distributed.buffer import GradientBuckets


@pytest.fixture
def local_group():
    """A ``local`` process group for the test, removed afterwards."""
    dist.init_process_group("local")
    yield dist.default_group()
    dist.destroy_process_group()


def mlp(dtype=None, device=None, bn=False):
    tn.manual_seed(0)
    layers = [tn.nn.Linear(4, 8, bias=not bn)]
    if bn:
        layers.append(tn.nn.BatchNorm1d(8))
    layers += [tn.nn.ReLU(), tn.nn.Linear(8, 3)]
    return tn.nn.Sequential(*layers).to(device=device, dtype=dtype)


def batches(n=4, dtype=None, device=None):
    gen = tn.Generator(5)
    return [(tn.randn(6, 4, generator=gen, dtype=dtype, device=device),
             tn.randint(0, 3, (6,), generator=gen, device=device)) for _ in range(n)]


def train(model, opt, data, passes=1):
    for x, y in data:
        opt.zero_grad()
        for _ in range(passes):
            tn.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return {k: v.cpu().numpy() for k, v in model.state_dict().items()}


# --- the process group ------------------------------------------------------------------------
def test_no_group_until_one_is_made():
    assert not dist.is_initialized()
    assert dist.rank_and_size() == (0, 1)
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        dist.all_reduce(tn.ones(2))


def test_auto_without_a_launcher_is_local(monkeypatch):
    for name in dist.LAUNCHER_SIZE_VARS:
        monkeypatch.delenv(name, raising=False)
    dist.init_process_group("auto")
    try:
        assert (dist.get_backend(), dist.get_rank(), dist.get_world_size()) == ("local", 0, 1)
        assert dist.get_local_rank() == 0 and dist.is_initialized()
        with pytest.raises(ValueError, match="already exists"):
            dist.init_process_group("local")
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_bad_backends_are_named(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        dist.init_process_group("gloo")
    monkeypatch.setenv("PMI_SIZE", "4")  # as mpiexec -n 4 would set it
    assert dist.launcher_world_size() == 4
    with pytest.raises(ValueError, match="'local' is a single process, but the launcher started 4"):
        dist.init_process_group("local")
    assert not dist.is_initialized()


# --- collectives on the local backend -----------------------------------------------------------
def test_local_collectives_are_the_identity(local_group, device):
    t = tn.tensor([1.5, -2.0, 3.0], device=device)
    for op in ("sum", "avg", "max"):
        dist.all_reduce(t, op=op)
        assert t.cpu().numpy().tolist() == [1.5, -2.0, 3.0]
    dist.broadcast(t, src=0)
    assert t.cpu().numpy().tolist() == [1.5, -2.0, 3.0]
    assert dist.broadcast_object({"a": 1}) == {"a": 1}
    assert dist.all_gather_object("x") == ["x"]
    dist.barrier()


def test_collectives_reject_bad_arguments(local_group):
    with pytest.raises(ValueError, match="op must be one of 'sum', 'avg', 'max', got 'mean'"):
        dist.all_reduce(tn.ones(2), op="mean")
    with pytest.raises(TypeError,
                       match=r"op='avg' needs a floating tensor, got int64 of shape \(3,\)"):
        dist.all_reduce(tn.arange(3), op="avg")
    with pytest.raises(TypeError, match="expected a Tensor, got ndarray"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match="src=1 is not a rank of this 1-process group"):
        dist.broadcast(tn.ones(2), src=1)
    with pytest.raises(ValueError, match="src=-1"):
        dist.broadcast_object(3, src=-1)


def test_differentiable_all_reduce_is_checked_numerically(local_group):
    x = tn.randn(3, 2, dtype="float64", requires_grad=True)
    assert tn.gradcheck(lambda a: dist.functional.all_reduce(a * a, op="sum"), (x,))
    assert tn.gradgradcheck(lambda a: dist.functional.all_reduce(a * a, op="avg"), (x,))
    with pytest.raises(ValueError, match="op must be 'sum' or 'avg'"):
        dist.functional.all_reduce(x, op="max")


# --- the flat gradient buffer ---------------------------------------------------------------------
def test_buckets_hold_the_parameters_in_backward_order_within_the_cap():
    model = mlp()  # 4x8 weight, 8 bias, 8x3 weight, 3 bias: 32, 8, 24, 3 float32 values
    params = list(model.parameters())
    one = GradientBuckets(params, bucket_cap_mb=math.inf)
    assert len(one.buckets) == 1 and one.buckets[0].params == params[::-1]
    assert one.numel == 67 and one.buckets[0].flat.shape == (67 + 4,)  # values, then 4 flags
    def shapes(cap_bytes):
        buckets = GradientBuckets(params, bucket_cap_mb=cap_bytes / 2**20)
        return [[tuple(p.shape) for p in b.params] for b in buckets.buckets]

    # 12 + 96 + 32 bytes fit in 140; the 128 bytes of (8, 4) start the next bucket
    assert shapes(140) == [[(3,), (3, 8), (8,)], [(8, 4)]]
    # a tensor above the cap gets a bucket of its own
    assert shapes(100) == [[(3,)], [(3, 8)], [(8,)], [(8, 4)]]
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number"):
        GradientBuckets(params, bucket_cap_mb=0)
    frozen = tn.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter requires a gradient"):
        GradientBuckets(list(frozen.parameters()))


@settings(max_examples=12)
@given(cap=st.sampled_from([math.inf, 1e-4, 3e-5]), overlap=st.booleans(),
       seed=st.integers(0, 100), unused=st.booleans())
def test_averaging_over_one_rank_keeps_every_gradient_bitwise(cap, overlap, seed, unused):
    dist.init_process_group("local")
    try:
        tn.manual_seed(seed)
        model = tn.nn.Sequential(tn.nn.Linear(3, 5), tn.nn.Tanh(), tn.nn.Linear(5, 2))
        spare = tn.nn.Linear(2, 2)  # in the buffer; in the graph only when not "unused"
        params = [*model.parameters(), *spare.parameters()]
        buckets = GradientBuckets(params, cap)
        group = dist.default_group()
        if overlap:  # as DistributedOptimizer(overlap=True) does: hooks fill, finish() waits
            hooks = [p.register_hook(lambda g, p=p: buckets.mark_ready(group, p, g.data))
                     for p in params]
        out = model(tn.randn(4, 3))
        ((out if unused else spare(out)) ** 2).sum().backward()
        expected = [None if p.grad is None else p.grad.numpy().copy() for p in params]
        if overlap:
            buckets.finish(group)
            for h in hooks:
                h.remove()
        else:
            buckets.average(group)
        for p, e in zip(params, expected):
            if e is None:  # no gradient on any rank: the optimizer must skip it
                assert p.grad is None
                continue
            np.testing.assert_array_equal(p.grad.numpy(), e)
            # each .grad is now a view of its bucket: no copy back
            bucket = next(b for b in buckets.buckets if any(q is p for q in b.params))
            assert np.shares_memory(p.grad.numpy(), bucket.flat)
    finally:
        dist.destroy_process_group()


def test_parameters_without_gradients_keep_none_and_accumulation_stays_in_place(local_group,
                                                                                 device):
    model = mlp(device=device)
    first, second = model[0], model[2]
    buckets = GradientBuckets(list(model.parameters()), math.inf)
    second.weight.grad = tn.ones(3, 8, device=device)  # only one parameter has a gradient
    buckets.average(local_group)
    assert first.weight.grad is None and first.bias.grad is None and second.bias.grad is None
    assert second.weight.grad.cpu().numpy().tolist() == np.ones((3, 8)).tolist()
    # a second backward without zeroing accumulates into the bucket's view; nothing is lost
    second.weight.grad.data[...] += 2.0
    buckets.average(local_group)
    assert second.weight.grad.cpu().numpy().tolist() == np.full((3, 8), 3.0).tolist()


# --- DistributedOptimizer -------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda p: tn.optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: tn.optim.Adam(p, lr=0.01)], ids=["sgd", "adam"])
@pytest.mark.parametrize("overlap,passes", [(False, 1), (True, 1), (True, 2)])
def test_one_rank_steps_exactly_as_the_wrapped_optimizer(local_group, device, make, overlap,
                                                         passes):
    data = batches(device=device)
    plain = mlp(device=device)
    expected = train(plain, make(plain.parameters()), data, passes)
    model = mlp(device=device)
    opt = dist.DistributedOptimizer(make(model.parameters()), bucket_cap_mb=1e-4,
                                    overlap=overlap, backward_passes_per_step=passes)
    got = train(model, opt, data, passes)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    # the wrapper's state is the optimizer's: same keys, same layout, shared param groups
    assert opt.state_dict().keys() == {"state", "param_groups"}
    assert opt.param_groups is opt.optimizer.param_groups and opt.state is opt.optimizer.state


def test_distributed_optimizer_works_with_schedules_and_clipping(local_group):
    model = mlp()
    opt = dist.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=1.0))
    schedule = tn.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # accepts the wrapper
    schedule.step()
    assert opt.optimizer.param_groups[0]["lr"] == 0.5
    x, y = batches(1)[0]
    tn.nn.functional.cross_entropy(model(x), y).backward()
    opt.synchronize()  # average first, clip the averaged gradients, then step without averaging
    tn.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e-3)
    before = model[0].weight.numpy().copy()
    with opt.skip_synchronize():
        opt.step()
    assert np.abs(model[0].weight.numpy() - before).max() <= 0.5 * 1e-3 + 1e-9
    assert "DistributedOptimizer(world_size=1, buckets=1" in repr(opt)


def test_distributed_optimizer_rejects_what_it_cannot_wrap(local_group):
    model = mlp()
    with pytest.raises(TypeError, match="wraps a tn.optim optimizer, got list"):
        dist.DistributedOptimizer(list(model.parameters()))
    with pytest.raises(ValueError, match="backward_passes_per_step must be a positive integer"):
        dist.DistributedOptimizer(tn.optim.SGD(model.parameters()), backward_passes_per_step=0)


# --- SyncBatchNorm, broadcasts, seeds -------------------------------------------------------------
def test_sync_batchnorm_on_one_rank_is_batchnorm(local_group, device):
    data = batches(device=device)
    plain = mlp(device=device, bn=True)
    expected = train(plain, tn.optim.SGD(plain.parameters(), lr=0.1), data)
    model = mlp(device=device, bn=True)
    params = list(model.parameters())
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], dist.SyncBatchNorm)
    assert all(a is b for a, b in zip(params, model.parameters()))  # the optimizer's objects
    got = train(model, tn.optim.SGD(model.parameters(), lr=0.1), data)
    assert got.keys() == expected.keys()  # BatchNorm's state-dict keys
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    alone = dist.SyncBatchNorm.convert_sync_batchnorm(tn.nn.BatchNorm2d(3))
    assert isinstance(alone, dist.SyncBatchNorm) and alone.num_features == 3


def test_broadcasts_on_one_rank_change_nothing_and_check_their_input(local_group):
    model = mlp()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    dist.broadcast_parameters(model)
    dist.broadcast_parameters(model.named_parameters())
    opt = tn.optim.Adam(model.parameters(), lr=0.1)
    train(model, opt, batches(1))
    state = opt.state_dict()
    dist.broadcast_optimizer_state(opt)
    assert opt.state_dict()["state"][0]["step"] == state["state"][0]["step"] == 1
    assert not np.array_equal(before["0.weight"], model[0].weight.numpy())
    with pytest.raises(TypeError, match="'w' is a ndarray, not a Tensor"):
        dist.broadcast_parameters({"w": np.ones(2)})
    with pytest.raises(TypeError, match="expected a tn.optim optimizer, got Sequential"):
        dist.broadcast_optimizer_state(model)
    with pytest.raises(ValueError, match="src=3 is not a rank"):
        dist.broadcast_parameters(model, src=3)


def test_seed_per_rank_gives_a_repeatable_stream_of_its_own():
    seed = dist.seed_per_rank(7)  # no group: rank 0
    a = tn.rand(5).numpy()
    assert dist.seed_per_rank(7) == seed and np.array_equal(tn.rand(5).numpy(), a)
    assert dist.seed_per_rank(8) != seed and seed != 7 and seed >= 0


# --- fit, checkpoints and the command line with a group ---------------------------------------
def test_fit_with_a_one_rank_group_trains_as_without_and_sets_the_sampler_epoch(local_group,
                                                                                tmp_path):
    x, y = tn.randn(40, 4, generator=tn.Generator(1)), tn.randint(0, 3, (40,),
                                                                  generator=tn.Generator(2))
    ds = tn.data.TensorDataset(x, y)
    runs = []
    for wrap in (False, True):
        model = mlp()
        opt = tn.optim.SGD(model.parameters(), lr=0.1)
        sampler = tn.data.DistributedSampler(ds, seed=4)
        loader = tn.data.DataLoader(ds, batch_size=8, sampler=sampler)
        history = tn.train.fit(model, tn.nn.CrossEntropyLoss(),
                               dist.DistributedOptimizer(opt) if wrap else opt, loader, epochs=3,
                               val_loader=loader, progress=False,
                               callbacks=[tn.train.ModelCheckpoint(tmp_path / str(wrap))])
        assert sampler.epoch == 2  # fit called set_epoch(0), (1), (2)
        runs.append(([(r["loss"], r["val_loss"]) for r in history.epochs],
                     model[0].weight.numpy().copy()))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    ckpt = tn.load(tmp_path / "True" / "last.npz")
    assert ckpt["rank_rngs"] is None and ckpt["train_loader"]["sampler"]["epoch"] == 2
    # a checkpoint of a 2-process job cannot be resumed by one process
    ckpt["rank_rngs"] = [{"rng": ckpt["rng"], "module_rngs": {}}] * 2
    tn.save(ckpt, tmp_path / "two.npz")
    model = mlp()
    with pytest.raises(ValueError, match="written by a job of 2 process"):
        tn.train.resume(tmp_path / "two.npz", model, tn.optim.SGD(model.parameters(), lr=0.1))


def test_evaluate_sync_false_and_an_empty_loader(local_group):
    model = mlp()
    ds = tn.data.TensorDataset(*batches(1)[0])
    result = tn.train.evaluate(model, tn.data.DataLoader(ds, batch_size=4), sync=False)
    assert set(result) == {"accuracy"}
    with pytest.raises(ValueError, match="yielded no batches on any rank"):
        tn.train.evaluate(model, [], sync=True)


QUICK = ("--augment", "none", "--quiet", "--epochs", "1")


def test_tinynet_train_with_a_local_group_is_the_plain_run(tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path / "plain"), *QUICK]) == 0
    assert cli.main(["train", "--backend", "local", "--out", str(tmp_path / "local"),
                     *QUICK]) == 0
    assert not dist.is_initialized()  # the command removed the group it made
    plain = (tmp_path / "plain" / "history.csv").read_text().splitlines()
    local = (tmp_path / "local" / "history.csv").read_text().splitlines()
    column = plain[0].split(",").index("time")
    strip = [[v for i, v in enumerate(line.split(",")) if i not in (column, column + 1)]
             for line in (plain[1], local[1])]
    assert strip[0] == strip[1]  # loss, accuracy, validation: identical (time aside)


def test_tinynet_train_reports_a_backend_it_cannot_use(tmp_path, capsys):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed: the nccl backend may start")
    except ImportError:
        pass
    status = cli.main(["train", "--backend", "nccl", "--out", str(tmp_path / "r"), *QUICK])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith("tinynet train: error: --backend nccl: backend 'nccl' needs CuPy")


# --- docs/distributed.md and the example, as one process ------------------------------------------
ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_docs_snippets_run():
    text = (ROOT / "docs" / "distributed.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/distributed.md block {i}", "exec"), {})  # noqa: S102
    assert not dist.is_initialized()  # the script block leaves no group behind


def test_the_example_runs_as_one_process():
    example = ROOT / "examples" / "11_data_parallel.py"
    done = subprocess.run([sys.executable, str(example), "--epochs", "3"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 rank(s): 1438 of the 1438 training samples per rank" in done.stdout
    assert "weights identical on every rank: True" in done.stdout


def test_the_abort_message_names_what_was_raised_on_its_first_line(capsys):
    # MPI_Abort can end the launcher before it forwards all of a rank's stderr: the line written
    # first must already say what was raised, not only the traceback after it
    from tinynet.distributed import group  # noqa: PLC0415

    assert not dist.is_initialized()
    error = RuntimeError("boom on rank 0\nsecond line")
    group._abort_on_exception(RuntimeError, error, None)  # no group: reports, aborts nothing
    first = capsys.readouterr().err.splitlines()[0]
    assert first == ("tinynet.distributed: rank 0 of 1 raised RuntimeError: boom on rank 0; "
                     "aborting the job")
