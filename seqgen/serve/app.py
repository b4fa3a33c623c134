"""The server's application: the models named at start behind a JSON API and one small page
(FastAPI on uvicorn, the ``[serve]`` extra).

The app knows no task: each loaded model's task (``seqgen.tasks.registry``) adds its own
endpoint and its part of the page through ``Api``. What every endpoint shares lives here:
the guard in front of every request (``seqgen.serve.guard``), the one inference thread with
its queue and time limit (``seqgen.serve.worker``), the error format (every mistake a 4xx
``{"error": message}``, never a traceback), ``/models``, ``/health``, ``/docs``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations.
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqgen.checkpoint import load_checkpoint
from seqgen.errors import UserError
from seqgen.serve.guard import LOOPBACK, Policy
from seqgen.serve.worker import Busy, Expired, TimedOut, Worker
from seqgen.tasks.registry import TaskSpec, task_spec

log = logging.getLogger("seqgen.serve")
PAGE = Path(__file__).with_name("page.html")
PAGE_PARTS = "<!-- each task's part of the page -->"


@dataclass
class Served:
    """One loaded checkpoint: its name, its task, what it is (for ``/models``) and what runs
    it (the object its task's loader gives)."""

    name: str
    task: TaskSpec
    info: dict[str, Any]
    runner: Any


def _info(path: Path, data: dict, runner: Any) -> dict[str, Any]:
    state = data.get("trainer_state") or {}
    return {"task": data["task"], "file": path.name,  # no absolute path leaves the server
            "parameters": sum(p.numel() for p in runner.model.parameters()),
            "model": data.get("model_config"), "steps": state.get("step"),
            "validation": state.get("best_metrics")}


def load_served(paths: list[Path], device: str = "auto") -> list[Served]:
    """Every checkpoint, each named after its folder (``checkpoints/lm/best.pt`` → ``lm``),
    or after its folder and file where two would share a name."""
    served = []
    for path in paths:
        spec = task_spec(load_checkpoint(path)["task"])
        if spec.load is None or spec.routes is None:
            raise UserError(f"{path}: a {spec.noun} checkpoint cannot be served")
        runner, data = spec.load(path, device)
        served.append(Served(path.parent.name or path.stem, spec, _info(path, data, runner),
                             runner))
    names = [s.name for s in served]
    for s, path in zip(served, paths):
        if names.count(s.name) > 1:
            s.name = f"{path.parent.name}/{path.name}"
    if len({s.name for s in served}) < len(served):
        raise UserError("two checkpoints would be served under the same name: name them apart "
                        "(copy one to another folder)")
    return served


@dataclass(frozen=True)
class Limits:
    max_upload: int = 10 * 2**20  # bytes of an image
    max_body: int = 2**20  # bytes of a JSON body
    max_pixels: int = 40_000_000  # of an image, read from its header before decoding
    time_limit: float = 60.0  # seconds a request may take, waiting included
    queue: int = 16  # requests running or waiting; more are answered 503


DEFAULT_LIMITS = Limits()


class Api:
    """What a task's ``routes(api)`` gets to add its endpoint: the FastAPI app, the loaded
    models, the limits, the inference worker, and the page."""

    def __init__(self, app, served: list[Served], worker: Worker, limits: Limits,
                 policy: Policy):
        self.app, self.served, self.worker, self.limits = app, served, worker, limits
        self._policy = policy
        self.page_parts: list[str] = []

    def pick(self, task: str, name: str | None) -> Served:
        """The model a request names (or the first of ``task``); 404 when none is loaded."""
        from fastapi import HTTPException

        chosen = [s for s in self.served if s.task.name == task
                  and (name is None or s.name == name)]
        if not chosen:
            loaded = ", ".join(f"{s.name} ({s.task.name})" for s in self.served)
            raise HTTPException(404, f"no {task} model{f' named {name!r}' if name else ''} "
                                     f"is loaded (loaded: {loaded})")
        return chosen[0]

    def upload(self, path: str) -> None:
        """``path`` takes an upload as its body: limited by ``max_upload``, not ``max_body``."""
        self._policy.uploads.add(path)

    def add_page(self, part: Path) -> None:
        """The task's part of the page (an HTML section and its script)."""
        self.page_parts.append(part.read_text(encoding="utf-8"))

    async def run(self, fn: Callable[[Expired], Any]) -> Any:
        """``fn(expired)`` in the inference thread, within the time limit (a long job checks
        ``expired()`` between its pieces of work and raises ``TimedOut``)."""
        return await self.worker.run(fn)


def _docs_page(schema: dict) -> str:
    """/docs without the internet: each endpoint, what it takes and what it answers, from
    the OpenAPI schema (FastAPI's own /docs loads its scripts from a CDN)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(schema['info']['title'])}"
             " API</title><style>body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;"
             "margin:2rem auto;padding:0 1rem}code{background:#f3f3ef;padding:0 .2rem}"
             "td{padding:.1rem .6rem;vertical-align:top}</style>",
             f"<h1>{html.escape(schema['info']['title'])} API</h1>",
             "<p>The machine-readable description: <a href='/openapi.json'>/openapi.json</a>."
             "</p>"]
    models = schema.get("components", {}).get("schemas", {})
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p>{html.escape(operation.get('description') or '')}</p>")
            body = (operation.get("requestBody") or {}).get("content", {})
            ref = (body.get("application/json") or {}).get("schema", {}).get("$ref", "")
            fields = models.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            params = operation.get("parameters", [])
            rows = [(name, f.get("type") or "", f.get("default", ""), f.get("description", ""))
                    for name, f in fields.items()]
            rows += [(q["name"], q.get("schema", {}).get("type", ""),
                      q.get("schema", {}).get("default", ""), "query parameter")
                     for q in params]
            if rows:
                parts.append("<table>" + "".join(
                    f"<tr><td><code>{html.escape(str(n))}</code></td><td>{html.escape(str(t))}"
                    f"</td><td>{html.escape(str(d))}</td><td>{html.escape(str(x))}</td></tr>"
                    for n, t, d, x in rows) + "</table>")
    return "".join(parts)


def create_app(served: list[Served], limits: Limits = DEFAULT_LIMITS, worker: Worker | None = None,
               allowed_hosts: frozenset[str] | None = frozenset(LOOPBACK),
               token: str | None = None):
    """The FastAPI application serving ``served``; its inference thread ends with it.
    ``allowed_hosts``: the names the Host header may give (None: any); ``token``: what the
    API wants in ``Authorization: Bearer``."""
    import contextlib

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from seqgen.serve.guard import Guard

    worker = worker or Worker(limits.queue, limits.time_limit)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.shutdown()

    tasks = sorted({s.task.name for s in served})
    app = FastAPI(title="seqgen", summary="Recurrent sequence models: " + ", ".join(
        task_spec(t).noun for t in tasks), lifespan=lifespan, docs_url=None, redoc_url=None)
    policy = Policy(allowed_hosts, token, limits.max_body, limits.max_upload, worker.full)
    app.add_middleware(Guard, policy=policy)
    api = Api(app, served, worker, limits, policy)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where or 'request'}: {first.get('msg', 'not valid')}")

    @app.exception_handler(StarletteHTTPException)  # the router's 404 and 405 too
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return error(400, str(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return error(503, "the server is busy: too many requests are waiting; try again")

    @app.exception_handler(TimedOut)
    async def timed_out(request: Request, exc: TimedOut):
        return error(504, f"the request took longer than the server's time limit of "
                          f"{limits.time_limit:g} s (seqgen serve --time-limit)")

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception):
        log.exception("request failed")
        return error(500, "internal error (logged by the server)")

    for name in tasks:
        task_spec(name).add_routes(api)
    page = PAGE.read_text(encoding="utf-8").replace(PAGE_PARTS, "\n".join(api.page_parts))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> str:
        return _docs_page(app.openapi())

    @app.get("/models")
    async def models() -> list[dict]:
        """What is loaded: name, task, size and validation figures of each model."""
        return [{"name": s.name, **s.info} for s in served]

    @app.get("/health")
    async def health() -> dict:
        """The server is up: how many models it holds and how many requests it is working
        on or holding."""
        return {"status": "ok", "models": len(served), "requests": worker.jobs,
                "queue": limits.queue}

    return app
