"""GPU budgets, counted on the stand-in device: array calls (~ kernel launches) and host syncs per
training step, so that a change that would make the GPU path launch- or sync-bound fails CI.

Per step means the difference between an epoch of LONG and an epoch of SHORT batches, divided by
LONG - SHORT: what an epoch does once (its reads, creating the optimizer's state on the first
step) cancels out. The budgets (issue "GPU-ready by construction"; benchmarks/step_counts.py
reports the same counts for more models):

* ``fit`` and the textbook loop of the examples: 0 host syncs per step;
* ``fit`` on the MLP 784-256-128-10 at batch 32: <= 40 array calls per step with Adam, <= 30
  with SGD(momentum); the batch's two uploads and nothing else (dropout masks are drawn on the
  device).
"""

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn

SHORT, LONG = 2, 6
ROOT = Path(__file__).resolve().parent.parent


def mlp(dropout=0.0):
    return tn.models.mlp(784, hidden=(256, 128), num_classes=10, dropout=dropout)


def fit_epoch_counts(build, optimizer, batches: int, batch_size: int = 32, **fit_options):
    """The stand-in's counts for one fit epoch of ``batches`` batches."""
    tn.manual_seed(0)
    rng = np.random.default_rng(0)
    n = batches * batch_size
    data = tn.data.TensorDataset(rng.standard_normal((n, 784), dtype=np.float32),
                                 rng.integers(0, 10, n))
    loader = tn.data.DataLoader(data, batch_size=batch_size, shuffle=True, seed=0)
    model = build().to("standin")
    opt = optimizer(model.parameters())
    with tn.backend.count_calls() as counts:
        tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt, loader, epochs=1, device="standin",
                     **{"progress": False, **fit_options})
    return counts


def per_step(build, optimizer, **fit_options) -> dict:
    fit_epoch_counts(build, optimizer, SHORT, **fit_options)  # warm-up: once-per-process work
    short = fit_epoch_counts(build, optimizer, SHORT, **fit_options)
    long = fit_epoch_counts(build, optimizer, LONG, **fit_options)
    steps = LONG - SHORT
    return {"calls": (long.array_calls - short.array_calls) / steps,
            "syncs": (long.syncs - short.syncs) / steps,
            "uploads": (long.uploads - short.uploads) / steps,
            "epoch_syncs": short.syncs}


ADAM = ("adam", lambda ps: tn.optim.Adam(ps, lr=1e-3), 40)
SGD = ("sgd-momentum", lambda ps: tn.optim.SGD(ps, lr=0.01, momentum=0.9), 30)


@pytest.mark.parametrize("name, optimizer, budget", [ADAM, SGD], ids=lambda v: str(v)[:12])
def test_fit_step_meets_the_launch_and_sync_budget(name, optimizer, budget):
    counts = per_step(mlp, optimizer)
    assert counts["syncs"] == 0
    assert counts["calls"] <= budget, f"{name}: {counts['calls']} array calls per step"
    assert counts["uploads"] == 2  # the batch's inputs and labels
    # The epoch's own reads: the clock's synchronize and one read of the running sums.
    assert counts["epoch_syncs"] == 2


def test_dropout_adds_no_upload_and_no_sync():
    counts = per_step(lambda: mlp(dropout=0.2), ADAM[1])
    assert counts["syncs"] == 0 and counts["uploads"] == 2
    assert counts["calls"] <= ADAM[2] + 2 * 3  # per dropout layer: the mask, two products


def test_progress_bar_reads_every_50_batches_on_a_device():
    stream = io.StringIO()
    bar = tn.train.callbacks.ProgressBar(stream=stream, use_tqdm=False)
    counts = fit_epoch_counts(mlp, SGD[1], 101, batch_size=2, progress=False, callbacks=[bar])
    # synchronize + the epoch read + the bar's reads at batches 1, 50, 100
    assert counts.syncs == 2 + 3
    assert "loss" in stream.getvalue()
    with pytest.raises(ValueError, match="refresh_every must be an integer >= 50"):
        tn.train.callbacks.ProgressBar(refresh_every=10)


