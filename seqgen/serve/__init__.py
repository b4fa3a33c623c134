"""``seqgen serve``: the checkpoints named on the command line behind a JSON API and one small
page (FastAPI on uvicorn, the ``[serve]`` extra).

Safe by default: it binds 127.0.0.1 and answers only to loopback host names (a page on
another site cannot reach it through DNS rebinding); off loopback it wants a token; only the
models loaded at start can be used (no request names a file); every body and every field of a
request is bounded, and every request has a time limit; every mistake in a request is a 4xx
with a message, never a 500 with a traceback. Inference runs in one worker thread behind a
bounded queue, so the event loop keeps answering while a long generation runs, and a full
queue answers 503 at once instead of piling up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from seqgen.errors import UserError
from seqgen.serve.app import DEFAULT_LIMITS, Limits, Served, create_app, load_served
from seqgen.serve.guard import LOOPBACK, is_loopback

__all__ = ["Limits", "Served", "create_app", "load_served", "parse_size", "serve"]

_SIZE_UNITS = {"": 1, "b": 1, "kb": 2**10, "k": 2**10, "mb": 2**20, "m": 2**20,
               "gb": 2**30, "g": 2**30}


def parse_size(text: str) -> int:
    """'10MB', '500KB' or a number of bytes → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        raise UserError(f"cannot read size {text!r}: use e.g. 10MB, 500KB or a number of bytes")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def allowed_hosts(host: str, allow: list[str]) -> frozenset[str] | None:
    """The names the Host header may give: loopback's, the bound address (when it is one
    address), and ``--allow-host`` names; None when ``'*'`` is among them."""
    if "*" in allow:
        return None
    names = {*LOOPBACK, *(name.strip().lower() for name in allow if name.strip())}
    if host not in ("0.0.0.0", "::", ""):
        names.add(host.strip("[]").lower())
    return frozenset(names)


def server_token(host: str, token: str | None) -> str | None:
    """``--token``, else ``SEQGEN_TOKEN``; required whenever the server is open to others."""
    token = token or os.environ.get("SEQGEN_TOKEN") or None
    if token is not None and len(token) < 16:
        raise UserError("the token must be at least 16 characters (e.g. the output of "
                        "python -c 'import secrets; print(secrets.token_urlsafe())')")
    if token is None and not is_loopback(host):
        raise UserError(f"--host {host} opens the server to other machines: give it a token "
                        "(--token or SEQGEN_TOKEN; e.g. python -c 'import secrets; "
                        "print(secrets.token_urlsafe())')")
    return token


def serve(paths: list[Path], host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          limits: Limits = DEFAULT_LIMITS, allow: list[str] | None = None, token: str | None = None,
          announce: Callable[[str], None] = print) -> None:
    """Load, then serve until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("seqgen serve needs FastAPI and uvicorn: pip install "
                        "'seqgen[serve]'") from None
    from seqgen.serve.worker import Worker

    hosts = allowed_hosts(host, allow or [])
    token = server_token(host, token)
    worker = Worker(limits.queue, limits.time_limit)
    served = worker.pool.submit(load_served, paths, device).result()
    app = create_app(served, limits, worker, hosts, token)
    for s in served:
        announce(f"{s.name}: {s.task.noun}, {s.info['parameters']:,} parameters")
    shown = "localhost" if is_loopback(host) else host
    where = f"http://{shown}:{port}/" + (f"#token={token}" if token else "")
    announce(f"serving on {where} (API docs at /docs); Ctrl-C stops")
    if hosts is not None and host in ("0.0.0.0", "::"):
        announce("it answers to loopback names only: pass --allow-host NAME for each name "
                 "others reach this machine by (or --allow-host '*')")
    uvicorn.run(app, host=host, port=port, log_level="warning")
