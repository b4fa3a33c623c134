"""What every request passes before it reaches an endpoint (an ASGI middleware):

- its ``Host`` header names this server: a page on another site whose name an attacker
  pointed at 127.0.0.1 (DNS rebinding) sends its own name and is refused;
- with a token (``--token``, required off loopback), the API wants
  ``Authorization: Bearer TOKEN``; the page, ``/health`` and the docs need none;
- its body is read here, up to its limit (an upload's, or a JSON body's), so no endpoint ever
  reads an unbounded body, a chunked one included; and a request that would wait for a full
  inference queue is refused with 503 before a byte of its body is read;
- a body over its limit is still read to its end (up to ``DRAIN`` more bytes) and thrown away
  before the 413 is sent: a server that answers and closes while the client is still sending
  makes the client's next write fail (a broken pipe) instead of reading the answer.

Each refusal is ``{"error": message}`` with its status, like every other error.
"""

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field

LOOPBACK = ("127.0.0.1", "localhost", "::1")
OPEN_PATHS = ("/", "/health", "/docs", "/openapi.json")  # served without the token
DRAIN = 16 * 2**20  # bytes over its limit a refused body is still read (and dropped)


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK or host.startswith("127.")


def host_name(header: str) -> str:
    """``example.org:8000`` → ``example.org``; ``[::1]:8000`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@dataclass
class Policy:
    allowed_hosts: frozenset[str] | None  # None: any host (--allow-host '*')
    token: str | None
    max_body: int  # a JSON body, in bytes
    max_upload: int  # an upload (an image), in bytes
    busy: Callable[[], bool]  # is the inference queue full?
    uploads: set[str] = field(default_factory=set)  # paths whose body is an upload


async def _drain(receive, budget: int) -> None:
    """Read and drop the rest of a body, at most ``budget`` bytes, so its sender finishes."""
    while budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return
        budget -= len(message.get("body", b""))


async def _answer(send, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, policy: Policy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        p = self.policy
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = host_name(headers.get(b"host", ""))
        if p.allowed_hosts is not None and host not in p.allowed_hosts:
            return await _answer(send, 403, f"this server does not answer to the host name "
                                 f"{host!r} (seqgen serve --allow-host NAME admits one)")
        path = scope["path"]
        if p.token and path not in OPEN_PATHS:
            given = headers.get(b"authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {p.token}".encode()):
                return await _answer(send, 401, "this server wants its token: send "
                                     "'Authorization: Bearer TOKEN'",
                                     [(b"www-authenticate", b"Bearer")])
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        if p.busy():
            return await _answer(send, 503, "the server is busy: too many requests are "
                                 "waiting; try again")
        upload = path in p.uploads
        limit = p.max_upload if upload else p.max_body
        too_big = (f"the image is over the upload limit of {limit:,} bytes" if upload else
                   f"the request body is over the limit of {limit:,} bytes")
        declared = headers.get(b"content-length", "")
        if declared.isdigit() and int(declared) > limit:
            if int(declared) <= limit + DRAIN:
                await _drain(receive, int(declared))
            return await _answer(send, 413, too_big)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > limit:
                if message.get("more_body"):
                    await _drain(receive, DRAIN)
                return await _answer(send, 413, too_big)
            if not message.get("more_body"):
                break
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the disconnect
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)
