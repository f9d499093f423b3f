"""Files and folders that appear whole or not at all.

Everything calotools writes (ntuples, LCW tables, splits, sidecars, model
folders, figures, study outputs) is written under a temporary name beside its
final one and renamed when complete. A rename within a folder is atomic, so a
reader, or a run that was interrupted (Ctrl-C, a crash, a full disk), finds
either the old file or the new one under the final name, never half of one.

- `atomic_write`: a context manager giving the temporary path to write to;
- `PendingFile`: the same for writers that open and close in separate calls
  (`calotools.ntuple.ClusterWriter`);
- `write_text`, `copy_file`: the two writes everyone needs;
- `partial_folder`, `commit_folder`, `atomic_folder`: the same for folders,
  which are written as ``.NAME.partial`` and renamed.

Temporary names keep the final suffix (``.pi0.root.<host>.<pid>.tmp.root``)
because some libraries pick the format by it (Keras, matplotlib). They name the
machine and process that writes them, so that a process killed outright
(``kill -9``, a power cut) leaves a temporary that the next write of the same
file recognises as dead and removes (`remove_stale_temporaries`); temporaries
of running processes, and of other machines sharing the folder, are left alone.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> with atomic_write(folder / "table.csv") as tmp:
...     _ = tmp.write_text("a,b\\n1,2\\n")
...     (folder / "table.csv").exists()
False
>>> (folder / "table.csv").read_text()
'a,b\\n1,2\\n'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from calotools.errors import OutputPathError

__all__ = [
    "PendingFile",
    "atomic_folder",
    "atomic_write",
    "check_writable",
    "commit_folder",
    "copy_file",
    "partial_folder",
    "remove_stale_temporaries",
    "sha256",
    "temporary_path",
    "write_text",
]


def _host() -> str:
    # Dots separate the parts of a temporary name; a host name keeps its first label.
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def check_writable(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` can be made; returns the folder that will hold it.

    The nearest existing folder above ``path`` must be a writable folder
    (missing folders below it are made when writing); otherwise
    `calotools.errors.OutputPathError` names both.
    """
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        msg = f"{path}: cannot write in {folder} (not a writable folder)"
        raise OutputPathError(msg)
    return folder


def temporary_path(path: str | os.PathLike) -> Path:
    """The name ``path`` is written under until it is complete: hidden, per process, same suffix."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}.tmp{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by dead processes of this machine.

    Returns what was removed. A temporary whose process still runs, or that
    another machine wrote, is kept: it may be a write in progress.
    """
    path = Path(path)
    pattern = re.compile(
        rf"^\.{re.escape(path.name)}\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.tmp"
        rf"{re.escape(path.suffix)}$"
    )
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.iterdir():
        match = pattern.match(candidate.name)
        if match is None or match["host"] != _host():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):  # another run may clean it at the same time
            candidate.unlink()
            removed.append(candidate)
    return removed


class PendingFile:
    """A file being written under `temporary_path` until `commit` renames it to ``path``.

    The folder of ``path`` is created if needed, and temporaries of ``path``
    left by dead processes are removed. `abort` removes the temporary file and
    leaves ``path`` as it was.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp = temporary_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)

    def commit(self) -> Path:
        """Give the complete file its final name (replacing an older one) and return it."""
        self.tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write ``path`` to; rename it when the block completes.

    If the block raises (or is interrupted), the temporary file is removed and
    ``path`` is left as it was.
    """
    pending = PendingFile(path)
    try:
        yield pending.tmp
        pending.commit()
    except BaseException:
        pending.abort()
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def copy_file(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy ``source`` to ``target``, atomically."""
    with atomic_write(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


# ---------------------------------------------------------------------------- folders


def partial_folder(folder: str | os.PathLike) -> Path:
    """Where a folder is written before it is complete: ``.NAME.partial`` beside it."""
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.partial")


def commit_folder(partial: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Give a complete folder its final name, replacing an older version if there is one.

    The older version is moved aside before the rename and deleted after it, so
    that an interruption leaves either the old or the new folder under the
    final name (and never a mixture).
    """
    partial, folder = Path(partial), Path(folder)
    old = folder.with_name(f".{folder.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.replace(old)
    partial.replace(folder)
    if old.exists():
        shutil.rmtree(old)
    return folder


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty `partial_folder` to fill; it replaces ``folder`` when the block completes.

    A leftover partial folder of an earlier, interrupted write is removed first;
    if the block raises, the partial folder is removed and ``folder`` is left as
    it was. (Training keeps its partial folder on purpose, to resume: it uses
    `partial_folder` and `commit_folder` directly.)
    """
    partial = partial_folder(folder)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    commit_folder(partial, folder)


def sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks (an ntuple may exceed the memory).

    What a sidecar records of its data file, how two input files are found to
    be copies of each other, and how a split knows its files. A selection asks
    for the same files more than once, so the digest is remembered per file
    version (path, inode, size and modification time: a rewrite or a rename
    into place changes them).
    """
    path = Path(path).resolve()
    info = path.stat()
    return _sha256(path, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256(path: Path, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
