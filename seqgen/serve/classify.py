"""``POST /classify``: the likeliest labels of texts."""

from pathlib import Path

from pydantic import Field

from seqgen.serve.requests import ModelRequest, Text
from seqgen.serve.worker import TimedOut

PIECE = 256  # texts labelled between two looks at the clock


class ClassifyRequest(ModelRequest):
    texts: list[Text] = Field(min_length=1, max_length=1024)
    top: int = Field(1, ge=1, le=1000, description="The N likeliest labels of each text.")


def routes(api) -> None:
    import torch

    @api.app.post("/classify")
    async def classify(body: ClassifyRequest) -> dict:
        """Label texts: the ``top`` most likely labels of each, with probabilities."""
        classifier = api.pick("classify", body.model).runner

        def work(expired):
            parts = []
            for start in range(0, len(body.texts), PIECE):
                if expired():
                    raise TimedOut
                parts.append(classifier.probabilities(body.texts[start:start + PIECE]))
            return torch.cat(parts)

        probs = await api.run(work)
        k = min(body.top, len(classifier.labels))
        return {"labels": [[{"label": classifier.labels[int(i)], "probability": round(float(v), 6)}
                            for v, i in zip(*p.topk(k))] for p in probs]}

    api.add_page(Path(__file__).with_name("classify.html"))
