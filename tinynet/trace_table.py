"""The text of ``trace.table()``: a trace (``debug.py``) drawn as rows a student can read.

Without values, one line per node (its id, the upstream gradient's shape and norm, the local
derivative) and one indented line per input (where the gradient goes, the local Jacobian's shape,
the gradient's shape and norm, the finite-difference check when the trace made one). A ``+``
line marks a tensor whose gradient is the sum of several parts, right after the part that
completes it. With values, each node becomes a block that also prints the numbers: the forward's
inputs and output, the upstream gradient, each gradient sent, each sum.
"""

from __future__ import annotations

from . import backend


def host(value):
    """A Tensor's (or a number's) value as a host NumPy array."""
    data = value.data if hasattr(value, "data") and hasattr(value, "device") else value
    if hasattr(value, "device") and hasattr(value.device, "to_host"):
        data = value.device.to_host(data)
    return backend.host_namespace().asarray(data)


def array_text(value, precision: int, indent: str) -> str:
    """``value`` printed as NumPy does, continuation lines indented by ``indent``."""
    if value is None:
        return "(not kept)"
    if type(value) is tuple:  # the outputs of a multi-output op, one per line
        return ("\n" + indent).join(f"[{k}] {array_text(v, precision, indent + ' ' * 4)}"
                                     for k, v in enumerate(value))
    if not hasattr(value, "shape") and not hasattr(value, "dtype"):
        return repr(value)
    text = backend.host_namespace().array2string(
        host(value), precision=precision, separator=", ", suppress_small=True,
        max_line_width=100 - len(indent))
    return text.replace("\n", "\n" + indent)


def shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def jacobian_text(jacobian_shape) -> str:
    out, inp = jacobian_shape
    return f"J {shape_text(out)}x{shape_text(inp)}"


def numeric_text(check: dict | None) -> str:
    """The finite-difference result of one input, in a few words."""
    if check is None:
        return ""
    if check["mode"] == "n/a":
        return f"; finite differences n/a ({check['reason']})"
    verdict = "ok" if check["ok"] else "MISMATCH"
    where = "" if check["mode"] == "elementwise" else " along a random direction"
    return f"; finite differences{where}: max error {check['max_error']:.2g} {verdict}"


def _sent(item: dict) -> str:
    grad = ("no gradient" if item["norm"] is None
            else f"sends {shape_text(item['shape'])} |g|={item['norm']:.4g}")
    return (f"-> input {item['input']} from {item['source']}: "
            f"{jacobian_text(item['jacobian_shape'])}, {grad}{numeric_text(item.get('numeric'))}")


def _parts(summed: dict) -> str:
    return " + ".join(f"{p['source']} -> input {p['input']} (|g|={p['norm']:.4g})"
                      for p in summed["parts"])


def table(tr, values: bool, precision: int) -> str:
    entries = tr.to_dict()
    sums: dict = {}
    for summed in tr.sums():
        sums.setdefault(summed["after"], []).append(summed)
    if values:
        return _blocks(entries, sums, precision)
    rows = [("#", "node", "grad_out", "|grad_out|", "local derivative / -> input")]
    for e in entries:
        go = e["grad_out"]
        rows.append((str(e["index"]), e["id"], shape_text(go["shape"]), f"{go['norm']:.4g}",
                     e["formula"]))
        for item in e["inputs"]:
            rows.append(("", "", "", "", "  " + _sent(item)))
        for summed in sums.get(e["index"], ()):
            rows.append(("+", summed["target"], shape_text(summed["shape"]),
                         f"{summed['norm']:.4g}", f"= {_parts(summed)}"))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _blocks(entries: list, sums: dict, precision: int) -> str:
    lines = []
    for e in entries:
        where = f"  [{e['module']}]" if e["module"] else ""
        lines.append(f"#{e['index']} {e['id']}{where}   {e['forward_formula']}  ->  "
                     f"{e['formula']}")
        forward = e.get("forward") or {}
        for inp in forward.get("inputs", ()):
            label = f"input {inp['input']} ({inp['source']})"
            pad = "    " + " " * (len(label) + 3)
            lines.append(f"    {label} = {array_text(inp['value'], precision, pad)}")
        if forward:
            pad = " " * len("    output = ")
            lines.append(f"    output = {array_text(forward['output'], precision, pad)}")
        go = e["grad_out"]
        pad = " " * len("    grad_out = ")
        lines.append(f"    grad_out = {array_text(go.get('value'), precision, pad)}"
                     f"   {shape_text(go['shape'])} |g|={go['norm']:.4g}")
        for item in e["inputs"]:
            lines.append("    " + _sent(item))
            if item["norm"] is not None:
                pad = " " * len("        = ")
                lines.append(f"        = {array_text(item.get('value'), precision, pad)}")
            check = item.get("numeric") or {}
            if "value" in check:
                pad = " " * len("        numeric = ")
                lines.append(f"        numeric = {array_text(check['value'], precision, pad)}")
        for summed in sums.get(e["index"], ()):
            lines.append(f"+ {summed['target']} receives {len(summed['parts'])} gradients: "
                         f"{_parts(summed)}")
            pad = " " * len("    sum = ")
            lines.append(f"    sum = {array_text(summed.get('value'), precision, pad)}"
                         f"   {shape_text(summed['shape'])} |g|={summed['norm']:.4g}")
    return "\n".join(lines)
