"""What gradcheck says when it fails: names for the function, its arguments and outputs, and the
text of a Jacobian mismatch.

``gradcheck.py`` computes; this module words the result so that a failure reads on its own:

* :class:`Labels` names the function (``Cube.apply``, ``model.forward``, a lambda by its source
  text and file:line), each argument by its parameter name (``inspect.signature``; a Function's
  ``forward`` minus ``ctx``) and each output (``out``, or ``out0``, ``out1`` ...).
* :func:`jacobian_mismatch` lists every failing Jacobian entry (worst first, capped with a count)
  as ``d out[i, j] / d x[k, l]``, the input values around the worst one, and both Jacobians in
  full when they are small, as ``torch.autograd.gradcheck`` prints them.

Host-side text only: the Jacobians are already NumPy arrays on the host here.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import os
from functools import cached_property

from . import backend

MAX_LISTED = 10  # failing entries listed one per line; the rest are counted
MAX_JACOBIAN = 100  # Jacobians with at most this many entries are printed in full
NEAR = 2  # the input window around the worst element reaches this far along each axis


class GradcheckError(AssertionError):
    """A gradient check failed: the message says which function, argument and elements, and why.

    ``kind`` is ``"mismatch"`` when analytic and numeric derivatives disagree, ``"inplace"`` when
    an op wrote to an array it does not own, ``"other"`` for anything else (a gradient of the
    wrong shape, dtype or device).
    """

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind


class Labels:
    """Names for one checked call ``fn(*inputs)``: the function, each input, each float output.

    Attributes are computed on first use (only a failure needs them).
    """

    def __init__(self, fn, n_inputs: int, check: str = "gradcheck"):
        self.fn = fn
        self.n_inputs = n_inputs
        self.check = check  # "gradcheck", "gradgradcheck" or "check_op": the message's first word
        self.output_names: list[str] | None = None  # set once the outputs are known

    @cached_property
    def function(self) -> str:
        return function_name(self.fn)

    @cached_property
    def inputs(self) -> list[str]:
        return argument_names(self.fn, self.n_inputs)

    def input(self, i: int, x=None) -> str:
        """``'x' (input 0, shape (2, 3), float64)``."""
        where = f"input {i}"
        if x is not None:
            where += f", shape {tuple(x.shape)}, {x.dtype}"
        name = self.inputs[i]
        return where if name == f"input {i}" else f"'{name}' ({where})"

    def output(self, k: int) -> str:
        names = self.output_names or []
        return names[k] if k < len(names) else f"out{k}"

    def set_outputs(self, count: int, names: list[str] | None = None) -> None:
        self.output_names = names or (["out"] if count == 1 else [f"out{k}" for k in range(count)])

    def prefix(self) -> str:
        return f"{self.check}: {self.function}"


def function_name(fn) -> str:
    """``Cube.apply`` for a Function, ``Linear.forward`` for a bound method, a lambda's source
    text with its file:line, a partial's function, else ``__qualname__``."""
    owner = getattr(fn, "__self__", None)
    if owner is not None and not inspect.ismodule(owner):
        cls = owner if isinstance(owner, type) else type(owner)
        return f"{cls.__qualname__}.{fn.__name__}"
    if hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        return f"partial({function_name(fn.func)})"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)  # a ufunc: __name__
    if name is None:
        return type(fn).__qualname__  # a callable object, such as a Module
    code = getattr(fn, "__code__", None)
    if code is not None and "<lambda>" in name:
        where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
        source = _lambda_source(code)
        return f"`{source}` ({where})" if source else f"{name} ({where})"
    return name


def _lambda_source(code) -> str | None:
    """The source text of the lambda compiled to ``code``, found with ``ast`` in its file."""
    text = "".join(linecache.getlines(code.co_filename))
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    params = list(code.co_varnames[:code.co_argcount])
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)
             and node.lineno == code.co_firstlineno
             and [a.arg for a in node.args.posonlyargs + node.args.args] == params]
    if len(found) != 1:
        return None
    source = ast.get_source_segment(text, found[0])
    return " ".join(source.split()) if source else None


def argument_names(fn, n: int) -> list[str]:
    """The parameter name of each of ``n`` positional arguments; ``xs[k]`` for ``*xs``, and
    ``input k`` where no name can be had (a C function, ``*args`` of a wrapper)."""
    target, skip = fn, 0
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type) and getattr(fn, "__name__", "") == "apply" \
            and hasattr(owner, "forward"):
        target, skip = owner.forward, 1  # a Function: forward(ctx, ...) names the inputs
    elif not inspect.isroutine(fn) and callable(getattr(fn, "forward", None)):
        target = fn.forward  # a Module: its forward, bound
    try:
        params = list(inspect.signature(target).parameters.values())[skip:]
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}[{k}]" for k in range(n - len(names))]
            break
        else:
            break
    names = names[:n]
    return names + [f"input {i}" for i in range(len(names), n)]


