"""``POST /generate``: text sampled from a language model, streamed as server-sent events."""

import json
from pathlib import Path

from pydantic import Field

from seqgen.errors import UserError
from seqgen.serve.requests import MAX_TEXT, ModelRequest
from seqgen.serve.worker import TimedOut


class GenerateRequest(ModelRequest):
    prime: str = Field("", max_length=MAX_TEXT, description="Text to start from.")
    temperature: float = Field(0.8, ge=0, le=10, description="0 is greedy.")
    top_k: int = Field(0, ge=0, le=100_000, description="Sample from the k likeliest (0: all).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (1: all).")
    length: int = Field(300, ge=1, le=10_000, description="Tokens to generate.")
    seed: int | None = Field(None, ge=0, lt=2**63, description="For a repeatable sample.")
    stream: bool = Field(True, description="Server-sent events, one per piece of text.")


def routes(api) -> None:
    from fastapi.responses import StreamingResponse

    from seqgen.decoding import check_sampling
    from seqgen.tasks.lm import sample_text

    @api.app.post("/generate")
    async def generate(body: GenerateRequest):
        """Sample text from a language model; streamed as server-sent events
        (``data: {"text": ...}``, then ``event: end``) unless ``stream`` is false."""
        served = api.pick("lm", body.model).runner
        check_sampling(body.temperature, body.top_k, body.top_p)
        model, tokenizer = served.model, served.tokenizer
        device = next(model.parameters()).device
        if body.prime and not tokenizer.encode(body.prime):
            raise UserError("the prime encodes to no tokens")

        def pieces(expired):
            for piece in sample_text(model, tokenizer, body.prime, body.length,
                                     body.temperature, device=device, top_k=body.top_k,
                                     top_p=body.top_p, seed=body.seed):
                if expired():
                    raise TimedOut
                yield piece

        if not body.stream:
            return {"text": body.prime + "".join(await api.run(lambda e: list(pieces(e))))}

        def produce(emit, expired) -> None:
            for piece in pieces(expired):
                if not emit(piece):
                    return

        items = api.worker.stream(produce)

        async def events():
            try:
                yield f"data: {json.dumps({'text': body.prime})}\n\n"
                async for item in items:
                    if isinstance(item, Exception):
                        message = str(item) if isinstance(item, UserError) else (
                            f"stopped at the server's time limit of {api.limits.time_limit:g} s"
                            if isinstance(item, TimedOut) else "internal error")
                        yield f"event: error\ndata: {json.dumps({'error': message})}\n\n"
                        return
                    yield f"data: {json.dumps({'text': item})}\n\n"
                yield "event: end\ndata: {}\n\n"
            finally:  # a client that left stops the generation now, not at garbage collection
                await items.aclose()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    api.add_page(Path(__file__).with_name("lm.html"))
