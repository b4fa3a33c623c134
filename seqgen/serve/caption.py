"""``POST /caption``: a caption of one image, sent as the request body, with where the model
looked before each word."""

import io
from pathlib import Path
from typing import Any

from seqgen.data.images import DECODE_ERRORS


def _picture(data: bytes, max_pixels: int):
    """The upload as an RGB image: its size is read from the header and checked before it
    is decoded; whatever Pillow cannot decode is a 400."""
    from fastapi import HTTPException
    from PIL import Image

    from seqgen.data.images import load_image

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except DECODE_ERRORS:
        raise HTTPException(400, "the body is not an image Pillow can read") from None
    if width * height > max_pixels:
        raise HTTPException(413, f"the image has {width}×{height} pixels, over the limit of "
                                 f"{max_pixels:,}")
    try:
        return load_image(io.BytesIO(data))
    except DECODE_ERRORS:
        raise HTTPException(400, "the body is not an image Pillow can read") from None


def routes(api) -> None:
    from fastapi import HTTPException, Query, Request

    from seqgen.data.images import eval_transform
    from seqgen.tasks.caption import MAX_LEN, caption_attention, decode_images, encoded

    api.upload("/caption")

    @api.app.post("/caption")
    async def caption(request: Request, beam: int = Query(3, ge=1, le=32),
                      max_len: int = Query(MAX_LEN, ge=1, le=100),
                      model: str | None = Query(None, max_length=200),
                      attention: bool = True) -> dict:
        """Caption one image, sent as the request body (any format Pillow reads). Models
        with soft attention also return where they looked before each word (a grid per
        word, each summing to 1)."""
        served = api.pick("caption", model).runner
        body = await request.body()  # read and bounded by the guard
        if not body:
            raise HTTPException(400, "send the image as the request body")

        def work(expired) -> dict[str, Any]:
            picture = _picture(body, api.limits.max_pixels)
            tensor = eval_transform(served.spec)(picture)
            features = encoded(served.model, tensor.unsqueeze(0))
            best = decode_images(served.model, features, beam, max_len=max_len)[0][0]
            result: dict[str, Any] = {"caption": served.tokenizer.decode(best.tokens),
                                      "logprob": round(best.logprob, 4)}
            if served.model.novelty:
                result["novelty"] = served.model.novelty.describe(
                    float(served.model.novelty.distances(features)[0]))
            if attention and served.model.config.attention == "soft":
                maps = caption_attention(served.model, tensor, best.tokens)
                result["attention"] = [
                    {"word": served.tokenizer.itos[t],
                     "grid": [[round(float(v), 4) for v in row] for row in m]}
                    for t, m in zip(best.tokens, maps)]
            return result

        return await api.run(work)

    api.add_page(Path(__file__).with_name("caption.html"))
