"""Atomic file replacement: the one way tinynet writes a file that must survive a crash.

``replace_file(path, write)`` runs ``write(file)`` into a temporary file next to ``path`` and
renames it over ``path``, so a reader (or a process killed at any instant) sees either the whole
old file or the whole new one. ``tn.save`` writes checkpoints through it, ``tinynet train`` its
``config.json`` and ``history.csv``, ``History`` its CSV and plot.

What a replacement keeps and cleans up:

* **symlinks**: saving onto a link replaces the file the link points to; the link stays;
* **the mode** (and, where permitted, the owner) of the file it replaces, as ``open(path, "w")``
  would: a ``0600`` checkpoint stays ``0600``; a new file gets ``0666`` minus the umask;
* **temporary files**: ``.<name>.<host>-<pid>.<random>.tmp``. One is removed when the write fails
  with an exception; a process killed mid-write cannot remove its own, so every later replacement
  of the same file removes those left behind: a temp whose writer (the pid in its name, on this
  host) is no longer running, or which nobody has written to for ``STALE_TEMP_SECONDS``. A temp
  that a live process is writing is never touched (a writer on another machine sharing the folder
  is recognised by the host tag, and only the age rule applies to it).

Read next: ``serialization.py`` (the checkpoint format written through this module).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable

__all__ = ["STALE_TEMP_SECONDS", "checked_path", "copy_file", "replace_file", "write_bytes"]

STALE_TEMP_SECONDS = 3600  # a temp untouched this long has no live writer (writers touch it per MiB)
_CHUNK = 1 << 20  # bytes per os.write call
# Our temp names, after the ".<target name>." prefix: host tag, pid, random token. The older
# form (random token only, no pid) is recognised too, and removed by age only.
_TEMP_SUFFIX = re.compile(r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)\.)?[0-9a-f]{12}\.tmp")


class _FdWriter:
    """A write-only file over a descriptor; every byte goes through ``os.write`` (no hidden buffer
    that could be lost), and ``tell`` lets ``zipfile`` stream members without seeking."""

    def __init__(self, fd: int):
        self.fd = fd
        self.position = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self.fd, view[done:done + _CHUNK])
        self.position += done
        return done

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass  # nothing is buffered here; replace_file fsyncs the descriptor


def checked_path(path, caller: str) -> str:
    """``path`` as a ``str``, refusing what is not a path (naming ``caller`` and the argument)."""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{caller}: path must be a str or os.PathLike, got "
                        f"{type(path).__name__}") from None
    if not text:
        raise ValueError(f"{caller}: path is empty; give a file name such as 'model.npz'")
    return text


def replace_file(path, write: Callable, caller: str = "tn.save", durable: bool = True) -> None:
    """Run ``write(file)`` into a temporary file next to ``path``, then rename it over ``path``.

    The temporary file lives in the target's directory (a rename is only atomic within one file
    system), is fsynced before the rename (so the new name never points at data still in the page
    cache) and removed if ``write`` raises. The directory is fsynced after the rename so the new
    entry survives a power loss. ``caller`` names the function in error messages.
    ``durable=False`` skips both fsyncs: still atomic for a killed process (the page cache
    outlives it), not across a power loss; for small files derived from others and rewritten
    often (a run's ``history.csv``), where an fsync would cost more than the write.

    Raises:
        TypeError, ValueError: ``path`` is not a path, or is empty.
        IsADirectoryError, FileNotFoundError, PermissionError, ...: the target is a folder, its
            folder does not exist, or cannot be written (the message names ``path``).
    """
    path = checked_path(path, caller)
    target = _final_target(path, caller)
    directory, name = os.path.split(target)
    existing = _existing_stat(target)
    _remove_stale_temps(directory, name)
    tmp = os.path.join(directory, f".{name}.{_host_tag()}-{os.getpid()}."
                                  f"{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a file made by open()
    except OSError as exc:
        raise OSError(exc.errno, f"{caller}: cannot create a file in the folder of {path!r} "
                                 f"({exc.strerror})", path) from None
    try:
        try:
            if existing is not None:
                _keep_mode_and_owner(fd, tmp, existing)
            write(_FdWriter(fd))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_directory(directory)


def write_bytes(path, data: bytes, caller: str = "write_bytes", durable: bool = True) -> None:
    """Replace the file at ``path`` with ``data``, atomically (see :func:`replace_file`)."""
    replace_file(path, lambda f: f.write(data), caller, durable)


def copy_file(source, path, caller: str = "copy_file") -> None:
    """Replace the file at ``path`` with a byte-for-byte copy of ``source``, atomically."""
    def write(out):
        with open(source, "rb") as f:
            while chunk := f.read(_CHUNK):
                out.write(chunk)

    replace_file(path, write, caller)


def _final_target(path: str, caller: str) -> str:
    """The file a write to ``path`` must replace: ``path`` itself, or the end of its symlinks."""
    target = os.path.abspath(path)
    if os.path.islink(target):
        target = os.path.realpath(target)
        if os.path.islink(target):  # realpath stops inside a loop of links
            raise OSError(errno.ELOOP, f"{caller}: {path!r} is a loop of symbolic links", path)
    if os.path.isdir(target) or path.endswith(("/", os.sep)):
        raise IsADirectoryError(errno.EISDIR, f"{caller}: {path!r} names a folder; give a file "
                                              "name inside it", path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"{caller}: the folder of {path!r} does not exist "
                                              "(create it first)", path)
    return target


def _existing_stat(target: str):
    try:
        return os.stat(target)
    except FileNotFoundError:
        return None


def _keep_mode_and_owner(fd: int, tmp: str, existing: os.stat_result) -> None:
    """Give the new file the mode (and owner, where allowed) of the one it replaces."""
    mode = stat.S_IMODE(existing.st_mode)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows
        os.chmod(tmp, mode)
    if hasattr(os, "fchown"):
        mine = os.fstat(fd)
        if (mine.st_uid, mine.st_gid) != (existing.st_uid, existing.st_gid):
            try:  # only a privileged process may give a file away; others keep their own
                os.fchown(fd, existing.st_uid, existing.st_gid)
            except PermissionError:
                pass


def _remove_stale_temps(directory: str, name: str) -> None:
    """Delete the temporaries of earlier, killed writes of ``name`` (never a live writer's)."""
    prefix = f".{name}."
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(prefix)]
    except OSError:
        return  # an unreadable folder: the write itself will say what is wrong
    now = time.time()
    for entry in entries:
        match = _TEMP_SUFFIX.fullmatch(entry.name[len(prefix):])
        if match is None:
            continue  # not our naming: someone else's file
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            idle = now - entry.stat(follow_symlinks=False).st_mtime
            dead_writer = (match["host"] == _host_tag() and int(match["pid"]) != os.getpid()
                           and not _running(int(match["pid"])))
            if dead_writer or idle > STALE_TEMP_SECONDS:
                os.remove(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove


def _running(pid: int) -> bool:
    """Whether a process with this id exists on this machine (True when it cannot be told)."""
    if os.name != "posix":
        return True  # no harmless liveness probe here (os.kill would terminate it): age only
    try:
        os.kill(pid, 0)  # signal 0: a permission and existence check, nothing is sent
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


@functools.cache
def _host_tag() -> str:
    """8 hex digits naming this machine, so a pid is only judged on the host that owns it."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows: directories cannot be opened; the rename is already durable there
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the data itself is synced
    finally:
        os.close(fd)