def element(name: str, index: tuple) -> str:
    """``x[0, 1]``; a 0-d tensor is just ``x``."""
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def unravel(flat: int, shape: tuple) -> tuple:
    index = []
    for size in reversed(shape):
        flat, r = divmod(flat, size)
        index.append(r)
    return tuple(reversed(index))


def locate(row: int, out_shapes: list[tuple]) -> tuple[int, tuple]:
    """The output (its number) and the element a row of the stacked Jacobian belongs to."""
    for k, shape in enumerate(out_shapes):
        size = numel(shape)
        if row < size:
            return k, unravel(row, shape)
        row -= size
    raise IndexError(row)


def numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def show(array, indent: str = "    ") -> str:
    """A host array as indented text, full precision where it matters (numbers users compare)."""
    host = backend.host_namespace()
    text = host.array2string(array, precision=6, max_line_width=96, threshold=400)
    return "\n".join(indent + line for line in text.splitlines())


def neighbourhood(name: str, values, index: tuple) -> str:
    """The input values around ``index``: a window reaching ``NEAR`` elements along each axis."""
    if not index:
        return f"  {name} = {float(values)!r}"
    lo = [max(0, i - NEAR) for i in index]
    hi = [min(s, i + NEAR + 1) for i, s in zip(index, values.shape)]
    window = values[tuple(slice(a, b) for a, b in zip(lo, hi))]
    where = ", ".join(f"{a}:{b}" for a, b in zip(lo, hi))
    return (f"  {element(name, index)} = {float(values[index])!r}; {name}[{where}] is\n"
            f"{show(window)}")


def jacobian_mismatch(labels: Labels, i: int, x, x_values, analytic, numeric, bad, excess,
                      out_shapes: list[tuple], tolerances: dict) -> str:
    """The message for a Jacobian whose ``bad`` entries (rows: stacked output elements in C
    order, columns: elements of input ``i``) differ; ``excess`` ranks them (worst first)."""
    host = backend.host_namespace()
    name = labels.inputs[i]
    rows, cols = host.nonzero(bad)
    order = host.argsort(-host.nan_to_num(excess[rows, cols], nan=host.inf), kind="stable")
    lines = []
    for r, c in zip(rows[order][:MAX_LISTED], cols[order][:MAX_LISTED]):
        k, out_index = locate(int(r), out_shapes)
        a, n = float(analytic[r, c]), float(numeric[r, c])
        err = abs(a - n)
        rel = err / abs(n) if n != 0 else float("inf")
        lines.append(f"  d {element(labels.output(k), out_index)} / "
                     f"d {element(name, unravel(int(c), tuple(x.shape)))}: analytic {a!r}, "
                     f"numeric {n!r}, error {err:.3g} (relative {rel:.3g})")
    if len(rows) > MAX_LISTED:
        lines.append(f"  ... and {len(rows) - MAX_LISTED} more")
    worst_col = int(cols[order][0])
    tol = ", ".join(f"{k}={v:g}" for k, v in tolerances.items())
    what = ("the gradient" if labels.check == "gradcheck" else
            "the second derivative (the derivative of the first derivatives "
            f"{', '.join(labels.output_names or [])}, built with create_graph=True)")
    parts = [
        f"{labels.prefix()}: {what} with respect to {labels.input(i, x)} does not match central "
        f"differences at {len(rows)} of {bad.size} Jacobian entries ({tol}; an entry passes when "
        f"|analytic - numeric| <= atol + rtol * |numeric|). Failing entries, worst first:",
        *lines,
        f"Input values near the worst entry:\n"
        f"{neighbourhood(name, x_values, unravel(worst_col, tuple(x.shape)))}",
    ]
    if analytic.size <= MAX_JACOBIAN:
        outs = ", ".join(labels.output(k) for k in range(len(out_shapes)))
        outs = f"({outs})" if len(out_shapes) > 1 else outs
        parts.append(f"Jacobian d {outs} / d {name} (row: output element in C order, column: "
                     f"element of {name}):\n  analytic\n{show(analytic)}\n  numeric\n"
                     f"{show(numeric)}")
    return "\n".join(parts)


__all__ = ["GradcheckError", "Labels", "argument_names", "element", "function_name", "jacobian_mismatch",
           "locate", "neighbourhood", "numel", "show", "unravel"]
