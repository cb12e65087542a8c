"""tn.viz: the graph as DOT text (structure, labels, gradient norms, parameter names) and render."""

import math
import re
import shutil

import numpy as np
import pytest

import tinynet as tn

_STRING = r'"(?:[^"\\]|\\.)*"'
_ATTRS = rf"\[(?:[^\]\"]|{_STRING})*\]"
_NODE = re.compile(rf"^\s*(\w+)\s*({_ATTRS})?\s*;\s*$")
_EDGE = re.compile(rf"^\s*(\w+)\s*->\s*(\w+)\s*({_ATTRS})?\s*;\s*$")
_LABEL = re.compile(rf"label=({_STRING})")


def parse(dot: str):
    """A tiny parser for the DOT subset tn.viz writes: {name: label}, [(src, dst, label)]."""
    bare = re.sub(_STRING, '""', dot)  # braces inside quoted labels do not count
    assert bare.count("{") == bare.count("}") == 1, "unbalanced braces"
    body = re.fullmatch(r"\s*digraph\s+\w+\s*\{(.*)\}\s*", dot, re.DOTALL)
    assert body, dot
    nodes, edges = {}, []

    def label(attrs):
        m = _LABEL.search(attrs or "")
        return m.group(1)[1:-1].replace("\\n", "\n").replace('\\"', '"') if m else None

    for line in body.group(1).strip().splitlines():
        if re.fullmatch(r"\s*(rankdir=\w+|node\s*\[.*\])\s*;\s*", line):
            continue
        if m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2), label(m.group(3))))
        elif m := _NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = label(m.group(2))
        else:
            raise AssertionError(f"unparsed DOT line: {line!r}")
    for src, dst, _ in edges:  # every endpoint is a declared node
        assert src in nodes and dst in nodes, (src, dst)
    return nodes, edges


def by_first_line(nodes):
    out = {}
    for name, label in nodes.items():
        out.setdefault(label.split("\n")[0], []).append(name)
    return out


def test_known_graph_nodes_and_edges():
    a = tn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = tn.tensor([4.0, 5.0, 6.0], requires_grad=True)
    y = (a * b + a).sum()
    nodes, edges = parse(tn.viz.graph(y, params={"a": a, "b": b}))
    kinds = by_first_line(nodes)
    assert sorted(kinds) == ["Add", "Mul", "Sum", "a", "b", "output"]
    assert all(len(v) == 1 for v in kinds.values())
    n = {k: v[0] for k, v in kinds.items()}
    assert sorted((s, d) for s, d, _ in edges) == sorted([
        (n["a"], n["Mul"]), (n["b"], n["Mul"]), (n["Mul"], n["Add"]), (n["a"], n["Add"]),
        (n["Add"], n["Sum"]), (n["Sum"], n["output"])])
    assert "(3,) float32" in nodes[n["a"]] and "out: () float32" in nodes[n["Sum"]]
    assert "in: (3,) float32, (3,) float32" in nodes[n["Mul"]]
    assert {lab for s, d, lab in edges if d != n["output"]} == {"(3,)"}


def test_shared_input_gives_two_edges_and_unnamed_leaves():
    x = tn.randn(2, 3, requires_grad=True)
    w = tn.randn(3, 4, dtype=tn.float64, requires_grad=True)
    y = (x * x).astype(tn.float64) @ w
    nodes, edges = parse(tn.viz.graph(y))
    kinds = by_first_line(nodes)
    assert sorted(kinds) == ["Cast", "MatMul", "Mul", "leaf", "output"]
    assert len(kinds["leaf"]) == 2
    x_id = next(k for k in kinds["leaf"] if "(2, 3) float32" in nodes[k])
    assert sum(1 for s, d, _ in edges if (s, d) == (x_id, kinds["Mul"][0])) == 2
    assert len(edges) == 6  # x->Mul twice, Mul->Cast, Cast->MatMul, w->MatMul, MatMul->output
    assert "(2, 4) float64" in nodes["output"]
    assert "out: (2, 4) float64" in nodes[kinds["MatMul"][0]]


def test_constants_are_not_nodes_but_appear_in_op_labels():
    x = tn.randn(5, requires_grad=True)
    y = x * tn.ones(5)
    nodes, edges = parse(tn.viz.graph(y))
    assert len(nodes) == 3 and len(edges) == 2
    assert "in: (5,) float32, (5,) float32" in nodes[by_first_line(nodes)["Mul"][0]]


def test_leaf_output_and_detached_output():
    x = tn.randn(2, requires_grad=True)
    nodes, edges = parse(tn.viz.graph(x))
    assert list(nodes) == ["output"] and edges == []
    nodes, edges = parse(tn.viz.graph(tn.zeros(3)))
    assert list(nodes) == ["output"] and edges == []
    with pytest.raises(TypeError):
        tn.viz.graph(np.zeros(3))


