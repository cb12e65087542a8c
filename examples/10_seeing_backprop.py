# Run: python examples/10_seeing_backprop.py [--dot graph.dot] [--html walkthrough.html]
"""Seeing backprop: the computation graph of a small MLP, the chain rule step by step with its
numbers, a page that walks through one backward pass, and anomaly detection catching a log(0).

1. ``tn.trace()`` records every backward step in order: the op, its local derivative, the
   upstream gradient and what it sends to each input, with the numbers (``values=True``), the
   parameters' names (``params=model``) and a finite-difference check of each node alone.
2. ``tn.viz.graph`` draws the recorded graph: one node per op and per tensor, with the trace's
   ids, op attributes, shapes, parameter names and gradient norms, one box per module. In Jupyter
   it displays itself (SVG with Graphviz installed); here its text form is printed.
3. ``tn.viz.walkthrough`` writes one backward pass as an HTML page, node by node with the numbers.
4. ``tn.detect_anomaly()`` checks every forward output and backward gradient for NaN/Inf and names
   the op, the first bad element and the line of *your* code that created it;
   ``detect_anomaly(forward=False)`` checks gradients only, for forwards that mask a NaN.
"""

import argparse
from pathlib import Path

import tinynet as tn
from tinynet import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", default=None, help="also write the graph's DOT text to this file")
    parser.add_argument("--html", default="runs/10_seeing_backprop/walkthrough.html",
                        help="where to write the walkthrough page (runs/ is git-ignored)")
    args = parser.parse_args()

    tn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    x = tn.randn(5, 4)
    y = tn.tensor([0, 1, 1, 0, 1])

    # 1. Forward and backward inside a trace: every step, its numbers, a check of each node.
    with tn.trace(values=True, params=model, finite_differences=True) as t:
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
    print("backward, step by step (node ids number the steps in the order backward ran them):")
    print(t.table())
    blocks = t.table(values=True).split("\n#")
    print("\nthe last step with its numbers (t.table(values=True) prints every step so):")
    print("#" + blocks[-1])
    steps = t.to_dict()
    first = model[0].weight
    print(f"\n{len(steps)} steps; the last one, {steps[-1]['id']}, sends 0.weight a gradient of "
          f"norm {steps[-1]['inputs'][0]['norm']:.6f}; 0.weight.grad has norm "
          f"{float((first.grad * first.grad).sum().sqrt()):.6f}")

    # 2. The graph: the same ids, the modules as boxes.
    graph = tn.viz.graph(loss, params=model, trace=t)
    print(f"\nthe graph ({graph.source.count('->')} edges), as text:")
    print(repr(graph))
    if args.dot:
        with open(args.dot, "w") as f:
            f.write(graph.source)
        print(f"DOT text written to {args.dot}")

    # 3. The walkthrough page.
    Path(args.html).parent.mkdir(parents=True, exist_ok=True)
    tn.viz.walkthrough(lambda: nn.functional.cross_entropy(model(x), y), args.html, params=model)
    print(f"\nwalkthrough of one backward pass written to {args.html}")

    # 4. Anomaly detection: a log(0) in forward is reported with the op and this file's line.
    p = tn.tensor([0.5, 0.0, 0.25], requires_grad=True)
    try:
        with tn.detect_anomaly():
            (p.log() * 2).sum().backward()
    except RuntimeError as err:
        print("\nanomaly detection caught it:")
        print(err)
    # A forward that masks its bad values is fine (log(-1) is NaN, then replaced by 0): check
    # the gradients only. (At q = 0 exactly the masked gradient would be 0 / 0 = NaN, and even
    # this mode would report it: a bug of the formula, not of the forward.)
    q = tn.tensor([0.5, -1.0, 0.25], requires_grad=True)
    with tn.detect_anomaly(forward=False):
        safe = tn.where(q > 0, q.log(), 0.0)
        safe.sum().backward()
    print(f"\nwhere(q > 0, log(q), 0) under detect_anomaly(forward=False): no error; "
          f"q.grad = {q.grad.tolist()}")


if __name__ == "__main__":
    main()
