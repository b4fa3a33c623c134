"""neuralforecast's models on the files seqgen's M4 benchmark writes, scored by seqgen's own
metrics; run by ``bench_forecast.py --part m4`` in a virtual environment of its own (never a
dependency of seqgen). Prints one JSON object per model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM, NHITS

    from seqgen.data.series import read_series
    from seqgen.metrics import forecast_scores, mase_scale, owa
    from seqgen.models.baselines import naive2

    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--input-size", type=int, default=168)
    parser.add_argument("--season", type=int, default=24)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--models", default="LSTM,NHITS")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    train, test = read_series(args.train), read_series(args.test)
    frame = pd.DataFrame({"unique_id": np.concatenate([[s.name] * len(s) for s in train.series]),
                          "ds": np.concatenate([np.arange(len(s)) for s in train.series]),
                          "y": np.concatenate([s.target for s in train.series])})
    budget = time.strftime("00:%H:%M:%S", time.gmtime(args.seconds))
    common = dict(h=args.horizon, input_size=args.input_size, scaler_type="robust",
                  max_steps=10**7, max_time=budget, val_check_steps=100,
                  early_stop_patience_steps=-1, accelerator="cpu", enable_progress_bar=False,
                  logger=False, enable_checkpointing=False)
    makers = {"LSTM": lambda: LSTM(**common), "NHITS": lambda: NHITS(**common)}
    actuals = [t.target[:args.horizon] for t in test.series]
    histories = {s.name: s.target for s in train.series}
    scales = [mase_scale(histories[t.name], args.season) for t in test.series]
    reference = forecast_scores(actuals, [naive2(histories[t.name], args.horizon, args.season)
                                          for t in test.series], scales)
    for name in args.models.split(","):
        model = makers[name]()
        started = time.perf_counter()
        forecaster = NeuralForecast(models=[model], freq=1)
        forecaster.fit(frame, val_size=args.horizon)
        seconds = time.perf_counter() - started
        predicted = forecaster.predict()
        column = [c for c in predicted.columns if c not in ("unique_id", "ds")][0]
        by_id = {k: g[column].to_numpy() for k, g in predicted.groupby("unique_id")}
        scores = forecast_scores(actuals, [by_id[t.name] for t in test.series], scales)
        scores["owa"] = owa(scores, reference)
        fitted = forecaster.models[0]
        steps = int(getattr(getattr(fitted, "trainer", None), "global_step", 0) or 0)
        counted = {"steps": steps} if steps else {}  # where lightning tells it
        print(json.dumps({"model": f"neuralforecast {name}", **scores, **counted,
                          "seconds": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
