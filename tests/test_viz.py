"""tn.viz.graph: the graph as DOT text (structure, labels, ids, attributes and constants, values
and gradients, a box per module, gradient norms, parameter names), its display in Jupyter (SVG
with Graphviz, a text form without) and render."""

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
_CLUSTER = re.compile(r"^\s*subgraph\s+(cluster_\w+)\s*\{\s*$")


def _label(attrs):
    m = _LABEL.search(attrs or "")
    return m.group(1)[1:-1].replace("\\n", "\n").replace('\\"', '"') if m else None


def parse_all(dot):
    """A tiny parser for the DOT subset tn.viz writes: {name: label}, [(src, dst, label)], and
    the clusters: {name: label}, {node: innermost cluster label}, {cluster label: parent label}."""
    dot = getattr(dot, "source", dot)
    bare = re.sub(_STRING, '""', dot)  # braces inside quoted labels do not count
    assert bare.count("{") == bare.count("}"), "unbalanced braces"
    body = re.fullmatch(r"\s*digraph\s+\w+\s*\{(.*)\}\s*", dot, re.DOTALL)
    assert body, dot
    nodes, edges, member, parent, stack = {}, [], {}, {}, []
    for line in body.group(1).strip().splitlines():
        if re.fullmatch(r"\s*(rankdir=\w+|node\s*\[.*\])\s*;\s*", line):
            continue
        if m := _CLUSTER.match(line):
            stack.append(None)
        elif re.fullmatch(rf"\s*label=({_STRING});\s*style=rounded;\s*color=grey;\s*", line):
            stack[-1] = _label(line)
            parent[stack[-1]] = stack[-2] if len(stack) > 1 else None
        elif line.strip() == "}":
            stack.pop()
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2), _label(m.group(3))))
        elif m := _NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = _label(m.group(2))
            if stack:
                member[m.group(1)] = stack[-1]
        else:
            raise AssertionError(f"unparsed DOT line: {line!r}")
    assert not stack
    for src, dst, _ in edges:  # every endpoint is a declared node
        assert src in nodes and dst in nodes, (src, dst)
    return nodes, edges, member, parent


def parse(dot):
    nodes, edges, _, _ = parse_all(dot)
    return nodes, edges


def kind(label: str) -> str:
    """An op label's first line without its id (``Mul#1`` -> ``Mul``)."""
    return label.split("\n")[0].split("#")[0]


def by_first_line(nodes):
    out = {}
    for name, label in nodes.items():
        out.setdefault(kind(label), []).append(name)
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


def test_op_ids_are_the_ids_of_the_trace():
    tn.manual_seed(0)
    x = tn.randn(3, 2, requires_grad=True)
    w = tn.randn(2, 2, requires_grad=True)
    y = ((x @ w).tanh() * x).sum()
    before = {kind(label): label.split("\n")[0] for label in parse(tn.viz.graph(y))[0].values()}
    with tn.trace() as t:
        y.backward()
    ops = sorted(v for k, v in before.items() if k not in ("leaf", "output"))
    assert ops == sorted(e["id"] for e in t.to_dict())
    assert before == {"Sum": "Sum#0", "Mul": "Mul#1", "Tanh": "Tanh#2", "MatMul": "MatMul#3",
                      "leaf": "leaf", "output": "output"}


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
    assert "src_dtype=float32" in nodes[kinds["Cast"][0]].split("\n")  # kept on ctx by Cast


def test_constants_are_not_nodes_but_appear_in_op_labels():
    x = tn.randn(5, requires_grad=True)
    y = x * tn.ones(5)
    nodes, edges = parse(tn.viz.graph(y))
    assert len(nodes) == 3 and len(edges) == 2
    assert "in: (5,) float32, (5,) float32" in nodes[by_first_line(nodes)["Mul"][0]]


def _op_label(dot, op):
    nodes, _ = parse(dot)
    (name,) = by_first_line(nodes)[op]
    return nodes[name].split("\n")


