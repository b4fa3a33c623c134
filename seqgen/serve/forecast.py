"""``POST /forecast``: the next horizon values of series sent in the request."""

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from seqgen.serve.requests import ModelRequest

MAX_VALUES = 100_000  # of one series


class SeriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field("series", max_length=200)
    values: list[float] = Field(min_length=1, max_length=MAX_VALUES)
    covariates: list[list[float]] | None = Field(
        None, max_length=MAX_VALUES, description="Each step's covariates, in the order the "
        "model was trained with (GET /models).")
    dates: list[str] | None = Field(None, max_length=MAX_VALUES, description="ISO dates of "
                                    "the values, for models with calendar inputs.")


class ForecastRequest(ModelRequest):
    series: list[SeriesIn] = Field(min_length=1, max_length=1024)


def _series(item: SeriesIn, forecaster):
    from fastapi import HTTPException

    from seqgen.data.series import Series

    n = len(item.values)
    width = len(forecaster.covariates)
    rows = item.covariates if item.covariates is not None else [[] for _ in range(n)]
    if len(rows) != n or any(len(row) != width for row in rows):
        wanted = f"{width} covariate(s) ({', '.join(forecaster.covariates)})" if width \
            else "no covariates"
        raise HTTPException(422, f"series {item.id!r}: the model reads {wanted} at each of "
                                 f"its {n} steps")
    covariates = np.asarray(rows, dtype=float).reshape(n, width)
    dates = None
    if forecaster.calendar != "none":
        if item.dates is None or len(item.dates) != n:
            raise HTTPException(422, f"series {item.id!r}: the model reads calendar inputs: "
                                     "send a date for each value")
        try:
            dates = np.array(item.dates, dtype="datetime64[s]")
        except ValueError:
            raise HTTPException(422, f"series {item.id!r}: dates must be ISO "
                                     "(YYYY-MM-DD[THH:MM:SS])") from None
    if not np.isfinite(item.values).all():
        raise HTTPException(422, f"series {item.id!r}: every value must be a number")
    return Series(item.id, np.asarray(item.values, dtype=float), covariates, dates)


def routes(api) -> None:
    from seqgen.data.series import SeriesSet
    from seqgen.tasks.forecast import forecast_series

    @api.app.post("/forecast")
    async def forecast(body: ForecastRequest) -> dict:
        """The next horizon values of each series (with the interval of the widest quantiles
        when the model has them)."""
        forecaster = api.pick("forecast", body.model).runner
        data = SeriesSet([_series(s, forecaster) for s in body.series],
                         list(forecaster.covariates), forecaster.step)
        results = await api.run(lambda expired: forecast_series(forecaster, data))
        answer = []
        for r in results:
            item = {"id": r.series, "times": r.times,
                    "forecast": [round(float(v), 6) for v in r.values]}
            if r.lower is not None:
                item["lower"] = [round(float(v), 6) for v in r.lower]
                item["upper"] = [round(float(v), 6) for v in r.upper]
            answer.append(item)
        return {"forecasts": answer}

    api.add_page(Path(__file__).with_name("forecast.html"))
