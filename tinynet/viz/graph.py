"""``tn.viz.graph``: the recorded graph of a tensor, as Graphviz DOT text that draws itself in
Jupyter.

:func:`graph` walks back from an output through its ``grad_fn`` nodes (an explicit work list, no
recursion, so a 100,000-op chain is fine) and writes one DOT node per op (a :class:`Node` of
``autograd.py``) and per tensor: every leaf that requires grad, and the output. Edges follow the
data, leaf -> op -> ... -> output, and each carries the shape that flows along it. An op's label
has its id (``Mul#3``: its place in the order backward runs the ops, the ids ``tn.trace()``
prints), its attributes and constants (a reduction's dims, a convolution's strides, the exponent
of ``pow``), its inputs' and output's shapes; optionally the values and gradients of the
intermediates. Ops are grouped in boxes by the module that ran them. The result is a
:class:`Graph`: ``.source`` is the DOT text, Jupyter shows it as SVG when Graphviz's ``dot`` is
installed (a text listing otherwise), and :func:`render` writes SVG or PNG files.

What a graph can show depends on what the nodes still hold: after ``backward()`` their saved
values are freed. Draw it from a ``tn.trace()`` (``trace=``) whose block ran the forward, and
every op's parameters, constants, values and gradients are known.

Example:
    >>> model = tn.nn.Sequential(tn.nn.Linear(4, 3), tn.nn.ReLU(), tn.nn.Linear(3, 1))
    >>> with tn.trace(values=True, params=model) as t:
    ...     loss = model(tn.randn(8, 4)).sum()
    ...     loss.backward()
    >>> g = tn.viz.graph(loss, params=model, trace=t, values=True, gradients=True)
    >>> g            # in Jupyter: the drawing; elsewhere: the text form
    >>> g.render("graph.svg")  # needs Graphviz; or paste g.source into any DOT viewer
"""

from __future__ import annotations

import inspect
import math
import os
import re
import shutil
import subprocess

from .. import backend
from ..autograd import Node
from ..debug import execution_order, named_leaves
from ..tensor import Tensor

__all__ = ["Graph", "graph", "render"]

_ENGINE_ATTRIBUTES = {"fn", "device", "xp", "parents", "metas", "needs_input_grad",
                      "create_graph", "out_device"}
_NO_DOT = ("Graphviz's 'dot' program was not found on PATH. Install Graphviz (apt install "
           "graphviz, brew install graphviz, conda install graphviz, or "
           "https://graphviz.org/download/), or paste the DOT text (Graph.source) into any "
           "Graphviz viewer (e.g. an online DOT viewer).")


