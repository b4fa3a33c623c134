"""``POST /translate``: the n best translations of sentences."""

from pathlib import Path

from pydantic import Field

from seqgen.serve.requests import MAX_ITEMS, ModelRequest, Text
from seqgen.serve.worker import TimedOut

PIECE = 16  # sentences translated between two looks at the clock


class TranslateRequest(ModelRequest):
    sentences: list[Text] = Field(min_length=1, max_length=MAX_ITEMS)
    beam: int = Field(5, ge=1, le=32, description="Beam size; 1 is greedy.")
    n_best: int = Field(1, ge=1, le=32, description="Translations of each sentence.")
    alpha: float = Field(0.6, ge=0, le=10, description="Length penalty ((5+len)/6)^alpha.")
    max_len_ratio: float = Field(2.0, gt=0, le=4, description="Longest output, in source "
                                 "tokens times this (+2).")


def routes(api) -> None:
    from seqgen.tasks.translate import check_search

    @api.app.post("/translate")
    async def translate(body: TranslateRequest) -> dict:
        """Translate sentences: the ``n_best`` translations of each, with scores."""
        translator = api.pick("translate", body.model).runner
        check_search(body.beam, body.n_best, body.max_len_ratio, 64, body.alpha)

        def work(expired):
            results = []
            for start in range(0, len(body.sentences), PIECE):
                if expired():
                    raise TimedOut
                results += translator.translate(body.sentences[start:start + PIECE],
                                                body.beam, body.alpha, body.n_best,
                                                body.max_len_ratio)
            return results

        results = await api.run(work)
        return {"translations": [[{"text": h.text, "score": round(h.score, 4)} for h in hyps]
                                 for hyps in results]}

    api.add_page(Path(__file__).with_name("translate.html"))
