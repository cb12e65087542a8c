"""The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

Layout, all integers big-endian::

    bytes 0-1   0x00 0x00          (magic, part 1)
    byte  2     dtype code          0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                    0x0D float32, 0x0E float64
    byte  3     number of dims n    (magic, part 2)
    4n bytes    n sizes, uint32 each
    then        the values, C order, big-endian

Files may be gzip-compressed (``.gz``, as the mirrors serve them); :func:`read_idx` recognises the
gzip header and decompresses.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file is not a well-formed IDX file (the message names the file and what is wrong)."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a host NumPy array.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.

    Returns:
        A native-endian, writable array of the file's dtype and shape, e.g. uint8 (60000, 28, 28).

    Raises:
        FileNotFoundError: no such file.
        IDXError: bad magic number, unknown dtype code, truncated header, or a data size that does
            not match the dimensions.

    Example:
        >>> images = read_idx("data/mnist/t10k-images-idx3-ubyte.gz")  # uint8 (10000, 28, 28)
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:  # gzip raises BadGzipFile (an OSError) or EOFError
            raise IDXError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) < 4:
        raise IDXError(f"{path}: {len(raw)} bytes, too short for an IDX header (4 bytes at least)")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{path}: bad magic number 0x{raw[:4].hex()} (an IDX file starts with two "
                       "zero bytes, then the dtype code and the number of dimensions)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IDXError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes; {ndim} dimensions need "
                       f"{header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        raise IDXError(f"{path}: dimensions {shape} of {dtype.name} need {expected} data bytes, "
                       f"the file has {found} (truncated or not an IDX file)")
    values = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    # astype copies: the result is writable and native-endian, not a view of the file's bytes.
    return values.astype(dtype.newbyteorder("=")).reshape(shape)
