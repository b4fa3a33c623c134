"""Forecasting: the glue between series, forecasters, the trainer, the baselines and the M4
metrics.

A forecast is always made the same way (``Forecaster.predict``): for each series and origin,
the series is scaled by what came before the origin, the model reads the window before it,
and its output is scaled back. Validation during training, ``forecast``,
``evaluate-forecast`` and ``serve`` all go through it, so the final validation of a run and
``evaluate-forecast`` on the same data give the same figures. The baselines (naive, seasonal
naive, Naive2) are forecasters too: they are scored beside every model, and ``--model
naive2`` is a run like any (nothing to train: validated and saved).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seqgen.config import (
    BASELINE_FORECASTERS,
    ForecastConfig,
    TrainConfig,
    check_choice,
    from_dict,
    to_dict,
)
from seqgen.data.series import (
    Series,
    SeriesOptions,
    SeriesSet,
    Step,
    SyntheticOptions,
    read_series,
    synthetic_series,
)
from seqgen.data.windows import (
    CALENDARS,
    SCALES,
    Prepared,
    WindowBatches,
    calendar_width,
    prepare,
    split_series,
    window_inputs,
)
from seqgen.errors import UserError
from seqgen.metrics import forecast_scores, mase_scale, owa
from seqgen.models.baselines import baseline_forecast
from seqgen.models.forecasters import build_forecaster, middle
from seqgen.progress import ProgressReporter
from seqgen.runs import Run, load_trained
from seqgen.tasks.echo_state import RIDGES, KnownScales, accumulate, esn_predict
from seqgen.tasks.registry import TaskSpec, register
from seqgen.tasks.supervised import DECAYS, teacher_forcing_rate
from seqgen.training import FitResult

TASK = "forecast"
LOSSES = ("mse", "mae", "huber")
BASELINES = ("naive", "seasonal-naive", "naive2")
# M4's seasonal periods by the first letter of its ids (Hourly, Daily, Weekly, Monthly, …)
M4_SEASONS = {"H": 24, "D": 1, "W": 1, "M": 12, "Q": 4, "Y": 1}
SEASONS = {3600: 24, 86400: 7, 604800: 52}  # by the time step, in seconds


@dataclass
class ForecastOptions:
    """What a forecasting run is, besides its model: saved, and kept by ``--resume``."""

    horizon: int = 1
    input_size: int = 24
    val_size: int | None = None  # None: the horizon
    val_series: int = 0  # hold whole series out for validation instead
    scale: str = "window"
    calendar: str = "none"
    season: int | None = None  # None: from the data
    loss: str = "mae"
    teacher_forcing: float = 1.0  # seq2seq
    teacher_forcing_decay: str = "none"
    ridge_auto: bool = False  # esn: pick the ridge on the validation

    def __post_init__(self) -> None:
        for name in ("horizon", "input_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive whole number, "
                                f"got {value!r}")
        if self.val_size is not None and (not isinstance(self.val_size, int)
                                          or self.val_size < self.horizon):
            raise UserError(f"--val-size must be at least the horizon ({self.horizon}), got "
                            f"{self.val_size!r}")
        if not isinstance(self.val_series, int) or self.val_series < 0:
            raise UserError(f"--val-series must be a whole number >= 0, got {self.val_series!r}")
        if self.season is not None and (not isinstance(self.season, int) or self.season < 1):
            raise UserError(f"--season must be a positive whole number, got {self.season!r}")
        check_choice("scale", self.scale, SCALES)
        check_choice("calendar", self.calendar, CALENDARS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("teacher_forcing_decay", self.teacher_forcing_decay, DECAYS)
        if not 0 <= self.teacher_forcing <= 1:
            raise UserError("--teacher-forcing must be in [0, 1]")

    @property
    def validation(self) -> int:
        return self.val_size or self.horizon


def season_of(data: SeriesSet, given: int | None) -> int:
    """``--season``, else what the data's time step or M4 ids say (1: none)."""
    if given:
        return given
    if data.step is not None and data.step.unit == "s":
        return SEASONS.get(data.step.size, 1)
    if data.step is not None:
        return 12 // data.step.size if data.step.size in (1, 3) else 1
    if data.layout == "M4 wide" and data.series:
        return M4_SEASONS.get(data.series[0].name[:1].upper(), 1)
    return 1


def read_data(source: str | None, series_options: SeriesOptions,
              synthetic: SyntheticOptions | None) -> SeriesSet:
    if (source is None) == (synthetic is None):
        raise UserError("give a data file, or --synthetic NAME for built-in series (not both)")
    return synthetic_series(synthetic) if synthetic else read_series(source, series_options)


