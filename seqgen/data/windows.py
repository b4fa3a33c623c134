"""From series to what a forecaster reads: per-series scaling (fitted on the past only, undone
on output), calendar features, the split into training and validation that never lets a
validation value into a training window, and the windows themselves, batched.

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

SCALES = ("standard", "robust", "none")
CALENDARS = ("none", "auto")


# ------------------------------------------------------------------------------ scaling
@dataclass(frozen=True)
class Scaler:
    """``(x - center) / scale`` per column, fitted on a series' past."""

    center: np.ndarray
    scale: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.scale

    def undo(self, values: np.ndarray, column: int = 0) -> np.ndarray:
        return values * self.scale[column] + self.center[column]


def fit_scaler(values: np.ndarray, kind: str) -> Scaler:
    """Each column of ``values`` (T, C): standard (mean, deviation), robust (median,
    interquartile range) or none; a constant column keeps a scale of 1."""
    values = values.reshape(len(values), -1)
    width = values.shape[1]
    if kind == "none" or len(values) == 0:
        return Scaler(np.zeros(width), np.ones(width))
    if kind == "robust":
        center = np.median(values, axis=0)
        spread = np.subtract(*np.percentile(values, [75, 25], axis=0))
    else:
        center, spread = values.mean(axis=0), values.std(axis=0)
    return Scaler(center, np.where(spread > 1e-12, spread, 1.0))


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
    """One series as a model reads it at one forecast origin: its scaled inputs and the
    scaler that undoes its output."""

    inputs: np.ndarray  # (T, inputs): scaled target, scaled covariates, calendar
    future: np.ndarray  # (T + H, future_inputs): calendar, the horizon's included
    target: np.ndarray  # (T,) scaled target
    scaler: Scaler  # of the target and covariates


def prepare(series: Series, origin: int, horizon: int, scale: str, calendar: str,
            step: Step | None) -> Prepared:
    """``series`` scaled by what came before ``origin`` (the scaler never sees a value it
    is asked to forecast); the calendar runs ``horizon`` steps past the end."""
    past = np.column_stack([series.target[:origin], series.covariates[:origin]])
    scaler = fit_scaler(past, scale)
    columns = scaler.apply(np.column_stack([series.target, series.covariates]))
    dates = series.dates
    if dates is not None and step is not None:
        dates = np.concatenate([dates, step.after(dates[-1], horizon)])
        cal = calendar_features(dates, step, calendar)
    else:
        cal = np.zeros((len(series) + horizon, 0))
    inputs = np.column_stack([columns, cal[:len(series)]]) if cal.shape[1] else columns
    return Prepared(inputs.astype(np.float32), cal.astype(np.float32),
                    columns[:, 0].astype(np.float32), scaler)


def window_inputs(prepared: Prepared, origin: int, input_size: int, horizon: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The window before ``origin`` (input_size, inputs) and the horizon's known inputs."""
    x = prepared.inputs[origin - input_size:origin]
    return x, prepared.future[origin:origin + horizon]


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
    (x (B, L, inputs), future (B, H, future_inputs), targets (B, H)); the same batches for
    the same seed and epoch."""

    def __init__(self, prepared: list[Prepared], split: Split, input_size: int, horizon: int,
                 batch_size: int, seed: int = 0):
        self.input_size, self.horizon = input_size, horizon
        self.batch_size, self.seed = batch_size, seed
        starts, origins = [], []
        offset = 0
        inputs, future, target = [], [], []
        for p, end, held in zip(prepared, split.train_end, split.held_out):
            n = len(p.target)
            if not held:
                origins.append(offset + np.arange(input_size, end - horizon + 1))
            inputs.append(p.inputs)
            target.append(p.target)
            future.append(p.future[:n])
            starts.append(offset)
            offset += n
        self.origins = np.concatenate(origins) if origins else np.zeros(0, dtype=np.int64)
        self.inputs = np.concatenate(inputs)
        self.future = np.concatenate(future)
        self.target = np.concatenate(target)

    def __len__(self) -> int:
        return -(-len(self.origins) // self.batch_size)

    def batch(self, origins: np.ndarray):
        back = origins[:, None] + np.arange(-self.input_size, 0)
        ahead = origins[:, None] + np.arange(self.horizon)
        return (torch.from_numpy(self.inputs[back]), torch.from_numpy(self.future[ahead]),
                torch.from_numpy(self.target[ahead]))

    def batches(self, epoch: int = 0, start: int = 0):
        order = np.random.default_rng(self.seed * 1000 + epoch).permutation(len(self.origins))
        for b in range(start, len(self)):
            yield self.batch(self.origins[order[b * self.batch_size:(b + 1) * self.batch_size]])