def test_attributes_and_constants_pow_exponent_dims_strides_eps():
    x = tn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x ** 3).sum(dim=1)
    assert "b=3" in _op_label(tn.viz.graph(y), "Pow")  # saved by Pow: shown before backward
    # inside a trace every op's keyword parameters and positional constants are kept
    with tn.trace() as t:
        ln = tn.nn.LayerNorm(2)
        y = ln(x ** 3).sum(dim=1)
        y.sum().backward()
    dot = tn.viz.graph(y, trace=t)
    labels = [label.split("\n") for label in parse(dot)[0].values()]
    pows = [label for label in labels if kind(label[0]) == "Pow"]
    assert len(pows) == 1 and ["b=3"] in [label[1:2] for label in pows]  # after backward too
    assert "dims=(1,)" in _op_label(dot, "Sum") and "keepdim=False" in _op_label(dot, "Sum")
    layer_norm = _op_label(dot, "LayerNorm")  # one primitive: its parameters, its eps
    assert "normalized_ndim=1" in layer_norm and "eps=1e-05" in layer_norm
    # without a trace, what the op keeps on ctx
    assert "axes=(1,)" in _op_label(tn.viz.graph(ln(x)), "LayerNorm")
    # a convolution keeps its geometry on ctx: strides without any trace
    img = tn.randn(1, 1, 5, 5, requires_grad=True)
    w = tn.randn(2, 1, 3, 3, requires_grad=True)
    conv = _op_label(tn.viz.graph(tn.nn.functional.conv2d(img, w, stride=2, padding=1).sum()),
                     "Conv2d")
    assert "stride=(2, 2)" in conv and "padding=((1, 1), (1, 1))" in conv and "groups=1" in conv


def test_values_and_gradients_of_intermediates_from_a_trace():
    x = tn.tensor([0.5, -1.0], dtype=tn.float64, requires_grad=True)
    with tn.trace(values=True) as t:
        h = x.exp()
        h.retain_grad()
        y = (h * h).sum()
        y.backward()
    dot = tn.viz.graph(y, params={"x": x}, trace=t, values=True, gradients=True)
    exp = _op_label(dot, "Exp")
    assert f"value = {np.array2string(np.exp([0.5, -1.0]), precision=4, separator=', ')}" in exp
    expected_grad = np.array2string(2 * np.exp([0.5, -1.0]), precision=4, separator=", ")
    assert f"grad = {expected_grad}" in exp
    assert np.allclose(h.grad.numpy(), 2 * np.exp([0.5, -1.0]))
    leaf = parse(dot)[0][by_first_line(parse(dot)[0])["x"][0]].split("\n")
    assert "value = [ 0.5, -1. ]" in leaf
    assert f"grad = {np.array2string(x.grad.numpy(), precision=4, separator=', ')}" in leaf
    assert "value" not in tn.viz.graph(y, trace=t).source  # only when asked


def test_gradients_of_retained_intermediates_without_a_trace():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    y = (h * h).sum()
    y.backward()
    mul = [label for label in parse(tn.viz.graph(y, gradients=True))[0].values()
           if label.startswith("Mul#2")]
    assert mul and "grad = [ 6., 12.]" in mul[0].split("\n")


def test_modules_are_boxes_nested_as_the_modules_are():
    tn.manual_seed(0)
    model = tn.nn.Sequential(tn.nn.Sequential(tn.nn.Linear(4, 3), tn.nn.ReLU()),
                             tn.nn.Linear(3, 2))
    with tn.trace(params=model) as t:
        loss = model(tn.randn(5, 4)).sum()
        loss.backward()
    nodes, _, member, parent = parse_all(tn.viz.graph(loss, params=model, trace=t))
    where = {nodes[n].split("\n")[0]: c for n, c in member.items()}
    assert where == {"Linear#1": "1 (Linear)", "1.weight": "1 (Linear)", "1.bias": "1 (Linear)",
                     "Relu#2": "0.1 (ReLU)", "Linear#3": "0.0 (Linear)",
                     "0.0.weight": "0.0 (Linear)", "0.0.bias": "0.0 (Linear)"}
    assert parent["0.1 (ReLU)"] == "0 (Sequential)" and parent["0.0 (Linear)"] == "0 (Sequential)"
    assert parent["1 (Linear)"] is None
    # without a trace: ops that use a module's parameters go in its box; ReLU has none
    nodes, _, member, _ = parse_all(tn.viz.graph(loss, params=model))
    where = {nodes[n].split("\n")[0]: c for n, c in member.items()}
    assert where["Linear#3"] == "0.0 (Linear)" and "Relu#2" not in where
    assert not parse_all(tn.viz.graph(loss, params=model, modules=False))[2]


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


