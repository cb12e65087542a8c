"""``tn.viz``: pictures of one forward and backward pass.

* :func:`graph` (``graph.py``): the recorded graph as Graphviz DOT text, a :class:`Graph` that
  draws itself in Jupyter (SVG with Graphviz, a text listing without), with op attributes, values,
  gradients and a box per module; :func:`render` writes it as SVG/PNG.
* :func:`walkthrough` (``walkthrough.py``): one backward pass as a self-contained HTML page, node
  by node in execution order, with each op's formula and the numbers in and out.

Both read what ``tn.trace()`` (``tinynet/debug.py``) records; read that first.
"""

from .graph import Graph, grad_norm, graph, render
from .walkthrough import walkthrough

__all__ = ["Graph", "grad_norm", "graph", "render", "walkthrough"]
