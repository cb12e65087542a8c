# Run: python examples/10_seeing_backprop.py [--dot graph.dot]
"""Seeing backprop: the computation graph of a small MLP, the chain rule step by step, and anomaly
detection catching a log(0).

1. ``tn.viz.graph`` turns the recorded graph into Graphviz DOT text: one node per op and per tensor,
   with shapes, dtypes, parameter names and, after backward, gradient norms. Paste it into any DOT
   viewer, or render it with ``tn.viz.render(dot, "graph.svg")`` when Graphviz is installed.
2. ``tn.trace()`` records every backward step in order: the op, its local derivative, the
   upstream gradient and what it sends to each input. Follow the chain rule through a 2-layer net.
3. ``tn.detect_anomaly()`` checks every forward output and backward gradient for NaN/Inf and names
   the op and the line of *your* code that created it.
"""

import argparse

import tinynet as tn
from tinynet import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", default=None, help="also write the DOT text to this file")
    args = parser.parse_args()

    tn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    x = tn.randn(5, 4)
    y = tn.tensor([0, 1, 1, 0, 1])

    # 1. The graph, with parameter names and (after backward) gradient norms.
    with tn.trace() as t:  # 2. ... while recording every backward step
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
    dot = tn.viz.graph(loss, params=dict(model.named_parameters()))
    print(f"graph: {dot.count('->')} edges; the first lines of its DOT text:")
    print("\n".join(dot.splitlines()[:6]) + "\n  ...")
    if args.dot:
        with open(args.dot, "w") as f:
            f.write(dot)
        print(f"DOT text written to {args.dot}")

    print("\nbackward, step by step (reverse topological order):")
    print(t.table())
    steps = t.to_dict()
    first = model[0].weight
    print(f"\n{len(steps)} steps; the last one, {steps[-1]['op']}, sends 0.weight a gradient of norm "
          f"{steps[-1]['inputs'][0]['norm']:.6f}; 0.weight.grad has norm "
          f"{float((first.grad * first.grad).sum().sqrt()):.6f}")

    # 3. Anomaly detection: a log(0) in forward is reported with the op and this file's line.
    p = tn.tensor([0.5, 0.0, 0.25], requires_grad=True)
    try:
        with tn.detect_anomaly():
            (p.log() * 2).sum().backward()
    except RuntimeError as err:
        print("\nanomaly detection caught it:")
        print("\n".join(str(err).splitlines()[:3]))


if __name__ == "__main__":
    main()
