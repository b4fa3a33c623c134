"""From series to what a forecaster reads: scaling, calendar features, the split into
training and validation that never lets a validation value into a training window, and the
windows themselves, batched.

Every window is scaled by what came before its origin, and only that, in training as at
forecast time: ``standard`` by the mean and deviation of the series' whole past, ``robust`` by
its median and interquartile range, ``window`` by those of the input window alone (as RevIN
does); ``none`` leaves the values as they are. The forecast is scaled back the same way.

A window is an origin ``t`` in one series: the model reads the ``input_size`` steps before
it and forecasts the ``horizon`` steps from it on. Validation takes each series' last
``val_size`` values (``--val-size``, at least the horizon): every training target lies before
them. Or, with ``--val-series N``, the last N series are kept whole for validation (as
Hands-On ML's sine series are): their last window is forecast from the rest of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from seqgen.data.series import Series, SeriesSet, Step
from seqgen.errors import UserError

SCALES = ("standard", "robust", "window", "none")
CALENDARS = ("none", "auto")


# ------------------------------------------------------------------------------ scaling
@dataclass(frozen=True)
class Scaler:
    """``(x - center) / scale`` per column."""

    center: np.ndarray
    scale: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.scale

    def undo(self, values: np.ndarray, column: int = 0) -> np.ndarray:
        return values * self.scale[column] + self.center[column]


def _spread(spread: np.ndarray) -> np.ndarray:
    return np.where(spread > 1e-9 * np.maximum(1.0, np.abs(spread)), spread, 1.0)


def fit_scaler(values: np.ndarray, kind: str) -> Scaler:
    """Each column of ``values`` (T, C): standard (mean, deviation), robust (median,
    interquartile range; the deviation where that is 0) or none; a constant column keeps a
    scale of 1."""
    values = values.reshape(len(values), -1)
    width = values.shape[1]
    if kind == "none" or len(values) == 0:
        return Scaler(np.zeros(width), np.ones(width))
    if kind == "robust":
        center = np.median(values, axis=0)
        q75, q25 = np.percentile(values, [75, 25], axis=0)
        spread = np.where(q75 > q25, q75 - q25, values.std(axis=0))
    else:
        center, spread = values.mean(axis=0), values.std(axis=0)
    return Scaler(center, _spread(spread))


def past_scaler(values: np.ndarray, origin: int, kind: str, input_size: int) -> Scaler:
    """The scaler of the window before ``origin``: fitted on the past (``window``: on the
    input window alone), never on a value it forecasts."""
    if kind == "window":
        return fit_scaler(values[origin - input_size:origin], "standard")
    return fit_scaler(values[:origin], kind)


# ------------------------------------------------------------------------------ calendar
def calendar_width(step: Step | None, kind: str) -> int:
    return len(_calendar_columns(step)) if kind == "auto" and step else 0


def _calendar_columns(step: Step) -> list[str]:
    seconds = step.size if step.unit == "s" else 30 * 86400 * step.size
    columns = []
    if seconds < 86400:
        columns += ["hour sin", "hour cos"]
    if seconds < 7 * 86400:
        columns += [f"weekday {d}" for d in range(7)]
    if seconds < 365 * 86400:
        columns += ["year sin", "year cos"]
    return columns


def calendar_features(dates: np.ndarray, step: Step | None, kind: str) -> np.ndarray:
    """Features any future time has (``--calendar auto``): the hour of the day, the day of
    the week (one-hot) and the time of the year (sine and cosine), as the step makes
    sense of them; (T, width)."""
    if calendar_width(step, kind) == 0:
        return np.zeros((len(dates), 0))
    columns = _calendar_columns(step)
    seconds = dates.astype("datetime64[s]").astype(np.int64)
    days = seconds // 86400
    out = []
    if "hour sin" in columns:
        hour = (seconds % 86400) / 86400 * 2 * math.pi
        out += [np.sin(hour), np.cos(hour)]
    if "weekday 0" in columns:
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        out += [(weekday == d).astype(float) for d in range(7)]
    if "year sin" in columns:
        year = (days % 365.2425) / 365.2425 * 2 * math.pi
        out += [np.sin(year), np.cos(year)]
    return np.stack(out, axis=1)


# ------------------------------------------------------------------------------ inputs
@dataclass
class Prepared:
    """One series as a model reads it, before scaling: its target and covariates (the
    columns scaling applies to) and its calendar."""

    scaled: np.ndarray  # (T, 1 + covariates): the target, then the covariates
    future: np.ndarray  # (T + H, calendar): the calendar, the horizon's included

    @property
    def inputs(self) -> np.ndarray:
        """(T, inputs): what the model reads at each step, unscaled."""
        calendar = self.future[:len(self.scaled)]
        return np.column_stack([self.scaled, calendar]) if calendar.shape[1] else self.scaled


def prepare(series: Series, horizon: int, calendar: str, step: Step | None) -> Prepared:
    """``series``'s columns and its calendar, which runs ``horizon`` steps past the end."""
    columns = np.column_stack([series.target, series.covariates]).astype(np.float64)
    dates = series.dates
    if dates is not None and step is not None:
        cal = calendar_features(np.concatenate([dates, step.after(dates[-1], horizon)]),
                                step, calendar)
    else:
        cal = np.zeros((len(series) + horizon, 0))
    return Prepared(columns, cal.astype(np.float32))