# ------------------------------------------------------------------ forecasting
@dataclass
class Forecaster:
    """A forecaster and what it needs to read any series the way it was trained; what
    ``forecast``, ``evaluate-forecast`` and ``serve`` run."""

    model: torch.nn.Module
    config: ForecastConfig
    scale: str
    calendar: str
    step: Step | None
    covariates: list[str] = field(default_factory=list)
    known_scales: KnownScales = field(default_factory=dict)  # esn: each series' training scale

    @property
    def kind(self) -> str:
        return self.config.model

    def check(self, data: SeriesSet) -> None:
        """The data must hold what the model reads: the same covariates."""
        if data.covariate_names != self.covariates:
            raise UserError(f"the model reads covariates {self.covariates or 'none'}; the data "
                            f"has {data.covariate_names or 'none'} (give the options it was "
                            "trained with)")

    def predict(self, series: Sequence[Series], origins: Sequence[int],
                prepared: Sequence[Prepared] | None = None, batch_size: int = 1024
                ) -> np.ndarray:
        """Forecasts from each series' ``origin`` on, in its own units: (N, H, outputs)."""
        return self.predict_scaled(series, origins, prepared, batch_size)[0]

    @torch.no_grad()
    def predict_scaled(self, series: Sequence[Series], origins: Sequence[int],
                       prepared: Sequence[Prepared] | None = None, batch_size: int = 1024
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The forecasts, and the center and scale (N,) each was undone with."""
        c = self.config
        if c.model in BASELINE_FORECASTERS:
            outputs = np.stack([baseline_forecast(c.model, s.target[:o], c.horizon, c.season)
                                for s, o in zip(series, origins)])[..., None]
            return outputs, np.zeros(len(series)), np.ones(len(series))
        if c.model == "esn":
            return esn_predict(self.model, series, origins, self.scale, self.calendar,
                               self.step, prepared, self.known_scales)
        for s, o in zip(series, origins):
            if o < c.input_size:
                raise UserError(f"series {s.name!r} has {o} values before its forecast: the "
                                f"model reads {c.input_size}")
        if prepared is None:
            prepared = [prepare(s, c.horizon, self.calendar, self.step) for s in series]
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        outputs, centers, scales = [], [], []
        for start in range(0, len(series), batch_size):
            chunk = range(start, min(start + batch_size, len(series)))
            windows = [window_inputs(prepared[i], origins[i], c.input_size, c.horizon,
                                     self.scale) for i in chunk]
            x = torch.from_numpy(np.stack([w[0] for w in windows])).to(device)
            future = torch.from_numpy(np.stack([w[1] for w in windows])).to(device)
            center = np.array([w[2].center[0] for w in windows])
            scale = np.array([w[2].scale[0] for w in windows])
            scaled = self.model(x, future).float().cpu().numpy()
            outputs.append(scaled.astype(np.float64) * scale[:, None, None]
                           + center[:, None, None])
            centers.append(center)
            scales.append(scale)
        self.model.train(was_training)
        return np.concatenate(outputs), np.concatenate(centers), np.concatenate(scales)

    def point(self, outputs: np.ndarray) -> np.ndarray:
        """(…, H, outputs) → (…, H): the median quantile, or the one forecast."""
        return middle(torch.from_numpy(outputs), self.config.quantiles).numpy()

    def interval(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The widest interval the quantiles give, or None without quantiles."""
        if len(self.config.quantiles) < 2:
            return None
        return outputs[..., 0], outputs[..., -1]

    @property
    def alpha(self) -> float | None:
        """1 − the widest interval's level (0.1 and 0.9 give an 80% interval: 0.2)."""
        q = self.config.quantiles
        return 1 - (q[-1] - q[0]) if len(q) >= 2 else None


def baseline(kind: str, like: ForecastConfig) -> Forecaster:
    """A baseline forecaster for the same horizon and season."""
    config = ForecastConfig(horizon=like.horizon, input_size=like.input_size, model=kind,
                            season=like.season)
    return Forecaster(build_forecaster(config), config, "none", "none", None)


# ------------------------------------------------------------------ scoring
@dataclass
class Holdout:
    """Forecast origins with the values that followed them: what is scored."""

    series: list[Series]
    origins: list[int]
    actuals: list[np.ndarray]  # (H,) each
    scales: list[float]  # MASE scale of each history
    prepared: dict[int, Prepared] = field(default_factory=dict)  # per model input settings

    def __len__(self) -> int:
        return len(self.origins)


def holdout(series: Sequence[Series], origins: Sequence[int], horizon: int, season: int,
            actuals: Sequence[np.ndarray] | None = None) -> Holdout:
    """The windows from ``origins`` (with their actual values from the series, or given)."""
    if actuals is None:
        actuals = [s.target[o:o + horizon] for s, o in zip(series, origins)]
    scales = [mase_scale(s.target[:o], season) for s, o in zip(series, origins)]
    return Holdout(list(series), list(origins), list(actuals), scales)


def score(forecaster: Forecaster, data: Holdout, naive2: dict | None = None,
          prepared: Sequence[Prepared] | None = None, outputs: np.ndarray | None = None
          ) -> dict[str, float]:
    """MAE, RMSE, sMAPE, MASE (and OWA against ``naive2``'s scores; coverage and MSIS with
    intervals) of ``forecaster`` (or of its ``outputs``) on ``data``."""
    if outputs is None:
        outputs = forecaster.predict(data.series, data.origins, prepared)
    points = forecaster.point(outputs)
    interval = forecaster.interval(outputs)
    intervals = list(zip(*interval)) if interval is not None else None
    scores = forecast_scores(data.actuals, list(points), data.scales, intervals,
                             forecaster.alpha)
    if naive2 is not None:
        scores["owa"] = owa(scores, naive2)
    first = ("mae", "rmse", "smape", "mase", "owa")  # the order tables and progress show
    return {**{k: scores[k] for k in first if k in scores}, **scores}


def baseline_scores(like: ForecastConfig, data: Holdout) -> dict[str, dict[str, float]]:
    """Every baseline's scores on ``data``, OWA included (Naive2's is 1)."""
    results = {kind: score(baseline(kind, like), data) for kind in BASELINES}
    for scores in results.values():
        scores["owa"] = owa(scores, results["naive2"])
    return results


# ------------------------------------------------------------------ the trainer's task
def pinball(outputs: torch.Tensor, target: torch.Tensor, quantiles: Sequence[float]
            ) -> torch.Tensor:
    """Summed quantile (pinball) loss of (B, H, Q) outputs against (B, H) targets."""
    q = torch.tensor(quantiles, device=outputs.device, dtype=outputs.dtype)
    error = target.unsqueeze(-1) - outputs
    return torch.maximum(q * error, (q - 1) * error).sum()


def point_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mae":
        return F.l1_loss(prediction, target, reduction="sum")
    if kind == "huber":
        return F.huber_loss(prediction, target, reduction="sum")
    return F.mse_loss(prediction, target, reduction="sum")


class ForecastTask:
    """The loss in scaled units (``--loss``, or pinball with quantiles); validation forecasts
    each validation window as ``forecast`` would and scores it in the data's units, beside
    the baselines' scores on the same windows."""

    def __init__(self, forecaster: Forecaster, options: ForecastOptions, val: Holdout,
                 baselines: dict[str, dict[str, float]]):
        self.forecaster = forecaster
        self.options = options
        self.val = val
        self.baselines = baselines
        self.progress = 0.0
        self._told = False

    def set_progress(self, fraction: float) -> None:
        self.progress = fraction

    def loss(self, model, batch, carry):
        x, future, target = batch
        o = self.options
        rate = teacher_forcing_rate(o.teacher_forcing, o.teacher_forcing_decay, self.progress)
        outputs = model(x, future, target, rate).float()
        quantiles = self.forecaster.config.quantiles
        if quantiles:
            return pinball(outputs, target, quantiles), None
        return point_loss(outputs[..., 0], target, o.loss), None

    def count_targets(self, batch) -> int:
        return batch[2].numel()

    def evaluate(self, model, data: Holdout, final: bool = False) -> dict[str, float]:
        """The scores in the data's units, and the loss in the scaled units training sees."""
        prepared = [data.prepared[i] for i in range(len(data))]
        outputs, center, scale = self.forecaster.predict_scaled(data.series, data.origins,
                                                                prepared)
        scaled = torch.from_numpy((outputs - center[:, None, None]) / scale[:, None, None])
        target = torch.from_numpy((np.stack(data.actuals) - center[:, None]) / scale[:, None])
        quantiles = self.forecaster.config.quantiles
        total = pinball(scaled, target, quantiles) if quantiles else point_loss(
            scaled[..., 0], target, self.options.loss)
        scores = score(self.forecaster, data, self.baselines["naive2"], outputs=outputs)
        return {**scores, "loss": float(total) / target.numel()}

    def preview(self, model) -> list[str]:
        if self._told:
            return []
        self._told = True
        shown = ", ".join(f"{kind} MASE {s['mase']:.3f}, sMAPE {s['smape']:.2f}"
                          for kind, s in self.baselines.items())
        return [f"  the baselines on the same validation: {shown}"]


# ------------------------------------------------------------------ training
def _model_config(model_options: dict, options: ForecastOptions, data: SeriesSet,
                  season: int, seed: int) -> ForecastConfig:
    calendar = calendar_width(data.step, options.calendar)
    return ForecastConfig(horizon=options.horizon, input_size=options.input_size,
                          inputs=1 + data.series[0].covariates.shape[1] + calendar,
                          future_inputs=calendar, season=season, seed=seed, **model_options)


def _describe(config: ForecastConfig) -> str:
    c = config
    if c.model in BASELINE_FORECASTERS:
        return f"{c.model} (season {c.season})" if c.model != "naive" else "naive"
    if c.model == "wavenet":
        return (f"WaveNet, {len(c.dilations) * c.stacks} gated blocks of {c.channels} channels "
                f"(kernel {c.kernel}, dilations {','.join(map(str, c.dilations))} × {c.stacks}"
                f"), receptive field {c.receptive_field()} steps")
    if c.model == "linear":
        return f"linear, {c.input_size}×{c.inputs} inputs → {c.horizon}"
    if c.model == "esn":
        return (f"echo state network, {c.units} leaky units (spectral radius "
                f"{c.spectral_radius:g}, leak {c.leak_rate:g}, density {c.density:g}, washout "
                f"{c.washout}), {c.decoder} readout")
    conv = f"1-D convolution ({c.conv} channels) + " if c.conv else ""
    return f"{conv}{c.layers}×{c.hidden} {c.model}, {c.decoder} head"


def train_forecast(
    source: str | None,
    series_options: SeriesOptions,
    synthetic: SyntheticOptions | None,
    model_options: dict,
    options: ForecastOptions,
    train_config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
    explicit: Collection[str] | None = None,
) -> FitResult:
    """Train a forecaster (or fit a baseline). With ``resume``, the run in
    ``train_config.out_dir`` continues with the options that define it."""
    run = Run(TASK, train_config, resume, overwrite, explicit, reporter)
    ForecastConfig(horizon=options.horizon, input_size=options.input_size, **model_options)
    definition = run.define({
        **model_options, **to_dict(options), **{f"series_{k}": v for k, v in
                                               to_dict(series_options).items()},
        "source": str(Path(source).resolve()) if source else None,
        "synthetic": to_dict(synthetic) if synthetic else None,
        "batch_size": run.config.batch_size, "seed": run.config.seed})
    model_options = {k: definition[k] for k in model_options}
    options = from_dict(ForecastOptions, definition)
    series_options = SeriesOptions(**{k[7:]: v for k, v in definition.items()
                                      if k.startswith("series_")})
    synthetic = from_dict(SyntheticOptions, definition["synthetic"]) \
        if definition["synthetic"] else None
    data = read_data(source, series_options, synthetic)
    run.check_data(data.digest(), "the series differ")
    for note in data.notes:
        run.reporter.message(note)
    season = season_of(data, options.season)
    config = _model_config(model_options, options, data, season, run.config.seed)
    run.check_size(lambda: build_forecaster(config))
    split = split_series(data, config.input_size, config.horizon, options.validation,
                         options.val_series)
    prepared = [prepare(s, config.horizon, options.calendar, data.step) for s in data.series]
    train = WindowBatches(prepared, split, config.input_size, config.horizon,
                          run.config.batch_size, run.config.seed, options.scale)
    chosen = [(s, p, o) for s, p, origins in zip(data.series, prepared, split.val_origins)
              for o in origins]
    val = holdout([s for s, _, _ in chosen], [o for _, _, o in chosen], config.horizon,
                  season)
    val.prepared = {i: p for i, (_, p, _) in enumerate(chosen)}
    baselines = baseline_scores(config, val)
    held = (f"the last window of each of the last {options.val_series} series"
            if options.val_series else f"the last {options.validation} values of each series")
    run.reporter.message(f"series: {data.describe()}; {len(train.origins):,} training windows, "
                         f"{len(val):,} validation windows ({held}); season {season}")
    model = run.build(lambda: build_forecaster(config))
    forecaster = Forecaster(model, config, options.scale, options.calendar, data.step,
                            data.covariate_names)
    if config.model == "esn":
        fit_readout(forecaster, data, prepared, split, val, options, baselines, run)
    meta = {
        "model_config": to_dict(config),
        "data": {"series_options": to_dict(series_options), "scale": options.scale,
                 "calendar": options.calendar,
                 "step": data.step.to_dict() if data.step else None,
                 "covariates": data.covariate_names, "series": len(data),
                 "layout": data.layout, "baselines": baselines,
                 "files": [data.source], "known_scales": forecaster.known_scales},
    }
    return run.fit(model, ForecastTask(forecaster, options, val, baselines), train, val, meta,
                   _describe(config))


def fit_readout(forecaster: Forecaster, data: SeriesSet, prepared: list[Prepared],
                split, val: Holdout, options: ForecastOptions, baselines: dict,
                run: Run) -> None:
    """An echo state network's readout, by ridge regression in closed form (``--ridge auto``:
    the ridge of a small grid that scores best on the validation)."""
    model, c = forecaster.model, forecaster.config
    started = time.perf_counter()
    readout, forecaster.known_scales = accumulate(model, data.series, prepared, split,
                                                  options.scale)
    if readout.count == 0:
        raise UserError(f"no training step is past the washout of {c.washout}: lower "
                        "--washout or give longer series")
    chosen, ridges = c.ridge, (RIDGES if options.ridge_auto else (c.ridge,))
    if len(ridges) > 1:
        metric = run.config.select_metric if run.config.select_metric != "loss" else "mae"
        scored = []
        for ridge in ridges:
            model.readout.copy_(readout.solve(ridge))
            scores = score(forecaster, val, baselines["naive2"],
                           [val.prepared[i] for i in range(len(val))])
            scored.append((scores[metric], ridge))
        chosen = min(scored)[1]
        run.reporter.message("ridge on the validation: " + ", ".join(
            f"{r:g} {metric} {v:.4g}" for v, r in scored) + f"; chosen {chosen:g}")
    model.readout.copy_(readout.solve(chosen))
    forecaster.config.ridge = chosen
    run.reporter.message(f"readout fitted in closed form on {readout.count:,} states of "
                         f"{c.units} units (ridge {chosen:g}) in "
                         f"{time.perf_counter() - started:.1f} s")


# ------------------------------------------------------------------ using a trained model
def load_forecaster(checkpoint: str | Path, device: str = "auto") -> tuple[Forecaster, dict]:
    """A trained forecaster and the checkpoint's contents; everything is checked before
    anything is built."""
    trained = load_trained(checkpoint, TASK, ForecastConfig, build_forecaster, device)
    data = trained.data.get("data") or {}
    step = data.get("step")
    try:
        forecaster = Forecaster(trained.model, trained.config, data.get("scale", "standard"),
                                data.get("calendar", "none"), Step(**step) if step else None,
                                list(data.get("covariates") or []),
                                {name: (list(c), list(s), int(n)) for name, (c, s, n)
                                 in (data.get("known_scales") or {}).items()})
    except (TypeError, ValueError):
        raise UserError(f"{checkpoint} does not hold valid series settings") from None
    return forecaster, trained.data


def series_options_of(saved: dict, **given: Any) -> SeriesOptions:
    """The reading options a run was trained with, under the ones given now."""
    stored = (saved.get("data") or {}).get("series_options") or {}
    return from_dict(SeriesOptions, {**stored, **{k: v for k, v in given.items()
                                                  if v is not None}})


@dataclass
class Forecast:
    series: str
    times: list[str]  # dates, or step numbers after the data's end
    values: np.ndarray  # (H,)
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def forecast_series(forecaster: Forecaster, data: SeriesSet) -> list[Forecast]:
    """The next ``horizon`` values of every series, from the end of its data."""
    forecaster.check(data)
    c = forecaster.config
    outputs = forecaster.predict(data.series, [len(s) for s in data.series])
    points = forecaster.point(outputs)
    interval = forecaster.interval(outputs)
    results = []
    for i, s in enumerate(data.series):
        if s.dates is not None and data.step is not None:
            times = [str(t).replace("T00:00:00", "").replace("T", " ")
                     for t in data.step.after(s.dates[-1], c.horizon)]
        else:
            times = [str(len(s) + k) for k in range(c.horizon)]
        results.append(Forecast(s.name, times, points[i],
                                *(None, None) if interval is None else
                                (interval[0][i], interval[1][i])))
    return results


def evaluate_forecaster(forecaster: Forecaster, data: SeriesSet,
                        test: SeriesSet | None = None) -> dict:
    """The forecaster and the baselines side by side: on each series' last ``horizon``
    values, or (``test``) on the values that follow the data, series matched by name."""
    forecaster.check(data)
    c = forecaster.config
    if test is None:
        series = data.series
        origins = [len(s) - c.horizon for s in series]
        actuals = None
        where = f"the last {c.horizon} values of each series"
    else:
        known = {s.name: s for s in data.series}
        missing = [t.name for t in test.series if t.name not in known]
        if missing:
            raise UserError(f"the test file has series the data does not: "
                            f"{', '.join(missing[:5])}")
        short = [t.name for t in test.series if len(t) < c.horizon]
        if short:
            raise UserError(f"the test file has fewer than {c.horizon} values for "
                            f"{', '.join(short[:5])}")
        series = [known[t.name] for t in test.series]
        origins = [len(s) for s in series]
        actuals = [t.target[:c.horizon] for t in test.series]
        where = f"the test file's {c.horizon} values of each series"
    if any(o < 1 for o in origins):
        raise UserError(f"a series is not longer than the horizon {c.horizon}: nothing to "
                        "forecast it from")
    data_holdout = holdout(series, origins, c.horizon, c.season, actuals)
    table = baseline_scores(c, data_holdout)
    if c.model not in BASELINE_FORECASTERS:
        table = {c.model: score(forecaster, data_holdout, table["naive2"]), **table}
    return {"scores": table, "model": c.model, "series": len(series), "horizon": c.horizon,
            "season": c.season, "scored_on": where}


# ------------------------------------------------------------------ drawing
def _shown_history(series: Series, horizon: int) -> int:
    return min(len(series), max(3 * horizon, 48))


def text_forecast(series: Series, result: Forecast, width: int = 64) -> list[str]:
    """The end of a series' history (*) and its forecast (o; the interval's ends +) as a
    text plot."""
    from seqgen.curves import text_plot

    n = _shown_history(series, len(result.values))
    start = len(series) - n
    history = [(start + k, float(v)) for k, v in enumerate(series.target[-n:])]
    ahead = [(len(series) + k, float(v)) for k, v in enumerate(result.values)]
    lines = [history, ahead]
    legend = "* history   o forecast"
    if result.lower is not None:
        lines.append([(len(series) + k, float(v)) for k, v in enumerate(result.lower)]
                     + [(len(series) + k, float(v)) for k, v in enumerate(result.upper)])
        legend += "   + interval"
    return [f"{series.name}: {legend}", *text_plot(lines, width)]


def plot_forecasts(data: SeriesSet, results: list[Forecast], path: str | Path, show: int
                   ) -> int:
    """History, forecast and interval band of the first ``show`` series, a panel each, as a
    PNG (needs matplotlib); returns how many were drawn."""
    from seqgen.plots import pyplot, save_figure

    plt = pyplot("--plot")
    chosen = list(zip(data.series, results))[:show]
    fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 2.8 * len(chosen)), squeeze=False)
    for ax, (series, result) in zip(axes[:, 0], chosen):
        n = _shown_history(series, len(result.values))
        past = np.arange(len(series) - n, len(series))
        ahead = np.arange(len(series), len(series) + len(result.values))
        ax.plot(past, series.target[-n:], color="0.3", label="history")
        ax.plot(ahead, result.values, color="C0", label="forecast")
        if result.lower is not None:
            ax.fill_between(ahead, result.lower, result.upper, color="C0", alpha=0.25,
                            label="interval")
        ax.set_title(series.name, fontsize="medium")
        ax.legend(fontsize="small")
    axes[-1, 0].set_xlabel("step")
    save_figure(fig, path)
    return len(chosen)


def _describe_checkpoint(data: dict) -> dict:
    config, stored = data.get("model_config") or {}, data.get("data") or {}
    return {"horizon": config.get("horizon"), "input_size": config.get("input_size"),
            "season": config.get("season"), "series": stored.get("series"),
            "quantiles": config.get("quantiles") or None,
            "baselines (validation MASE)": {k: round(v.get("mase", math.nan), 4) for k, v in
                                            (stored.get("baselines") or {}).items()}}


register(TaskSpec(TASK, "forecaster", load_forecaster, _describe_checkpoint,
                  routes="seqgen.serve.forecast"))
