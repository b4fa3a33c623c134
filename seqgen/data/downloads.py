"""Fetching a file over HTTP(S) the way a dataset needs it: with a progress bar, resumed
where an interrupted download stopped, checked against a pinned digest, and put in place
only once complete and verified."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from seqgen.errors import UserError
from seqgen.files import atomic_write_text

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


def _open(url: str, start: int, timeout: float, if_range: str | None = None):
    request = urllib.request.Request(url, headers={"User-Agent": "seqgen"})
    if start:
        request.add_header("Range", f"bytes={start}-")
        if if_range:  # the rest of that same version, or (a 200) the whole new one
            request.add_header("If-Range", if_range)
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


def _validator(headers) -> str | None:
    """What names the version a server sent, for If-Range: a strong ETag, else the date."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _resume_from(partial: Path, version: Path, url: str, pinned: str | None
                 ) -> tuple[int, str | None]:
    """Where to continue a partial download, and the version it is of. Without a pinned
    digest, only a version the server named (ETag or Last-Modified) can be continued, since
    nothing could tell two versions spliced together; else it starts over."""
    if not partial.exists():
        return 0, None
    known = None
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(version.read_text(encoding="utf-8"))
        if saved.get("url") == url:
            known = saved.get("version")
    if pinned is None and known is None:
        partial.unlink()
        return 0, None
    return partial.stat().st_size, known


def fetch(url: str, target: Path, pinned: str | None, timeout: float = 30.0,
          progress: Progress | None = None) -> str:
    """Download ``url`` to ``target`` and return its SHA-256. The bytes go to
    ``target.part`` first, so an interrupted download is resumed by the next call (an HTTP
    Range request; with If-Range when the server named its version, so a changed file starts
    over instead of being spliced); a checksum mismatch deletes the partial file, so no bad
    file is ever at ``target``."""
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{url}: only http:// and https:// addresses can be downloaded")
    partial = target.with_name(target.name + ".part")
    version = target.with_name(target.name + ".part.json")
    start, known = _resume_from(partial, version, url, pinned)
    response = _open(url, start, timeout, known)
    if response is not None:
        with response:
            if start and response.status != 206:  # a new version, or no Range support
                start = 0
            if not start:
                named = _validator(response.headers)
                if named:
                    atomic_write_text(version, json.dumps({"url": url, "version": named}))
                else:
                    version.unlink(missing_ok=True)
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
        version.unlink(missing_ok=True)
        raise
    partial.replace(target)
    version.unlink(missing_ok=True)
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
