"""plot_gradient_flow labels its lines: every gradient-norm line says when it was measured (epoch
and batch) in a legend, one entry per line up to eight, and the update-ratio lines name their
parameters."""

import io

import pytest

import tinynet as tn
from tinynet import nn
from tinynet.train import GradientFlow, plot_gradient_flow

pytest.importorskip("matplotlib")


def _records(every: str, epochs: int):
    tn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3))
    x, y = tn.randn(24, 4), tn.randint(0, 3, (24,))
    loader = tn.data.DataLoader(tn.data.TensorDataset(x, y), batch_size=8)
    flow = GradientFlow(every=every, stream=io.StringIO())
    tn.train.fit(model, nn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), loader,
                 epochs, callbacks=[flow], progress=False)
    return flow.records


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def test_every_line_is_labelled_with_its_epoch(tmp_path):
    records = _records("epoch", 3)
    fig = plot_gradient_flow(records, tmp_path / "flow.png")
    norms, ratios = fig.axes[0], fig.axes[1]
    assert [line.get_label() for line in norms.get_lines()] == \
        ["epoch 1, batch 3", "epoch 2, batch 3", "epoch 3, batch 3"]
    assert _legend(norms) == ["epoch 1, batch 3", "epoch 2, batch 3", "epoch 3, batch 3"]
    assert _legend(ratios) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"


def test_many_records_get_a_legend_of_eight_with_the_first_and_last(tmp_path):
    records = _records("iteration", 4)  # 12 records
    fig = plot_gradient_flow(records, tmp_path / "flow.png")
    labels = _legend(fig.axes[0])
    assert len(fig.axes[0].get_lines()) == 12 and len(labels) == 8
    assert labels[0] == "epoch 1, batch 1" and labels[-1] == "epoch 4, batch 3"
    assert fig.axes[0].get_legend().get_title().get_text() == "8 of 12 records"


def test_a_single_measurement_is_labelled(tmp_path):
    records = _records("epoch", 1)
    fig = plot_gradient_flow(records[-1]["layers"], tmp_path / "one.png")
    assert _legend(fig.axes[0]) == ["measurement"]


def test_the_update_ratio_lines_of_a_deep_network_are_all_named(tmp_path):
    tn.manual_seed(0)
    layers = [m for _ in range(7) for m in (nn.Linear(4, 4), nn.Sigmoid())] + [nn.Linear(4, 3)]
    model = nn.Sequential(*layers)  # 16 parameters: more than fit inside the axes
    x, y = tn.randn(16, 4), tn.randint(0, 3, (16,))
    loader = tn.data.DataLoader(tn.data.TensorDataset(x, y), batch_size=8)
    flow = GradientFlow(every="iteration", stream=io.StringIO())
    tn.train.fit(model, nn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), loader,
                 1, callbacks=[flow], progress=False)
    fig = plot_gradient_flow(flow.records, tmp_path / "deep.png")
    assert _legend(fig.axes[1]) == [name for name, _ in model.named_parameters()]
    assert len(_legend(fig.axes[1])) == 16
