"""``tn.viz.walkthrough``: one backward pass as a self-contained HTML page, number by number.

The page lists every node in the order backward runs it (the ids of ``tn.trace()``), and for each
one: the op's formula (``forward  ->  gradient``, from its docstring: the line ``docs/ops.md``
shows), the numbers that went in and came out of its forward, the upstream gradient (and, when
several consumers sent one, the parts and their sum), the gradient it sends to each input with
the local Jacobian's shape and a finite-difference check of that node alone, and the running
gradients: every tensor that has received a gradient so far, with its running sum. It ends with
the gradients the leaves received. One file, no scripts, no external resources: it opens
anywhere and can be mailed.

Each number is shown rounded (``precision`` digits); the ``data-values`` attribute of the same
element holds it in full (``repr`` of each float, C order), for programs reading the page.
"""

from __future__ import annotations

import html
import os

from ..debug import trace as _trace
from ..tensor import Tensor
from ..trace_table import array_text, host, jacobian_text, shape_text

__all__ = ["walkthrough"]

_MAX_DATA = 4096  # elements: larger values are shown summarised, without data-values

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-top: 1px solid #ccc;
     padding-top: 1em; }
h3 { font-size: 1em; margin-bottom: 0.3em; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.4em 0.6em; margin: 0.2em 0; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.3em 0; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.5em; vertical-align: top; text-align: left; }
.formula { background: #eef4ff; padding: 0.4em 0.6em; }
.ok { color: #1a7f37; } .mismatch { color: #c62828; font-weight: bold; }
.note { color: #666; font-size: 0.9em; }
"""


def walkthrough(source, path: str | os.PathLike | None = None, *, params=None,
                title: str = "One backward pass, number by number", finite_differences=True,
                precision: int = 4) -> str:
    """Write one backward pass as a self-contained HTML page; return the HTML.

    Args:
        source: what to show. A function of no arguments that computes a scalar loss: its
            forward and ``backward()`` run inside a ``tn.trace(values=True)``, so every number
            is known (the usual way). A scalar Tensor: ``backward()`` runs now, and the forward's
            numbers are shown where the graph kept them. Or a finished ``tn.trace(values=True)``.
            Running a backward accumulates into the leaves' ``.grad``, as ``backward()`` does.
        path: the file to write (``None``: only return the text).
        params: names for leaves (a dict, ``named_parameters()`` pairs or a Module), as in
            ``tn.trace``.
        title: the page's title.
        finite_differences: check each node alone against central differences (as
            ``tn.trace(finite_differences=True)``; needs the forward inside the trace).
        precision: digits shown.

    Example:
        >>> model = tn.nn.Sequential(tn.nn.Linear(2, 3), tn.nn.Tanh(), tn.nn.Linear(3, 1))
        >>> x, y = tn.randn(4, 2), tn.randn(4, 1)
        >>> tn.viz.walkthrough(lambda: tn.nn.functional.mse_loss(model(x), y),
        ...                    "backprop.html", params=model)
    """
    if isinstance(source, _trace):
        tr = source
        if not tr.values:
            raise ValueError("tn.viz.walkthrough: the trace kept no values; record it with "
                             "tn.trace(values=True)")
        loss = None
    else:
        tr = _trace(values=True, params=params, finite_differences=finite_differences)
        with tr:
            loss = source() if callable(source) and not isinstance(source, Tensor) else source
            if not isinstance(loss, Tensor):
                raise TypeError(f"tn.viz.walkthrough: expected a Tensor, a function returning "
                                f"one, or a tn.trace; got {type(loss).__name__}")
            loss.backward()
    text = _Page(tr, loss, title, precision).render()
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


class _Page:
    def __init__(self, tr, loss, title: str, precision: int):
        self.tr, self.loss, self.title, self.precision = tr, loss, title, precision
        self.entries = tr.to_dict()
        self.sums = {s["target"]: s for s in tr.sums()}
        self.parts_total: dict = {}  # target label -> how many gradients it receives in all
        for e in self.entries:
            for item in e["inputs"]:
                if item["norm"] is not None:
                    self.parts_total[item["source"]] = self.parts_total.get(item["source"], 0) + 1

    def value(self, value, role: str, name: str = "") -> str:
        """A ``<pre>`` with the rounded value; ``data-values`` holds it in full."""
        attrs = f' class="value" data-role="{_esc(role)}" data-name="{_esc(name)}"'
        if value is None:
            return (f'<pre{attrs} data-missing="1">not kept (the forward ran outside the trace)'
                    "</pre>")
        if isinstance(value, Tensor) or hasattr(value, "shape"):
            array = host(value)
            attrs += f' data-shape="{_esc(",".join(str(s) for s in array.shape))}"'
            if array.size <= _MAX_DATA and array.dtype.kind in "fiub":
                full = ",".join(repr(float(v)) for v in array.reshape(-1).tolist())
                attrs += f' data-values="{full}"'
        return f"<pre{attrs}>{_esc(array_text(value, self.precision, ''))}</pre>"

    def render(self) -> str:
        body = [f"<h1>{_esc(self.title)}</h1>", self.intro(), self.contents()]
        running: dict = {}  # target label -> [parts received so far, running sum]
        for e in self.entries:
            body.append(self.step(e, running))
        body.append(self.result())
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{_esc(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
                + "\n".join(body) + "\n</body>\n</html>\n")

    def intro(self) -> str:
        loss = "" if self.loss is None else \
            f"<div>The loss is {self.value(self.loss.detach(), 'loss')}</div>"
        return (f"{loss}<p>Backward ran {len(self.entries)} nodes, in this order (Kahn's "
                "algorithm from the loss back to the leaves: a node runs once every consumer of "
                "its output has sent its gradient). Each step shows the op's formula, the numbers "
                "its forward saw, the upstream gradient <code>g</code> it received, the gradient "
                "it sends to each input, and the running gradients of every tensor so far.</p>")

    def contents(self) -> str:
        items = [f'<li><a href="#step-{e["index"]}">{_esc(e["id"])}</a>'
                 + (f' <span class="note">{_esc(e["module"])}</span>' if e["module"] else "")
                 + "</li>" for e in self.entries]
        return "<ol start=\"0\" class=\"contents\">" + "".join(items) + "</ol>"

    def step(self, e: dict, running: dict) -> str:
        out = [(f'<section class="step" id="step-{e["index"]}" data-id="{_esc(e["id"])}" '
                f'data-op="{_esc(e["op"])}">'),
               f"<h2>Step {e['index']}: {_esc(e['id'])}"
               + (f" <span class=\"note\">in {_esc(e['module'])}</span>" if e["module"] else "")
               + "</h2>"]
        if e["where"]:
            out.append(f'<p class="note">made at {_esc(e["where"])}</p>')
        out.append(f'<p class="formula"><code>{_esc(e["forward_formula"])}  &rarr;  '
                   f'{_esc(e["formula"])}</code></p>')
        params = ", ".join(f"{k}={v}" for k, v in e["params"].items()
                           if v is not None and not k.startswith("_"))
        if params:
            out.append(f'<p class="note">parameters: <code>{_esc(params)}</code></p>')
        out.append("<h3>Numbers in and out (forward)</h3><table>")
        forward = e.get("forward") or {"inputs": [], "output": None}
        for inp in forward["inputs"]:
            label = f"input {inp['input']} ({inp['source']})"
            out.append(f"<tr><th>{_esc(label)}</th><td>"
                       f"{self.value(inp['value'], 'forward-input', inp['source'])}</td></tr>")
        out.append(f"<tr><th>output</th><td>{self.value(forward['output'], 'forward-output')}"
                   "</td></tr></table>")
        summed = self.sums.get(e["id"])
        out.append(f"<h3>Upstream gradient g = &part;loss/&part;{_esc(e['id'])} "
                   f"{_esc(shape_text(e['grad_out']['shape']))}</h3>")
        if summed is not None:
            parts = " + ".join(f"{p['source']} &rarr; input {p['input']}" for p in summed["parts"])
            out.append(f"<p>the sum of {len(summed['parts'])} gradients: {parts}</p>")
        out.append(self.value(e["grad_out"].get("value"), "grad_out", e["id"]))
        out.append("<h3>Gradients sent to the inputs</h3><table><tr><th>to</th><th>local "
                   "Jacobian</th><th>gradient</th><th>finite differences (this node alone)</th>"
                   "</tr>")
        for item in e["inputs"]:
            out.append(f"<tr><td>input {item['input']}: {_esc(item['source'])}</td>"
                       f"<td>{_esc(jacobian_text(item['jacobian_shape']))}</td>"
                       f"<td>{self.value(item.get('value'), 'grad_in', item['source'])}</td>"
                       f"<td>{self.check(item.get('numeric'))}</td></tr>")
            if item["norm"] is not None:
                got = running.setdefault(item["source"], [0, None])
                got[0] += 1
                part = host(item["value"])
                got[1] = part.copy() if got[1] is None else got[1] + part
        out.append("</table>")
        out.append(self.running(running))
        out.append("</section>")
        return "\n".join(out)

    def check(self, numeric: dict | None) -> str:
        if numeric is None:
            return '<span class="note">not checked</span>'
        if numeric["mode"] == "n/a":
            return f'<span class="note">n/a: {_esc(numeric["reason"])}</span>'
        verdict = ('<span class="ok">ok</span>' if numeric["ok"]
                   else '<span class="mismatch">MISMATCH</span>')
        text = f"max error {numeric['max_error']:.2g} {verdict}"
        if "value" in numeric:
            text += self.value(numeric["value"], "numeric")
        else:
            text += (f" <span class=\"note\">(along a random direction: numeric "
                     f"{numeric['numeric']:.6g}, analytic {numeric['analytic']:.6g})</span>")
        return text

    def running(self, running: dict) -> str:
        rows = [("<h3>Running gradients</h3><table class=\"running\"><tr><th>tensor</th>"
                 "<th>received</th><th>sum so far</th></tr>")]
        for target, (count, total) in running.items():
            n = self.parts_total[target]
            status = f"{count} of {n}" + (" (complete)" if count == n else "")
            rows.append(f"<tr><td>{_esc(target)}</td><td>{status}</td>"
                        f"<td>{self.value(total, 'running', target)}</td></tr>")
        return "".join(rows) + "</table>"

    def result(self) -> str:
        rows = [("<h2 id=\"result\">Result: the gradients of the leaves</h2><table "
                 "class=\"result\"><tr><th>leaf</th><th>shape</th><th>gradient</th></tr>")]
        leaves = {}
        for e in self.entries:
            for item in e["inputs"]:
                if item["kind"] == "leaf" and item["norm"] is not None:
                    v = host(item["value"])
                    leaves[item["source"]] = v if item["source"] not in leaves else \
                        leaves[item["source"]] + v
        for name, total in leaves.items():
            rows.append(f"<tr><td>{_esc(name)}</td><td>{_esc(shape_text(total.shape))}</td>"
                        f"<td>{self.value(total, 'leaf-grad', name)}</td></tr>")
        return "".join(rows) + "</table>"