def _quote(text: str) -> str:
    """A DOT double-quoted string; lines are joined with DOT's ``\\n``."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "\\n".join(text.split("\n")) + '"'


def _shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _meta(shape, dtype) -> str:
    return f"{_shape(shape)} {dtype}"  # dtypes print as their names ('float32')


def _is_array(a) -> bool:
    return hasattr(a, "dtype") and hasattr(a, "shape") and not isinstance(a, (int, float))


def short(value, device=None, max_elements: int = 8) -> str:
    """A value in a few characters: numbers as they are, small arrays in full (4 digits),
    larger ones summarised."""
    if isinstance(value, Tensor):
        value, device = value.data, value.device
    if isinstance(value, backend.host_namespace().dtype):
        return str(value)  # 'float32', not dtype('float32')
    if not _is_array(value):
        return str(value) if isinstance(value, (str, type(None))) else repr(value)
    if value.dtype.kind not in "fciub":
        return f"array {_shape(value.shape)} {value.dtype}"
    if value.size > 64 * max_elements:
        return f"array {_shape(value.shape)} {value.dtype}"
    data = (device or backend.device_of(value)).to_host(value)
    return backend.host_namespace().array2string(
        data, precision=4, separator=", ", suppress_small=True, threshold=max_elements,
        edgeitems=2, max_line_width=48)


def grad_norm(tensor: Tensor) -> float | None:
    """The 2-norm of ``tensor.grad`` (computed in float64, on the gradient's device), or None."""
    g = tensor.grad
    if g is None:
        return None
    g = g.detach().double()
    return math.sqrt((g * g).sum().item())


def _positional_names(fn) -> list[str]:
    """The names of a Function's positional inputs (its forward's parameters after ctx)."""
    try:
        params = list(inspect.signature(fn.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def attributes(node: Node, record=None) -> list[str]:
    """What configures an op, as ``name=value`` strings: its keyword parameters (but those named
    ``_like_this``, plumbing such as the caller's name for error messages) and positional
    constants when its forward ran inside a trace (``record``), else the attributes the op kept
    on its ctx and the constants it saved (while the graph is not freed)."""
    names = _positional_names(node.fn)
    if record is not None and record.traced:
        items = [(k, v) for k, v in record.params.items() if not k.startswith("_")]
        constants = {i: a for i, a in enumerate(record.arrays or ())
                     if i < len(node.metas) and node.metas[i] is None}
    else:
        items = [(k, v) for k, v in vars(node).items()
                 if not k.startswith("_") and k not in _ENGINE_ATTRIBUTES]
        constants = {}
    out = []
    for k, v in items:
        if type(v).__name__ == "ConvPlan":  # a convolution's geometry: its four settings
            out += [f"stride={v.stride}", f"padding={v.padding}", f"dilation={v.dilation}",
                    f"groups={v.groups}"]
        elif v is not None:
            out.append(f"{k}={short(v, node.device)}")
    if not node._freed:
        for i, a in zip(node._keep_inputs, node._inputs or ()):
            if node.metas[i] is None:
                constants.setdefault(i, a)
    for i in sorted(constants):
        name = names[i] if i < len(names) else f"input {i}"
        out.append(f"{name}={short(constants[i], node.device)}")
    return out


def _params_modules(params) -> tuple[dict, dict]:
    """From a Module: ``id(parameter) -> module path`` and ``path -> class name``."""
    if not hasattr(params, "named_modules"):
        return {}, {}
    types = {name: type(m).__name__ for name, m in params.named_modules() if name}
    owner = {id(p): name.rpartition(".")[0] for name, p in params.named_parameters()}
    return owner, types


class Graph:
    """A drawn graph: DOT text that shows itself in Jupyter.

    ``source`` (also ``str(graph)``) is the Graphviz DOT text; ``repr(graph)`` is a text listing of
    the same graph. In Jupyter the graph displays as SVG when Graphviz's ``dot`` is installed
    (``_repr_svg_`` / ``_repr_mimebundle_``), and as the text listing, with a note on how to get
    the drawing, when it is not. :meth:`render` writes an image file.
    """

    def __init__(self, source: str, text: str):
        self.source = source
        self._text = text
        self._svg: str | None = None

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return self._text

    def text(self) -> str:
        """The graph as text: one line per op (in the trace's order) and per leaf."""
        return self._text

    def pipe(self, format: str = "svg") -> bytes:
        """The drawing, made by Graphviz's ``dot`` (RuntimeError when it is not installed)."""
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(f"tn.viz: {_NO_DOT}")
        result = subprocess.run([exe, f"-T{format}"], input=self.source.encode(),
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"tn.viz: dot -T{format} failed: "
                               f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def _repr_svg_(self) -> str | None:
        """SVG for Jupyter, or None (no Graphviz: Jupyter then shows the text form)."""
        if self._svg is None and shutil.which("dot") is not None:
            self._svg = self.pipe("svg").decode()
        return self._svg

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        svg = self._repr_svg_()
        if svg is not None:
            return {"image/svg+xml": svg, "text/plain": self._text}
        return {"text/plain": f"{self._text}\n({_NO_DOT})"}

    def render(self, path: str | os.PathLike, format: str | None = None) -> str:
        """Write the drawing to ``path`` (see :func:`render`)."""
        return render(self.source, path, format)


def graph(output: Tensor, params=None, *, trace=None, values: bool = False,
          gradients: bool = False, modules: bool = True) -> Graph:
    """The graph that produced ``output``.

    Args:
        output: the tensor to start from (a loss, usually).
        params: names for leaves: ``dict(model.named_parameters())``, the pairs, or the Module
            itself (then ops are also grouped by the submodule whose parameters they use). Named
            leaves are drawn filled.
        trace: a ``tn.trace()`` that recorded this graph: its ids, and, for ops whose forward
            ran inside it, every parameter and constant, the module that ran the op (the grouping)
            and with ``values``/``gradients`` the numbers.
        values: show the value of each leaf and each op's output (where known: recorded by the
            trace with ``values=True``, or still saved by the op).
        gradients: show each op's gradient (the upstream gradient of the trace; or ``.grad`` of
            an output that called ``retain_grad()``) and each leaf's ``.grad``.
        modules: group ops (and parameters) in a box per module.

    Returns:
        a :class:`Graph`. Ops are boxes labelled with the id, attributes, input and output shapes;
        leaves are ellipses labelled with name, shape, dtype and, when ``.grad`` is set,
        ``|grad| = ...``; the output is a double octagon. Each edge carries the shape flowing
        along it.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"tn.viz.graph: expected a Tensor, got {type(output).__name__}")
    return _Drawing(output, params, trace, values, gradients, modules).graph()


class _Drawing:
    """The walk and the labels behind one :func:`graph` call."""

    def __init__(self, output, params, trace, values, gradients, modules):
        self.output, self.trace = output, trace
        self.values, self.gradients, self.modules = values, gradients, modules
        self.names = named_leaves(params)
        self.keep = list(params.values()) if isinstance(params, dict) else []
        self.owner, self.module_types = _params_modules(params)
        if trace is not None:
            self.module_types = {**self.module_types, **trace.module_types}
        self.ids: dict = {}  # Node or leaf Tensor -> DOT id
        self.labels: dict = {}  # Node -> "Mul#3"
        self.cluster: dict = {}  # DOT id -> module path
        self.nodes: list[str] = []  # DOT id of each node, in the order declared
        self.dot_lines: dict = {}  # DOT id -> its declaration
        self.text_lines: list[str] = []
        self.edges: list[str] = []
        self.grad_outs: dict = {}
        if trace is not None:
            self.labels.update({v: k for v, k in trace.ids().items() if type(v) is Node})
            for e in trace.entries:
                self.grad_outs[e["_node"]] = e["grad_out"]

    def leaf_title(self, t: Tensor) -> str:
        return self.names.get(id(t)) or t.name or "leaf"

    def leaf(self, t: Tensor, dot: str, title: str, style: str) -> None:
        lines = [title, _meta(t.shape, t.dtype)]
        if self.values:
            lines.append(f"value = {short(t)}")
        norm = grad_norm(t)
        if norm is not None:
            lines.append(f"|grad| = {norm:.6g}")
            if self.gradients:
                lines.append(f"grad = {short(t.grad)}")
        self.declare(dot, lines, style, self.owner.get(id(t)))
        self.text_lines.append(f"leaf {title}: {' | '.join(lines[1:])}")

    def declare(self, dot: str, lines: list[str], style: str, module: str | None) -> None:
        self.nodes.append(dot)
        self.dot_lines[dot] = f"{dot} [label={_quote(chr(10).join(lines))}, {style}];"
        if module and self.modules:
            self.cluster[dot] = module

    def graph(self) -> Graph:
        output = self.output
        root = output.grad_fn
        if root is None:  # a leaf (or a tensor outside any graph): just itself
            title = self.leaf_title(output) if output.requires_grad else "output"
            self.leaf(output, "output", title, "shape=doubleoctagon")
            return self.finish([])
        order = execution_order([output])
        for k, node in enumerate(order):
            self.labels.setdefault(node, f"{node.name}#{k}")
            self.ids[node] = f"op{k}"
        self.declare("output", ["output", _meta(output.shape, output.dtype)]
                     + ([f"value = {short(output)}"] if self.values else []),
                     "shape=doubleoctagon", None)
        label = _shape(output.shape)
        if output._output_nr is not None:
            label = f"[{output._output_nr}] {label}"
        self.edges.append(f"{self.ids[root]} -> output [label={_quote(label)}];")
        out_meta = {root: (output.shape, output.dtype)}
        for node in order:  # a consumer is visited before its inputs: it knows their shapes
            for parent, meta in zip(node.parents, node.metas):
                if type(parent) is Node:
                    out_meta.setdefault(parent, meta)
        for node in order:
            self.op(node, out_meta.get(node))
        return self.finish(order)

    def op(self, node: Node, out_meta) -> None:
        me = self.ids[node]
        record = self.trace.forward.get(node) if self.trace is not None else None
        attrs = attributes(node, record)
        ins = []
        for i, (parent, meta) in enumerate(zip(node.parents, node.metas)):
            if meta is None:
                continue
            if parent is None:
                source = "data"
            elif type(parent) is Node:
                source = self.labels[parent]
                label = _shape(meta[0])
                if node._slots is not None and i in node._slots:  # output k of a multi-output node
                    source += f"[{node._slots[i]}]"
                    label = f"[{node._slots[i]}] {label}"
                self.edges.append(f"{self.ids[parent]} -> {me} [label={_quote(label)}];")
            else:
                if parent not in self.ids:
                    self.ids[parent] = f"t{len(self.ids)}"
                    named = id(parent) in self.names
                    style = ("shape=ellipse, style=filled, fillcolor=lightblue" if named
                             else "shape=ellipse")
                    self.leaf(parent, self.ids[parent], self.leaf_title(parent), style)
                source = self.leaf_title(parent)
                self.edges.append(f"{self.ids[parent]} -> {me} [label={_quote(_shape(meta[0]))}];")
            ins.append((source, _meta(*meta)))
        shapes = "in: " + ", ".join(m for _, m in ins) if ins else "in: -"
        extra = []
        if node.n_outputs is not None:  # one node, several outputs
            extra.append(f"out: {node.n_outputs} outputs " + ", ".join(
                _meta(*m) for m in node.out_metas))
        elif out_meta is not None:
            extra.append("out: " + _meta(*out_meta))
        if self.values:
            extra.append(f"value = {self.output_value(node, record)}")
        if self.gradients:
            extra += self.gradient_lines(node)
        module = record.module if record is not None and record.module else \
            self.module_of(node)
        self.declare(me, [self.labels[node], *attrs, shapes, *extra], "shape=box", module)
        where = f" [{self.module_label(module)}]" if module else ""
        inputs = ", ".join(f"{s} {m}" for s, m in ins)
        self.text_lines.append("  ".join([f"{self.labels[node]}{where}", *attrs, f"in: {inputs}",
                                          *extra]))

    def module_of(self, node: Node) -> str | None:
        """Without a trace: the module whose parameters the op uses (if only one)."""
        owners = {self.owner[id(p)] for p in node.parents
                  if p is not None and type(p) is not Node and id(p) in self.owner}
        owners.discard("")
        return owners.pop() if len(owners) == 1 else None

    def module_label(self, path: str) -> str:
        return f"{path} ({self.module_types[path]})" if path in self.module_types else path

    def output_value(self, node: Node, record) -> str:
        out = None
        if record is not None and record.out is not None:
            out = record.out
        elif not node._freed and node._keep_output and node._output is not None:
            out = node._output
        if out is None:
            return "?"
        if type(out) is tuple:  # a multi-output op
            return "(" + ", ".join(short(o, node.device) for o in out) + ")"
        return short(out, node.device)

    def gradient_lines(self, node: Node) -> list[str]:
        go = self.grad_outs.get(node)
        if go is not None:
            if "value" in go:
                return [f"grad = {short(go['value'])}"]
            return [f"|grad| = {go['norm']:.6g}"]
        retained = node._retained() if callable(node._retained) else None
        if retained is not None and retained.grad is not None:
            return [f"grad = {short(retained.grad)}"]
        return []

    def finish(self, order: list) -> Graph:
        body = self.clustered()
        source = "\n".join(["digraph tinynet {", "  rankdir=BT;", "  node [fontname=Helvetica];",
                            *body, *("  " + e for e in self.edges), "}"]) + "\n"
        out = self.output
        head = (f"graph of {'output ' + _meta(out.shape, out.dtype)}: {len(order)} ops, "
                f"{sum(1 for v in self.ids if type(v) is not Node)} leaves (ops in the order "
                f"backward runs them)")
        lines = [re.sub(r"\n\s*", " ", line) for line in self.text_lines]  # arrays on one line
        return Graph(source, "\n".join([head, *lines]))

    def clustered(self) -> list[str]:
        """Node declarations, those of a module inside nested ``subgraph cluster_...`` blocks."""
        tree: dict = {}  # path -> ([DOT ids], {child path: ...})
        top = []
        for dot in self.nodes:
            path = self.cluster.get(dot)
            if path is None:
                top.append(dot)
                continue
            parts = path.split(".")
            level = tree
            for k in range(1, len(parts) + 1):
                level = level.setdefault(".".join(parts[:k]), ([], {}))
                if k < len(parts):
                    level = level[1]
            level[0].append(dot)
        lines = ["  " + self.dot_lines[d] for d in top]
        counter = [0]

        def emit(level: dict, indent: str) -> None:
            for path, (members, children) in level.items():
                lines.append(f"{indent}subgraph cluster_{counter[0]} {{")
                counter[0] += 1
                lines.append(f"{indent}  label={_quote(self.module_label(path))}; "
                             "style=rounded; color=grey;")
                lines.extend(f"{indent}  {self.dot_lines[d]}" for d in members)
                emit(children, indent + "  ")
                lines.append(f"{indent}}}")

        emit(tree, "  ")
        return lines


def render(dot, path: str | os.PathLike, format: str | None = None) -> str:
    """Write ``dot`` (a :class:`Graph` or its DOT text) to ``path`` as an image, with Graphviz's
    ``dot`` program.

    The format comes from ``format`` or the file suffix (``.svg``, ``.png``, ``.pdf``, ...).
    Raises RuntimeError when ``dot`` is not installed, or when it fails. Returns ``path``.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(f"tn.viz.render needs {_NO_DOT}")
    path = os.fspath(path)
    fmt = format or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    source = dot.source if isinstance(dot, Graph) else dot
    result = subprocess.run([exe, f"-T{fmt}", "-o", path], input=source.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tn.viz.render: dot -T{fmt} failed: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return path
