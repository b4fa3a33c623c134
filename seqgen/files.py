"""Writing files so that a kill or a crash never leaves half of one.

Checkpoints, the token cache and the feature cache all go through ``atomic_write``: the bytes
go to a temporary file in the same folder, are flushed to disk, get the permissions the
user's umask gives new files (``mkstemp`` would leave 0600), and replace the target with one
``rename``; the folder is then synced so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from seqgen.errors import UserError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporaries(path: Path) -> list[Path]:
    """Temporary files of ``atomic_write``s of ``path``: in progress, or left by a kill."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _writer_alive(temporary: Path, path: Path) -> bool:
    """Is the process that is writing ``temporary`` still running? Its name holds its pid;
    another process (a second torchrun rank filling the same cache entry) may be
    mid-write, and its file must not be taken from under it."""
    pid = temporary.name[len(path.name) + 2:].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(handle)`` on a temporary file, then put it in place of ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in temporaries(path):
            if not _writer_alive(stale, path):
                stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    _sync_folder(path.parent)


def check_writable_folder(folder: str | Path, what: str) -> None:
    """Make ``folder`` if needed and prove a file can be created in it, or say why not (a file
    in the way, a read-only filesystem, no permission) before any long work starts."""
    folder = Path(folder)
    for place in (folder, *folder.parents):
        if place.exists() and not place.is_dir():
            raise UserError(f"{what} {folder}: {place} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to {what} {folder}: {exc.strerror or exc}") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
