"""``tn.viz``: draw the recorded graph of a tensor as Graphviz DOT text.

:func:`graph` walks back from an output through its ``grad_fn`` nodes (an explicit work list, no
recursion, so a 100,000-op chain is fine) and writes one DOT node per op (a :class:`Node` of
``autograd.py``) and per tensor: every leaf that requires grad, and the output. Edges follow the
data, leaf -> op -> ... -> output, and each carries the shape that flows along it. After
``backward()`` each leaf's label also shows the norm of its ``.grad``. :func:`render` turns the
text into SVG or PNG with Graphviz's ``dot`` program.

Example:
    >>> model = tn.nn.Sequential(tn.nn.Linear(4, 3), tn.nn.ReLU(), tn.nn.Linear(3, 1))
    >>> loss = model(tn.randn(8, 4)).sum()
    >>> loss.backward()
    >>> dot = tn.viz.graph(loss, params=dict(model.named_parameters()))
    >>> tn.viz.render(dot, "graph.svg")  # needs Graphviz; or paste `dot` into any DOT viewer

Inputs that do not require grad (data, constants) are not recorded by the engine, so they do not
appear: an op's label lists all of its inputs' shapes, recorded or not.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

from .autograd import Node
from .tensor import Tensor

__all__ = ["graph", "render"]


def _quote(text: str) -> str:
    """A DOT double-quoted string; lines are joined with DOT's ``\\n``."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "\\n".join(text.split("\n")) + '"'


def _shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _meta(shape, dtype) -> str:
    return f"{_shape(shape)} {dtype}"  # dtypes print as their names ('float32')


def grad_norm(tensor: Tensor) -> float | None:
    """The 2-norm of ``tensor.grad`` (computed in float64, on the gradient's device), or None."""
    g = tensor.grad
    if g is None:
        return None
    g = g.detach().double()
    return math.sqrt((g * g).sum().item())


def graph(output: Tensor, params: dict | None = None) -> str:
    """The graph that produced ``output``, as Graphviz DOT text.

    Args:
        output: the tensor to start from (a loss, usually).
        params: optional ``name -> tensor`` (``dict(model.named_parameters())``); leaves found in
            it are labelled with their name and drawn filled.

    Returns:
        DOT text: ops are boxes labelled with the op name and input shapes and dtypes; leaves are
        ellipses labelled with name, shape, dtype and, when ``.grad`` is set, ``|grad| = ...``; the
        output is a double octagon. Each edge is labelled with the shape flowing along it.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"tn.viz.graph: expected a Tensor, got {type(output).__name__}")
    names = {id(t): name for name, t in (params or {}).items()}

    ids: dict[int, str] = {}  # id(Node or leaf Tensor) -> DOT id
    keep: list = []  # keep walked objects alive, so their ids stay unique while we write
    out_meta: dict[int, tuple] = {}  # id(Node) -> (shape, dtype) of its output, from a consumer
    node_lines: list[str] = []
    edge_lines: list[str] = []

    def dot_id(obj, prefix: str) -> tuple[str, bool]:
        key = id(obj)
        if key in ids:
            return ids[key], False
        ids[key] = f"{prefix}{len(ids)}"
        keep.append(obj)
        return ids[key], True

    def leaf_line(t: Tensor, dot: str, title: str, style: str) -> str:
        lines = [title, _meta(t.shape, t.dtype)]
        norm = grad_norm(t)
        if norm is not None:
            lines.append(f"|grad| = {norm:.6g}")
        return f"  {dot} [label={_quote(chr(10).join(lines))}, {style}];"

    def leaf_title(t: Tensor) -> str:
        return names.get(id(t)) or t.name or "leaf"

    out_id = "output"
    root = output.grad_fn
    if root is None:  # a leaf (or a tensor outside any graph): just itself
        title = leaf_title(output) if output.requires_grad else "output"
        node_lines.append(leaf_line(output, out_id, title, "shape=doubleoctagon"))
    else:
        node_lines.append(leaf_line(output, out_id, "output", "shape=doubleoctagon"))
        root_id, _ = dot_id(root, "op")
        out_meta[id(root)] = (output.shape, output.dtype)
        edge_lines.append(f"  {root_id} -> {out_id} [label={_quote(_shape(output.shape))}];")
        work = [root]
        ops: list[Node] = []
        while work:  # depth-first, explicit stack
            node = work.pop()
            ops.append(node)
            me = ids[id(node)]
            for parent, meta in zip(node.parents, node.metas):
                if parent is None:
                    continue
                if type(parent) is Node:
                    pid, new = dot_id(parent, "op")
                    out_meta.setdefault(id(parent), meta)
                    if new:
                        work.append(parent)
                else:
                    pid, new = dot_id(parent, "t")
                    if new:
                        is_param = id(parent) in names
                        style = ("shape=ellipse, style=filled, fillcolor=lightblue" if is_param
                                 else "shape=ellipse")
                        node_lines.append(leaf_line(parent, pid, leaf_title(parent), style))
                edge_lines.append(f"  {pid} -> {me} [label={_quote(_shape(meta[0]))}];")
        for node in ops:
            ins = [_meta(*m) if m is not None else "const" for m in node.metas]
            lines = [node.name, "in: " + ", ".join(ins) if ins else "in: -"]
            if id(node) in out_meta:
                lines.append("out: " + _meta(*out_meta[id(node)]))
            node_lines.append(f"  {ids[id(node)]} [label={_quote(chr(10).join(lines))}, "
                              "shape=box];")
    return "\n".join(["digraph tinynet {", "  rankdir=BT;", "  node [fontname=Helvetica];",
                      *node_lines, *edge_lines, "}"]) + "\n"


def render(dot: str, path: str | os.PathLike, format: str | None = None) -> str:
    """Write ``dot`` (from :func:`graph`) to ``path`` as an image with Graphviz's ``dot`` program.

    The format comes from ``format`` or the file suffix (``.svg``, ``.png``, ``.pdf``, ...).
    Raises RuntimeError when ``dot`` is not installed, or when it fails. Returns ``path``.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "tn.viz.render needs the Graphviz 'dot' program, which was not found on PATH. Install "
            "Graphviz (apt install graphviz, brew install graphviz, conda install graphviz, or "
            "https://graphviz.org/download/), or paste the DOT text from tn.viz.graph() into any "
            "Graphviz viewer (e.g. an online DOT viewer).")
    path = os.fspath(path)
    fmt = format or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    result = subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tn.viz.render: dot -T{fmt} failed: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return path
