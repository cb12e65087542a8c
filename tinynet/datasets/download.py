"""Fetching a file over HTTP(S) with checksum verification, for machines that have a network.

The file is verified in memory before it is written, then moved into place atomically, so a failed
or corrupted download never leaves a half-written file where a loader would find it.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .base import check_digest


class DownloadError(OSError):
    """No mirror could be reached (no network, a firewall, a dead mirror)."""


def fetch(url: str, timeout: float = 30.0) -> bytes:
    """The bytes at ``url``; :class:`DownloadError` (naming the URL and the reason) on failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"{url}: {err.reason}") from err
    except (TimeoutError, OSError) as err:  # a read that times out, a connection reset
        raise DownloadError(f"{url}: {err or type(err).__name__}") from err


def download_file(urls: str | Sequence[str], path: str | Path, checksum: str,
                  algorithm: str = "sha256", timeout: float = 30.0) -> Path:
    """Download to ``path`` from the first of ``urls`` that answers, verifying the checksum.

    Args:
        urls: one URL, or mirrors tried in order.
        path: where the file goes (its folder is created).
        checksum: the expected hex digest of the downloaded bytes.
        algorithm: ``"sha256"``, or ``"md5"`` where that is what the source publishes.
        timeout: seconds to wait for each connection and read.

    Returns:
        ``path``.

    Raises:
        DownloadError: no URL could be fetched; the message lists each URL with its error.
        ChecksumError: a URL answered with bytes of the wrong checksum (nothing is written).
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError("download_file needs at least one URL")
    path = Path(path)
    errors = []
    for url in urls:
        try:
            data = fetch(url, timeout)
        except DownloadError as err:
            errors.append(str(err))
            continue
        check_digest(data, checksum, url, algorithm)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return path
    raise DownloadError(
        f"could not download {path.name} (is this machine offline?); tried:\n  "
        + "\n  ".join(errors)
        + f"\nWhere there is no network, copy the file there by hand: {path}"
    )