def test_bad_labels_in_fit_raise_the_label_error_at_the_epochs_read():
    """A label out of range never gives a silently wrong loss: the device check's flag comes back
    with the epoch's read of the running sums, and raises the cross-entropy error there."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 64)
    labels[37] = 12
    data = tn.data.TensorDataset(rng.standard_normal((64, 784), dtype=np.float32), labels)
    model = mlp().to("standin")
    opt = tn.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"cross_entropy: target labels must be in \[0, 9\].*"
                                         r"got label 12 \(1 out of range\); checked on standin"):
        tn.train.fit(model, tn.nn.CrossEntropyLoss(), opt,
                     tn.data.DataLoader(data, batch_size=16), epochs=1, progress=False)
    model = mlp()
    with pytest.raises(ValueError, match="got label 12"):  # at once on the CPU
        tn.train.fit(model, tn.nn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
                     tn.data.DataLoader(data, batch_size=16), epochs=1, progress=False)


def test_batch_logs_read_the_loss_only_when_asked():
    seen = []

    class Reads(tn.train.callbacks.Callback):
        def on_batch_end(self, state):
            if state.iteration == 2:
                seen.append(state.batch_logs["loss"])  # one read

    with_read = fit_epoch_counts(mlp, SGD[1], 4, callbacks=[Reads()])
    without = fit_epoch_counts(mlp, SGD[1], 4)
    assert with_read.syncs == without.syncs + 1 and isinstance(seen[0], float)


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_textbook_loop_reads_once_per_epoch(capsys):
    """examples/05_textbook_loop.py on the stand-in: the same syncs for 6 and 23 batches an epoch
    (the epoch's two reads: the training loss and the validation count)."""
    loop = _example("05_textbook_loop")
    syncs = []
    for batch_size in (256, 64):
        with tn.backend.count_calls() as counts:
            loop.main(["--epochs", "1", "--batch-size", str(batch_size), "--device", "standin"])
        syncs.append(counts.syncs)
    assert syncs[0] == syncs[1] == 2
    assert "val accuracy" in capsys.readouterr().out


def test_index_checks_cost_no_sync():
    emb = tn.nn.Embedding(50, 8, device="standin")
    x = tn.randn(10, 50, device="standin", requires_grad=True)
    idx = tn.tensor([1, 4, 9], device="standin")
    labels = tn.tensor(np.arange(10) % 50, device="standin")
    with tn.backend.count_calls() as counts:
        emb(idx).sum().backward()
        x[idx].sum().backward()
        tn.nn.functional.cross_entropy(x, labels).backward()
        tn.nn.functional.cross_entropy(x, labels, label_smoothing=0.1).backward()
    assert counts.syncs == 0


def test_large_initialisation_is_drawn_on_the_device():
    with tn.backend.count_calls() as counts:
        layer = tn.nn.Linear(1024, 512, device="standin")  # 512k weights, 512 biases
    assert counts.uploads == 1  # the small bias only
    assert counts.calls["tinynet_uniform"] == 1
    tn.manual_seed(3)
    on_device = tn.nn.Linear(1024, 512, device="standin").weight.cpu().numpy()
    tn.manual_seed(3)
    np.testing.assert_array_equal(on_device, tn.nn.Linear(1024, 512).weight.numpy())
    assert np.abs(on_device).max() <= 1 / 32 and layer.weight.shape == (512, 1024)


def _norm_counts(fn, shape, channels):
    """The stand-in's counts for one forward + backward of ``fn(x, w, b)`` (the second of two
    runs, each starting with no .grad, so nothing accumulates)."""
    x = tn.randn(*shape, device="standin", requires_grad=True)
    w = tn.ones(channels, device="standin", requires_grad=True)
    b = tn.zeros(channels, device="standin", requires_grad=True)
    g = tn.randn(*shape, device="standin")
    for _ in range(2):
        x.grad = w.grad = b.grad = None
        with tn.backend.count_calls() as counts:
            fn(x, w, b).backward(g)
    return counts


@pytest.mark.parametrize("layer, budget", [("batch_norm_train", 26), ("batch_norm_eval", 11),
                                           ("layer_norm", 24)])
def test_norm_forward_backward_launch_budget(layer, budget):
    """BatchNorm2d on (32, 16, 8, 8) (training: running statistics updated too) and LayerNorm on
    (32, 128): the primitives with a written-out backward make fewer array calls than the
    compositions they replaced (benchmarks/norm.py: 43, 14 and 32), and no host sync."""
    from tinynet.testing.norm_reference import composed_batch_norm, composed_layer_norm

    F = tn.nn.functional
    rm, rv = tn.zeros(16, device="standin"), tn.ones(16, device="standin")
    if layer == "layer_norm":
        calls = [_norm_counts(lambda x, w, b, f=f: f(x, 128, w, b), (32, 128), 128)
                 for f in (F.layer_norm, composed_layer_norm)]
    else:
        training = layer == "batch_norm_train"
        calls = [_norm_counts(lambda x, w, b, f=f: f(x, rm, rv, w, b, training), (32, 16, 8, 8),
                              16) for f in (F.batch_norm, composed_batch_norm)]
    primitive, composed = calls
    assert primitive.syncs == composed.syncs == 0
    assert primitive.array_calls <= budget, dict(primitive.calls)
    assert primitive.array_calls < composed.array_calls
