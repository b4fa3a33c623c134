"""``POST /classify``: the likeliest labels of texts."""

from pathlib import Path

import numpy as np
from pydantic import Field

from seqgen.serve.requests import ModelRequest, Text
from seqgen.serve.worker import TimedOut

PIECE = 256  # texts labelled between two looks at the clock


class ClassifyRequest(ModelRequest):
    texts: list[Text] | None = Field(None, min_length=1, max_length=1024,
                                     description="For a text classifier.")
    series: list[list[float]] | None = Field(
        None, min_length=1, max_length=1024, description="For a series classifier: each "
        "series' values (one channel).")
    top: int = Field(1, ge=1, le=1000, description="The N likeliest labels of each text.")


def routes(api) -> None:
    import torch

    @api.app.post("/classify")
    async def classify(body: ClassifyRequest) -> dict:
        """Label texts: the ``top`` most likely labels of each, with probabilities."""
        from fastapi import HTTPException

        from seqgen.tasks.classify import Classifier

        classifier = api.pick("classify", body.model).runner
        reads_text = isinstance(classifier, Classifier)
        inputs = body.texts if reads_text else body.series
        if inputs is None:
            raise HTTPException(422, "this classifier reads " + (
                "texts: send \"texts\"" if reads_text else "series: send \"series\""))
        if not reads_text:
            if any(len(s) == 0 or len(s) > 100_000 for s in inputs):
                raise HTTPException(422, "series: each needs 1 to 100,000 values")
            inputs = [np.asarray(s, dtype=float).reshape(-1, 1) for s in inputs]

        def work(expired):
            parts = []
            for start in range(0, len(inputs), PIECE):
                if expired():
                    raise TimedOut
                parts.append(classifier.probabilities(inputs[start:start + PIECE]))
            return torch.cat(parts)

        probs = await api.run(work)
        k = min(body.top, len(classifier.labels))
        return {"labels": [[{"label": classifier.labels[int(i)], "probability": round(float(v), 6)}
                            for v, i in zip(*p.topk(k))] for p in probs]}

    api.add_page(Path(__file__).with_name("classify.html"))
