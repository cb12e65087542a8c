"""tn.viz.walkthrough: the HTML page of one backward pass, read back with the stdlib's
html.parser: every node in execution order with its formula, the forward's numbers in and out,
the upstream gradient, the gradients sent (and their finite-difference check), the running sums,
and the leaves' gradients, all equal to what tinynet computes."""

from html.parser import HTMLParser

import numpy as np
import pytest

import tinynet as tn
from tinynet.debug import execution_order, full_formula


class Page(HTMLParser):
    """Steps (``<section class="step">``) in order; in each, its values by role, the formula,
    and the rows of its running-gradients table; plus the result table's values."""

    def __init__(self, text: str):
        super().__init__()
        self.steps, self.result, self.links, self.tags = [], [], [], set()
        self.step = None
        self.in_formula = self.in_running = self.in_result = False
        self.cell = None  # the running table's current row: [tensor, received, value]
        self.text_parts = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "section" and a.get("class") == "step":
            self.step = {"id": a["data-id"], "op": a["data-op"], "values": [], "formula": "",
                         "running": []}
            self.steps.append(self.step)
        elif tag == "p" and a.get("class") == "formula":
            self.in_formula = True
        elif tag == "table" and a.get("class") == "running":
            self.in_running = True
        elif tag == "table" and a.get("class") == "result":
            self.in_result = True
        elif tag == "tr" and self.in_running:
            self.cell = []
        elif tag == "td" and self.cell is not None:
            self.text_parts = []
        elif tag == "pre" and a.get("class") == "value":
            values = a.get("data-values")
            item = {"role": a["data-role"], "name": a["data-name"], "missing": "data-missing" in a,
                    "values": None if values is None else np.array(
                        [float(v) for v in values.split(",")])}
            if self.in_result:
                self.result.append(item)
            elif self.step is not None:
                self.step["values"].append(item)

    def handle_endtag(self, tag):
        if tag == "p":
            self.in_formula = False
        elif tag == "table":
            self.in_running = self.in_result = False
        elif tag == "td" and self.text_parts is not None:
            self.cell.append("".join(self.text_parts).strip())
            self.text_parts = None
        elif tag == "tr" and self.cell is not None:
            if self.cell:
                self.step["running"].append(self.cell[:2])
            self.cell = None
        elif tag == "section":
            self.step = None

    def handle_data(self, data):
        if self.in_formula:
            self.step["formula"] += data
        if self.text_parts is not None:
            self.text_parts.append(data)


def values(step, role, name=None):
    return [v for v in step["values"] if v["role"] == role and (name is None or v["name"] == name)]


def one(step, role, name=None):
    (v,) = values(step, role, name)
    return v["values"]


def _problem():
    tn.manual_seed(3)
    model = tn.nn.Sequential(tn.nn.Linear(3, 4), tn.nn.Tanh(), tn.nn.Linear(4, 2))
    model.double()
    x = tn.randn(5, 3, dtype=tn.float64)
    target = tn.randn(5, 2, dtype=tn.float64)
    return model, x, target


