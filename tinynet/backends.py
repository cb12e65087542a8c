"""``tn.backends``: the ``torch.backends`` switches scripts set or ask about, answered for tinynet.

* ``tn.backends.mps.is_available()`` / ``is_built()``: False (tinynet computes on NumPy and CuPy;
  there is no Apple-GPU backend), so ``"mps" if torch.backends.mps.is_available() else "cpu"``
  picks ``"cpu"``;
* ``tn.backends.cudnn``: ``enabled``, ``benchmark``, ``deterministic`` are plain attributes a
  script may set; they change nothing (tinynet does not call cuDNN: convolutions are im2col
  matrix products), and ``cudnn.is_available()`` is False;
* ``tn.backends.cuda.matmul.allow_tf32``, ``tn.backends.cudnn.allow_tf32``: accepted, no effect
  (CuPy computes float32 matrix products in float32).

Not to be confused with ``tinynet.backend``, the package that holds the devices.
"""

from __future__ import annotations

from types import SimpleNamespace


def _false() -> bool:
    return False


mps = SimpleNamespace(is_available=_false, is_built=_false)
cudnn = SimpleNamespace(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
                        is_available=_false, version=lambda: None)
cuda = SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False))

__all__ = ["cuda", "cudnn", "mps"]