def window_inputs(prepared: Prepared, origin: int, input_size: int, horizon: int,
                  kind: str) -> tuple[np.ndarray, np.ndarray, Scaler]:
    """The scaled window before ``origin`` (input_size, inputs), the horizon's calendar, and
    the scaler that undoes the forecast."""
    scaler = past_scaler(prepared.scaled, origin, kind, input_size)
    columns = scaler.apply(prepared.scaled[origin - input_size:origin])
    calendar = prepared.future[origin - input_size:origin]
    x = np.column_stack([columns, calendar]) if calendar.shape[1] else columns
    return x.astype(np.float32), prepared.future[origin:origin + horizon], scaler


# ------------------------------------------------------------------------------ the split
@dataclass
class Split:
    """Where each series' training part ends (its validation starts) and its validation
    origins; held-out series train nothing."""

    train_end: list[int]  # per series: training targets lie before this index
    val_origins: list[list[int]]  # per series: origins of its validation windows
    held_out: list[bool]


def split_series(data: SeriesSet, input_size: int, horizon: int, val_size: int,
                 val_series: int) -> Split:
    """Validation tails (or whole held-out series), checked: every series must give a
    training window (or, held out, a validation one)."""
    n = len(data)
    if val_series >= n:
        raise UserError(f"--val-series {val_series} leaves no series to train on (there are "
                        f"{n})")
    train_end, origins, held = [], [], []
    for i, s in enumerate(data.series):
        held_out = i >= n - val_series if val_series else False
        need = input_size + horizon
        if held_out:
            if len(s) < need:
                raise UserError(f"series {s.name!r} has {len(s)} values: forecasting "
                                f"{horizon} from {input_size} needs {need}")
            train_end.append(0)
            origins.append([len(s) - horizon])
        else:
            cut = len(s) - (0 if val_series else val_size)
            if cut < need:
                raise UserError(
                    f"series {s.name!r} has {len(s)} values: a window of --input-size "
                    f"{input_size} and --horizon {horizon}"
                    + (f", with its last {val_size} kept for validation," if not val_series
                       else "")
                    + f" needs {need + (0 if val_series else val_size)}")
            train_end.append(cut)
            origins.append([] if val_series else
                           list(range(cut, len(s) - horizon + 1, horizon)))
        held.append(held_out)
    return Split(train_end, origins, held)


# ------------------------------------------------------------------------------ batches
class WindowBatches:
    """Training windows of every series (each origin from ``input_size`` to the last one
    whose horizon ends before the series' validation), shuffled into batches of
    (x (B, L, inputs), future (B, H, future_inputs), targets (B, H)), each window scaled by
    its own past (``scale``); the same batches for the same seed and epoch."""

    def __init__(self, prepared: list[Prepared], split: Split, input_size: int, horizon: int,
                 batch_size: int, seed: int = 0, scale: str = "standard"):
        self.input_size, self.horizon, self.scale = input_size, horizon, scale
        self.batch_size, self.seed = batch_size, seed
        starts, origins, offset = [], [], 0
        for p, end, held in zip(prepared, split.train_end, split.held_out):
            if not held:
                origins.append(offset + np.arange(input_size, end - horizon + 1))
                starts.append(np.full(end - horizon + 1 - input_size, offset))
            offset += len(p.scaled)
        self.origins = np.concatenate(origins) if origins else np.zeros(0, dtype=np.int64)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        self.columns = np.concatenate([p.scaled for p in prepared])  # (N, 1 + covariates)
        self.calendar = np.concatenate([p.future[:len(p.scaled)] for p in prepared])
        # Running sums: the mean and deviation of any series' past in two subtractions.
        zero = np.zeros((1, self.columns.shape[1]))
        self.sums = np.concatenate([zero, np.cumsum(self.columns, axis=0)])
        self.squares = np.concatenate([zero, np.cumsum(self.columns ** 2, axis=0)])

    def __len__(self) -> int:
        return -(-len(self.origins) // self.batch_size)

    def scalers(self, starts: np.ndarray, origins: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Center and scale (B, 1, columns) of each window, from its series' past."""
        width = self.columns.shape[1]
        if self.scale == "window":
            past = self.columns[origins[:, None] + np.arange(-self.input_size, 0)]
            return past.mean(axis=1, keepdims=True), _spread(past.std(axis=1, keepdims=True))
        if self.scale == "none":
            return np.zeros((len(origins), 1, width)), np.ones((len(origins), 1, width))
        if self.scale == "standard":
            n = (origins - starts)[:, None]
            mean = (self.sums[origins] - self.sums[starts]) / n
            var = (self.squares[origins] - self.squares[starts]) / n - mean ** 2
            return mean[:, None], _spread(np.sqrt(np.maximum(var, 0)))[:, None]
        fitted = [past_scaler(self.columns[a:t], t - a, self.scale, self.input_size)
                  for a, t in zip(starts, origins)]
        return (np.stack([f.center for f in fitted])[:, None],
                np.stack([f.scale for f in fitted])[:, None])

    def batch(self, starts: np.ndarray, origins: np.ndarray):
        back = origins[:, None] + np.arange(-self.input_size, 0)
        ahead = origins[:, None] + np.arange(self.horizon)
        center, scale = self.scalers(starts, origins)
        x = (self.columns[back] - center) / scale
        if self.calendar.shape[1]:
            x = np.concatenate([x, self.calendar[back]], axis=-1)
        target = (self.columns[ahead, 0] - center[:, :, 0]) / scale[:, :, 0]
        return (torch.from_numpy(x.astype(np.float32)),
                torch.from_numpy(self.calendar[ahead].astype(np.float32)),
                torch.from_numpy(target.astype(np.float32)))

    def batches(self, epoch: int = 0, start: int = 0):
        order = np.random.default_rng(self.seed * 1000 + epoch).permutation(len(self.origins))
        for b in range(start, len(self)):
            chosen = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.batch(self.starts[chosen], self.origins[chosen])