def _norms(nodes):
    out = {}
    for label in nodes.values():
        m = re.search(r"\|grad\| = (\S+)", label)
        if m:
            out[label.split("\n")[0]] = float(m.group(1))
    return out


def test_grad_norms_appear_after_backward_and_are_right():
    a = tn.tensor([1.0, -2.0, 3.0], requires_grad=True)
    b = tn.tensor([0.5, 5.0, -6.0], requires_grad=True)
    y = (a * b + a).sum()
    assert _norms(parse(tn.viz.graph(y, {"a": a, "b": b}))[0]) == {}
    y.backward()
    norms = _norms(parse(tn.viz.graph(y, {"a": a, "b": b}))[0])
    assert set(norms) == {"a", "b"}
    assert math.isclose(norms["a"], float(np.linalg.norm(a.grad.numpy())), rel_tol=1e-5)
    assert math.isclose(norms["b"], float(np.linalg.norm(b.grad.numpy())), rel_tol=1e-5)
    assert math.isclose(norms["b"], math.sqrt(1 + 4 + 9), rel_tol=1e-5)


def test_module_names_label_parameters():
    tn.manual_seed(0)
    model = tn.nn.Sequential(tn.nn.Linear(4, 3), tn.nn.ReLU(), tn.nn.Linear(3, 2))
    loss = model(tn.randn(5, 4)).sum()
    loss.backward()
    params = dict(model.named_parameters())
    nodes, edges = parse(tn.viz.graph(loss, params=params))
    kinds = by_first_line(nodes)
    for name, p in params.items():
        assert name in kinds, (name, sorted(kinds))
        label = nodes[kinds[name][0]]
        assert f"\n{tuple(p.shape)} float32" in label
        got = float(re.search(r"\|grad\| = (\S+)", label).group(1))
        assert math.isclose(got, float(np.linalg.norm(p.grad.numpy())), rel_tol=1e-5)
    assert sorted(params) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    # 4 parameters + output; each Linear layer is one Linear op, plus Relu and Sum
    assert len(nodes) == 9 and len(edges) == 8
    assert len(kinds["Linear"]) == 2 and len(kinds["Relu"]) == 1
    assert all(nodes[kinds[n][0]].count("float32") == 1 for n in params)


def test_long_chain_needs_no_recursion():
    x = tn.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + 1.0
    nodes, edges = parse(tn.viz.graph(y))
    assert len(nodes) == 3002 and len(edges) == 3001


def test_quotes_in_names_are_escaped():
    x = tn.randn(2, requires_grad=True)
    nodes, _ = parse(tn.viz.graph(x * 2.0, params={'say "hi" {x} \\ there': x}))
    assert any(label.startswith('say "hi"') for label in nodes.values())


def test_render_without_dot_raises_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    dot = tn.viz.graph(tn.randn(2, requires_grad=True) * 2.0)
    with pytest.raises(RuntimeError, match="Graphviz") as info:
        tn.viz.render(dot, tmp_path / "g.svg")
    assert "install" in str(info.value).lower() and "DOT text" in str(info.value)
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_render_with_dot(tmp_path, suffix):
    dot = tn.viz.graph((tn.randn(3, requires_grad=True) * 2.0).sum())
    path = tn.viz.render(dot, tmp_path / f"g.{suffix}")
    data = (tmp_path / f"g.{suffix}").read_bytes()
    assert path.endswith(suffix)
    assert data.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in data


def test_render_calls_dot_with_the_format_of_the_suffix(monkeypatch, tmp_path):
    fake = tmp_path / "dot"  # a stand-in for Graphviz: records its arguments, copies stdin
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
                    'if [ "$1" = "-Tbad" ]; then echo "Format: bad not recognized" >&2; exit 1; fi\n'
                    'cat > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake) if name == "dot" else None)
    dot = tn.viz.graph(tn.randn(2, requires_grad=True) * 2.0)
    out = tmp_path / "g.PNG"
    assert tn.viz.render(dot, out) == str(out)
    assert (tmp_path / "args").read_text().split() == ["-Tpng", "-o", str(out)]
    assert out.read_text() == dot
    with pytest.raises(RuntimeError, match="not recognized"):
        tn.viz.render(dot, tmp_path / "g.svg", format="bad")


def test_graph_of_a_device_tensor_shows_gradient_norms(device):
    """Norms are computed on the gradient's device: no implicit host conversion (standin/CuPy)."""
    x = tn.tensor([3.0, 4.0], device=device, requires_grad=True)
    (x * x).sum().backward()  # grad = 2x = (6, 8), norm 10
    dot = tn.viz.graph((x * 2).sum())
    assert "|grad| = 10" in dot
