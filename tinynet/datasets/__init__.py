"""Built-in datasets, each returned as a :class:`tinynet.data.TensorDataset` ``(X, y)``.

- :func:`digits`: the embedded default, 8x8 handwritten digits (1,797 samples, 10 classes) shipped
  in the package. Data: E. Alpaydin and C. Kaynak (1998), "Optical Recognition of Handwritten
  Digits", UCI Machine Learning Repository, https://doi.org/10.24432/C50P49, licensed under CC BY 4.0
  (https://creativecommons.org/licenses/by/4.0/); see ``datasets/data/ATTRIBUTION.md``.
- :func:`mnist1d`: MNIST-1D (S. Greydanus and D. Kobak, arXiv:2011.14439; Apache-2.0; see
  ``datasets/data/ATTRIBUTION.md``), 4,000 + 1,000 signals of length 40, embedded; variants come
  from the reference ``mnist1d`` generator when it is installed.
- :func:`spirals`, :func:`moons`, :func:`blobs`, :func:`regression`: generated from a seed.
- :func:`mnist`, :func:`fashion_mnist`: the standard IDX files in a local folder (:func:`read_idx`
  reads one), with an optional checksum-verified download.

Everything here is prepared on the host with NumPy; the tensors go to the default device (or the
``device=`` given). Read ``embedded.py``, ``mnist1d.py``, ``synthetic.py``, then ``idx.py`` and
``mnist.py``.
"""

from .base import ChecksumError
from .download import DownloadError, download_file
from .embedded import DIGITS_SHA256, digits
from .idx import IDXError, read_idx
from .mnist import fashion_mnist, mnist
from .mnist1d import MNIST1D_SHA256, mnist1d
from .synthetic import blobs, moons, regression, spirals

__all__ = [
    "DIGITS_SHA256",
    "MNIST1D_SHA256",
    "ChecksumError",
    "DownloadError",
    "IDXError",
    "blobs",
    "digits",
    "download_file",
    "fashion_mnist",
    "mnist",
    "mnist1d",
    "moons",
    "read_idx",
    "regression",
    "spirals",
]
