"""Fetching a file over HTTP(S) the way a dataset needs it: with a progress bar, resumed
where an interrupted download stopped, checked against a pinned digest, and put in place
only once complete and verified."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from seqgen.errors import UserError

CHUNK = 1 << 16

# (bytes so far, total bytes or None) → None; called as the file grows
Progress = Callable[[int, int | None], None]


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_digest(path: Path, pinned: str | None, what: str) -> str:
    """``pinned`` is "sha256:<hex>" (or "md5:<hex>" where a source publishes no other);
    a mismatch removes nothing itself but is one line. Returns the file's SHA-256."""
    sha256 = file_digest(path, "sha256")
    if pinned:
        algorithm, _, expected = pinned.partition(":")
        actual = sha256 if algorithm == "sha256" else file_digest(path, algorithm)
        if actual != expected:
            raise UserError(f"{what}: checksum mismatch ({algorithm} {actual[:16]}…, expected "
                            f"{expected[:16]}…): the file is corrupt or not the one this "
                            "version of seqgen knows; nothing was kept")
    return sha256


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "seqgen"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the partial file is already whole
            return None
        raise UserError(f"{url}: the server answered HTTP {exc.code} ({exc.reason})") from None
    except TimeoutError:
        raise UserError(f"{url}: the server sent nothing for {timeout:g} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise UserError(f"{url}: the server sent nothing for {timeout:g} s") from None
        raise UserError(f"{url}: cannot connect ({reason})") from None


def fetch(url: str, target: Path, pinned: str | None, timeout: float = 30.0,
          progress: Progress | None = None) -> str:
    """Download ``url`` to ``target`` and return its SHA-256. The bytes go to
    ``target.part`` first, so an interrupted download is resumed (an HTTP Range request) by
    the next call (when a pinned digest can check the joined whole); a checksum mismatch
    deletes the partial file, so no bad file is ever at ``target``."""
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{url}: only http:// and https:// addresses can be downloaded")
    partial = target.with_name(target.name + ".part")
    if pinned is None:  # nothing could tell a stale half from a new one: start over
        partial.unlink(missing_ok=True)
    start = partial.stat().st_size if partial.exists() else 0
    response = _open(url, start, timeout)
    if response is not None:
        with response:
            if start and response.status != 206:  # no Range support: start over
                start = 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            done = start
            try:
                with open(partial, "ab" if start else "wb") as handle:
                    while block := response.read1(CHUNK):  # what has come, not a full chunk
                        handle.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
            except TimeoutError:
                raise UserError(f"{url}: the server sent nothing for {timeout:g} s; run the "
                                f"same command again to resume from {done:,} bytes") from None
            except (http.client.IncompleteRead, ConnectionError, OSError) as exc:
                raise UserError(f"{url}: the download broke off after {done:,} bytes "
                                f"({exc.__class__.__name__}); run the same command again to "
                                "resume") from None
            if total is not None and done < total:
                raise UserError(f"{url}: the download broke off after {done:,} of {total:,} "
                                "bytes; run the same command again to resume")
    try:
        sha256 = check_digest(partial, pinned, url)
    except UserError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return sha256


def copy_local(source: Path, target: Path, pinned: str | None) -> str:
    """``--from FILE``: an archive the user already has, checked like a download."""
    if not source.is_file():
        raise UserError(f"--from: file not found: {source}")
    sha256 = check_digest(source, pinned, str(source))
    if source.resolve() != target.resolve():
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        partial.replace(target)
    return sha256
