"""``seqgen serve``: the checkpoints named on the command line behind a JSON API and one small
page (FastAPI on uvicorn, the ``[serve]`` extra).

Safe by default: it binds 127.0.0.1; only the models loaded at start can be used (no request
names a file); an upload is read up to ``max_upload`` bytes and an image's pixel count is
checked before it is decoded; every mistake in a request is a 4xx with a message, never a
500 with a traceback. Inference runs in one worker thread behind a bounded queue, so the
event loop keeps answering (``/models``, the page) while a long generation runs, and a full
queue answers 503 at once instead of piling up.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations,
# and the request models are local to ``create_app``.
import asyncio
import io
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqgen.checkpoint import load_checkpoint
from seqgen.errors import UserError

log = logging.getLogger("seqgen.serve")
PAGE = Path(__file__).with_name("serve_page.html")


@dataclass
class Served:
    """One loaded checkpoint: what it is (for ``/models``) and the objects that run it."""

    name: str
    task: str
    info: dict[str, Any]
    parts: dict[str, Any] = field(default_factory=dict)


def _info(path: Path, data: dict, model: torch.nn.Module) -> dict[str, Any]:
    state = data.get("trainer_state") or {}
    return {"checkpoint": str(path), "task": data["task"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "model": data.get("model_config"), "steps": state.get("step"),
            "validation": state.get("best_metrics")}


def load_served(paths: list[Path], device: str = "auto") -> list[Served]:
    """Every checkpoint, each named after its folder (``checkpoints/lm/best.pt`` → ``lm``),
    or after its path where two would share a name."""
    served = []
    for path in paths:
        task = load_checkpoint(path)["task"]
        if task == "lm":
            from seqgen.tasks.lm import load_lm

            model, tokenizer, data = load_lm(path, device)
            parts = {"model": model, "tokenizer": tokenizer}
        elif task == "translate":
            from seqgen.tasks.translate import load_translator

            translator, data = load_translator(path, device)
            model, parts = translator.model, {"translator": translator}
        elif task == "caption":
            from seqgen.tasks.caption import load_captioner

            model, tokenizer, spec, data = load_captioner(path, device)
            parts = {"model": model, "tokenizer": tokenizer, "spec": spec}
        elif task == "classify":
            from seqgen.tasks.classify import load_classifier

            classifier, data = load_classifier(path, device)
            model, parts = classifier.model, {"classifier": classifier}
        else:
            raise UserError(f"{path}: a {task} checkpoint cannot be served")
        served.append(Served(path.parent.name or path.stem, task, _info(path, data, model),
                             parts))
    names = [s.name for s in served]
    for s, path in zip(served, paths):
        if names.count(s.name) > 1:
            s.name = str(path)
    return served


class Busy(Exception):
    """The inference queue is full."""


class Worker:
    """One inference thread and a bounded count of waiting jobs.

    All of a server's PyTorch work, loading included, runs in this one thread: each thread
    that runs PyTorch operators gets its own OpenMP team, and on a small CPU two teams spin
    against each other (measured on 2 cores: an LSTM step 3.5× slower in both threads once a
    second thread had run one). Shutting the thread down ends its team."""

    def __init__(self, queue: int):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqgen-infer")
        self.limit = queue
        self.waiting = 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            if self.waiting >= self.limit:
                raise Busy
            self.waiting += 1

    def _leave(self) -> None:
        with self.lock:
            self.waiting -= 1

    async def run(self, fn: Callable[[], Any]) -> Any:
        self._enter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn)
        finally:
            self._leave()

    def stream(self, produce: Callable[[Callable[[Any], bool]], None]):
        """Run ``produce(emit)`` in the worker; yield what it emits as it comes. ``emit``
        returns False once the client has gone, so the producer can stop early."""
        self._enter()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        gone = threading.Event()
        end = object()

        def emit(item: Any) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, item)
            return not gone.is_set()

        def job() -> None:
            try:
                produce(emit)
            except Exception as exc:  # noqa: BLE001 (told to the client, logged here)
                log.exception("generation failed")
                emit(exc)
            finally:
                emit(end)
                self._leave()

        future = self.pool.submit(job)

        async def items():
            try:
                while (item := await queue.get()) is not end:
                    yield item
            finally:
                gone.set()
                await asyncio.wrap_future(future)

        return items()


def _pick(served: list[Served], task: str, name: str | None) -> Served:
    from fastapi import HTTPException

    chosen = [s for s in served if s.task == task and (name is None or s.name == name)]
    if not chosen:
        loaded = ", ".join(f"{s.name} ({s.task})" for s in served)
        raise HTTPException(404, f"no {task} model{f' named {name!r}' if name else ''} is "
                                 f"loaded (loaded: {loaded})")
    return chosen[0]


def create_app(served: list[Served], max_upload: int = 10 * 2**20,
               max_pixels: int = 40_000_000, queue: int = 16, worker: Worker | None = None):
    """The FastAPI application serving ``served``; its inference thread ends with it."""
    import contextlib

    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    worker = worker or Worker(queue)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="seqgen", summary="Recurrent sequence models: generate, translate, "
                  "caption, classify.", lifespan=lifespan)

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str | None = Field(None, description="Which loaded model (GET /models); "
                                  "default: the first of its task.")

    class GenerateRequest(Strict):
        prime: str = Field("", max_length=10_000)
        temperature: float = Field(0.8, ge=0, le=10)
        top_k: int = Field(0, ge=0)
        top_p: float = Field(1.0, gt=0, le=1)
        length: int = Field(300, ge=1, le=10_000)
        seed: int | None = Field(None, ge=0, lt=2**63)
        stream: bool = Field(True, description="Server-sent events, one per piece of text.")

    class TranslateRequest(Strict):
        sentences: list[str] = Field(min_length=1, max_length=256)
        beam: int = Field(5, ge=1, le=32)
        n_best: int = Field(1, ge=1, le=32)
        alpha: float = Field(0.6, ge=0, le=10)

    class ClassifyRequest(Strict):
        texts: list[str] = Field(min_length=1, max_length=1024)
        top: int = Field(1, ge=1)

    def problem(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return problem(422, f"{where or 'request'}: {first.get('msg', 'not valid')}")

    @app.exception_handler(StarletteHTTPException)  # the router's 404 and 405 too
    async def http_problem(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, str(exc.detail))

    @app.exception_handler(UserError)
    async def user_problem(request: Request, exc: UserError):
        return problem(400, str(exc))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return problem(503, "the server is busy: too many requests are waiting; try again")

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception):
        log.exception("request failed")
        return problem(500, "internal error (logged by the server)")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/models")
    async def models() -> list[dict]:
        """What is loaded: name, task, size and validation figures of each model."""
        return [{"name": s.name, **s.info} for s in served]

    @app.post("/generate")
    async def generate(body: GenerateRequest):
        """Sample text from a language model; streamed as server-sent events
        (``data: {"text": ...}``, then ``event: end``) unless ``stream`` is false."""
        from seqgen.decoding import check_sampling
        from seqgen.tasks.lm import sample_text

        s = _pick(served, "lm", body.model)
        check_sampling(body.temperature, body.top_k, body.top_p)
        model, tokenizer = s.parts["model"], s.parts["tokenizer"]
        device = next(model.parameters()).device
        if body.prime and not tokenizer.encode(body.prime):
            raise UserError("the prime encodes to no tokens")

        def pieces():
            return sample_text(model, tokenizer, body.prime, body.length, body.temperature,
                               device=device, top_k=body.top_k, top_p=body.top_p,
                               seed=body.seed)

        if not body.stream:
            return {"text": body.prime + "".join(await worker.run(lambda: list(pieces())))}

        def produce(emit) -> None:
            for piece in pieces():
                if not emit(piece):
                    return

        items = worker.stream(produce)

        async def events():
            try:
                yield f"data: {json.dumps({'text': body.prime})}\n\n"
                async for item in items:
                    if isinstance(item, Exception):
                        message = str(item) if isinstance(item, UserError) else "internal error"
                        yield f"event: error\ndata: {json.dumps({'error': message})}\n\n"
                        return
                    yield f"data: {json.dumps({'text': item})}\n\n"
                yield "event: end\ndata: {}\n\n"
            finally:  # a client that left stops the generation now, not at garbage collection
                await items.aclose()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/translate")
    async def translate(body: TranslateRequest) -> dict:
        """Translate sentences: the ``n_best`` translations of each, with scores."""
        from seqgen.tasks.translate import check_search

        s = _pick(served, "translate", body.model)
        check_search(body.beam, body.n_best, 2.0, 64, body.alpha)
        results = await worker.run(lambda: s.parts["translator"].translate(
            body.sentences, body.beam, body.alpha, body.n_best))
        return {"translations": [[{"text": h.text, "score": round(h.score, 4)} for h in hyps]
                                 for hyps in results]}

    @app.post("/classify")
    async def classify(body: ClassifyRequest) -> dict:
        """Label texts: the ``top`` most likely labels of each, with probabilities."""
        s = _pick(served, "classify", body.model)
        classifier = s.parts["classifier"]
        probs = await worker.run(lambda: classifier.probabilities(body.texts))
        k = min(body.top, len(classifier.labels))
        return {"labels": [[{"label": classifier.labels[int(i)], "probability": round(float(v), 6)}
                            for v, i in zip(*p.topk(k))] for p in probs]}

    @app.post("/caption")
    async def caption(request: Request, beam: int = 3, model: str | None = None,
                      attention: bool = True) -> dict:
        """Caption one image, sent as the request body (any format Pillow reads). Models
        with soft attention also return where they looked before each word (a grid per
        word, each summing to 1)."""
        s = _pick(served, "caption", model)
        if not 1 <= beam <= 32:
            raise HTTPException(422, "beam: must be between 1 and 32")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload:
            raise HTTPException(413, f"the image is over the upload limit of {max_upload:,} "
                                     "bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload:
                raise HTTPException(413, f"the image is over the upload limit of "
                                         f"{max_upload:,} bytes")
        if not body:
            raise HTTPException(400, "send the image as the request body")
        return await worker.run(lambda: _caption(s, bytes(body), beam, attention, max_pixels))

    return app


def _caption(s: Served, data: bytes, beam: int, attention: bool, max_pixels: int) -> dict:
    from fastapi import HTTPException
    from PIL import Image, UnidentifiedImageError

    from seqgen.data.images import eval_transform
    from seqgen.tasks.caption import caption_attention, decode_images

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise HTTPException(413, f"the image has {width}×{height} pixels, over the "
                                         f"limit of {max_pixels:,}")
            image.load()
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise HTTPException(400, "the body is not an image Pillow can read") from None
    model, tokenizer = s.parts["model"], s.parts["tokenizer"]
    tensor = eval_transform(s.parts["spec"])(picture)
    best = decode_images(model, tensor.unsqueeze(0), beam)[0][0]
    result: dict[str, Any] = {"caption": tokenizer.decode(best.tokens),
                              "logprob": round(best.logprob, 4)}
    if attention and model.config.attention == "soft":
        maps = caption_attention(model, tensor, best.tokens)
        result["attention"] = [{"word": tokenizer.itos[t],
                                "grid": [[round(float(v), 4) for v in row] for row in m]}
                               for t, m in zip(best.tokens, maps)]
    return result


_SIZE_UNITS = {"": 1, "b": 1, "kb": 2**10, "k": 2**10, "mb": 2**20, "m": 2**20,
               "gb": 2**30, "g": 2**30}


def parse_size(text: str) -> int:
    """'10MB', '500KB' or a number of bytes → bytes."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        raise UserError(f"cannot read size {text!r}: use e.g. 10MB, 500KB or a number of bytes")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def serve(paths: list[Path], host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          max_upload: int = 10 * 2**20, max_pixels: int = 40_000_000, queue: int = 16,
          announce: Callable[[str], None] = print) -> None:
    """Load, then serve until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("seqgen serve needs FastAPI and uvicorn: pip install "
                        "'seqgen[serve]'") from None
    worker = Worker(queue)
    served = worker.pool.submit(load_served, paths, device).result()
    app = create_app(served, max_upload, max_pixels, queue, worker)
    for s in served:
        announce(f"{s.name}: {s.task}, {s.info['parameters']:,} parameters")
    announce(f"serving on http://{host}:{port}/ (API docs at /docs); Ctrl-C stops")
    uvicorn.run(app, host=host, port=port, log_level="warning")