def test_walkthrough_html_has_every_step_with_the_real_numbers(tmp_path):
    model, x, target = _problem()

    def loss_fn():
        h = model(x)
        return ((h - target) ** 2).mean() + (h * h).sum() * 0.1  # h has two consumers

    path = tmp_path / "walk.html"
    text = tn.viz.walkthrough(loss_fn, path, params=model)
    assert path.read_text() == text
    page = Page(text)

    # the steps are the nodes in backward's order, with the trace's ids and the ops' formulas
    loss = loss_fn()
    order = execution_order([loss])
    assert [s["id"] for s in page.steps] == [f"{n.name}#{k}" for k, n in enumerate(order)]
    for step, node in zip(page.steps, order):
        forward, _, grad = full_formula(node.fn).partition("->")
        assert step["formula"] == f"{forward.strip()}  \u2192  {grad.strip()}"

    # forward numbers of the first layer, and the gradients the real model gets
    first = next(s for s in page.steps if s["op"] == "Linear" and values(s, "forward-input",
                                                                         "0.weight"))
    np.testing.assert_array_equal(one(first, "forward-input", "data"), x.numpy().ravel())
    np.testing.assert_array_equal(one(first, "forward-input", "0.weight"),
                                  model[0].weight.detach().numpy().ravel())
    with tn.no_grad():
        np.testing.assert_allclose(one(first, "forward-output"), model[0](x).numpy().ravel(),
                                   rtol=1e-15)
    for p in model.parameters():
        p.grad = None
    h = model(x)
    h.retain_grad()
    (((h - target) ** 2).mean() + (h * h).sum() * 0.1).backward()
    last = next(s for s in page.steps if values(s, "forward-input", "2.weight"))
    np.testing.assert_allclose(one(last, "grad_out"), h.grad.numpy().ravel(), rtol=1e-12)
    for name, p in model.named_parameters():
        (sent,) = [v["values"] for s in page.steps for v in values(s, "grad_in", name)]
        np.testing.assert_allclose(sent, p.grad.numpy().ravel(), rtol=1e-12)
        (total,) = [v["values"] for v in page.result if v["name"] == name]
        np.testing.assert_allclose(total, p.grad.numpy().ravel(), rtol=1e-12)

    # running gradients: h (the last Linear's output) gets three parts, the sum appears when
    # complete, and every row of the last step is complete
    h_id = last["id"]
    seen = [dict(s["running"]).get(h_id) for s in page.steps]
    assert list(dict.fromkeys(r for r in seen if r)) == ["2 of 3", "3 of 3 (complete)"]  # h * h
    complete = next(s for s in page.steps if dict(s["running"]).get(h_id) == "3 of 3 (complete)")
    np.testing.assert_allclose(one(complete, "running", h_id), h.grad.numpy().ravel(), rtol=1e-12)
    assert all(received.endswith("(complete)") for _, received in page.steps[-1]["running"])

    # every node checked against finite differences of itself alone
    assert text.count('class="ok"') == sum(len(values(s, "grad_in")) for s in page.steps)
    assert "MISMATCH" not in text
    # self-contained: no scripts, no external resources, links only within the page
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.links and all(link.startswith("#") for link in page.links)


class _WrongTanh(tn.Function):
    """tanh(x)  ->  grad_x = g * (1 - out)   (planted bug: should be 1 - out^2)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return ctx.xp.tanh(x)

    @staticmethod
    def backward(ctx, g):
        return g * (1 - ctx.saved_output)


def test_walkthrough_marks_the_wrong_node():
    x = tn.tensor([[0.5, -1.0]], dtype=tn.float64, requires_grad=True)
    text = tn.viz.walkthrough(lambda: (_WrongTanh.apply(x * 2.0) ** 2).sum(), params={"x": x})
    page = Page(text)
    wrong = [s["id"] for s in page.steps if 'mismatch' in text.split(f'data-id="{s["id"]}"')[1]
             .split("</section>")[0]]
    assert wrong == ["_WrongTanh#2"]
    assert "(planted bug: should be 1 - out^2)" in page.steps[2]["formula"]


def test_walkthrough_of_a_loss_or_a_trace():
    x = tn.tensor([1.0, 2.0], dtype=tn.float64, requires_grad=True)
    loss = (x.exp() * 3.0).sum()  # recorded before: Mul keeps its inputs, Sum keeps nothing
    page = Page(tn.viz.walkthrough(loss))
    assert [s["id"] for s in page.steps] == ["Sum#0", "Mul#1", "Exp#2"]
    assert values(page.steps[0], "forward-input")[0]["missing"]  # Sum saved no input
    np.testing.assert_allclose(one(page.steps[1], "forward-input", "Exp#2"), np.exp([1.0, 2.0]))
    np.testing.assert_allclose(page.result[0]["values"], 3 * np.exp([1.0, 2.0]))
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp([1.0, 2.0]))  # backward ran

    with tn.trace(values=True, params={"x": x}) as t:
        (x * x).sum().backward()
    page = Page(tn.viz.walkthrough(t))
    assert [s["id"] for s in page.steps] == ["Sum#0", "Mul#1"]
    assert [v["name"] for v in page.result] == ["x"]
    with tn.trace() as t:
        (x * x).sum().backward()
    with pytest.raises(ValueError, match="values=True"):
        tn.viz.walkthrough(t)
    with pytest.raises(TypeError, match="expected a Tensor"):
        tn.viz.walkthrough(lambda: 3.0)