# --- display: Jupyter and the text form ------------------------------------------------------


def _fake_dot(tmp_path, monkeypatch):
    """A stand-in for Graphviz: ``-Tsvg`` turns stdin into an SVG naming the line count;
    ``-Tfmt -o path`` copies stdin to path; records its arguments."""
    fake = tmp_path / "dot"
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
                    'if [ "$1" = "-Tbad" ]; then echo "Format: bad not recognized" >&2; '
                    'exit 1; fi\n'
                    'if [ "$#" -eq 1 ]; then n=$(wc -l); echo "<svg><!-- $n lines --></svg>"; '
                    'exit 0; fi\n'
                    'cat > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake) if name == "dot" else None)
    return fake


def test_jupyter_display_is_svg_with_graphviz(tmp_path, monkeypatch):
    _fake_dot(tmp_path, monkeypatch)
    g = tn.viz.graph((tn.randn(3, requires_grad=True) * 2.0).sum())
    lines = g.source.count("\n")
    assert g._repr_svg_() == f"<svg><!-- {lines} lines --></svg>\n"
    bundle = g._repr_mimebundle_()
    assert bundle["image/svg+xml"] == g._repr_svg_() and bundle["text/plain"] == repr(g)
    assert (tmp_path / "args").read_text().split() == ["-Tsvg"]


def test_jupyter_display_without_graphviz_is_a_clear_text_form(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    tn.manual_seed(0)
    model = tn.nn.Sequential(tn.nn.Linear(3, 2), tn.nn.Tanh())
    loss = (model(tn.randn(4, 3)) ** 2).mean()
    loss.backward()
    g = tn.viz.graph(loss, params=model)
    assert g._repr_svg_() is None
    bundle = g._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    text = bundle["text/plain"]
    assert "Graphviz" in text and "install" in text.lower() and "Graph.source" in text
    lines = repr(g).splitlines()
    assert lines[0] == "graph of output () float32: 4 ops, 2 leaves (ops in the order backward " \
                       "runs them)"
    assert lines[1].startswith("Mean#0  ") and "in: Pow#1 (4, 2) float32" in lines[1]
    assert any(line.startswith("Linear#3 [0 (Linear)]  ") and
               "in: data (4, 3) float32, 0.weight (2, 3) float32, 0.bias (2,) float32" in line
               and "out: (4, 2) float32" in line for line in lines), lines
    assert any(line.startswith("leaf 0.weight: (2, 3) float32 | |grad| = ") for line in lines)
    assert str(g) == g.source and g.text() == repr(g)
    with pytest.raises(RuntimeError, match="Graphviz"):
        g.pipe()


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
    g = tn.viz.graph((tn.randn(3, requires_grad=True) * 2.0).sum())
    path = g.render(tmp_path / f"g.{suffix}")
    data = (tmp_path / f"g.{suffix}").read_bytes()
    assert path.endswith(suffix)
    assert data.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in data
    assert "<svg" in g._repr_svg_()


def test_render_calls_dot_with_the_format_of_the_suffix(monkeypatch, tmp_path):
    _fake_dot(tmp_path, monkeypatch)
    g = tn.viz.graph(tn.randn(2, requires_grad=True) * 2.0)
    out = tmp_path / "g.PNG"
    assert tn.viz.render(g, out) == str(out)
    assert (tmp_path / "args").read_text().split() == ["-Tpng", "-o", str(out)]
    assert out.read_text() == g.source
    assert tn.viz.render(g.source, tmp_path / "h.png") == str(tmp_path / "h.png")  # text too
    with pytest.raises(RuntimeError, match="not recognized"):
        tn.viz.render(g, tmp_path / "g.svg", format="bad")


def test_graph_of_a_device_tensor_shows_gradient_norms(device):
    """Norms are computed on the gradient's device: no implicit host conversion (standin/CuPy)."""
    x = tn.tensor([3.0, 4.0], device=device, requires_grad=True)
    (x * x).sum().backward()  # grad = 2x = (6, 8), norm 10
    g = tn.viz.graph((x * 2).sum(), values=True, gradients=True)
    assert "|grad| = 10" in g.source and "grad = [6., 8.]" in g.source
