"""Echo state networks as forecasters: the reservoir is read over each series' whole history
(teacher-forced: the true values are its inputs), its states are collected, and the readout
is fitted by ridge regression in closed form; forecasts are read from the state at each
origin. The same ``Forecaster`` runs it, so validation, ``forecast``, ``evaluate-forecast``
and ``serve`` are those of every forecaster.

A series is scaled once, by the values its readout was fitted on (standard, robust or none;
``window`` scaling means standard here, since a reservoir reads a whole history, not a
window). The reservoir is nonlinear: the same series read with a scale fitted on a few more
values lands in slightly other states, so the training scale of each series is kept
(``KnownScales``) and used again wherever the series is forecast after it; a series it never
saw is scaled by its past before the first origin asked of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seqgen.data.series import Series
from seqgen.data.windows import Prepared, Scaler, Split, fit_scaler, prepare
from seqgen.models.forecasters import EchoStateForecaster
from seqgen.models.reservoir import RidgeReadout

RIDGES = tuple(10.0 ** k for k in range(-10, 2))  # --ridge auto picks among these

# series name → (center per column, scale per column, number of values it was fitted on)
KnownScales = dict[str, tuple[list[float], list[float], int]]


def _scaler(prepared: Prepared, before: int, scale: str) -> Scaler:
    return fit_scaler(prepared.scaled[:before], "standard" if scale == "window" else scale)


def _known_or_fitted(s: Series, prepared: Prepared, before: int, scale: str,
                     known: KnownScales | None) -> Scaler:
    """The scale the series was trained with, unless it was fitted on values past ``before``
    (that would leak what is forecast); else one fitted on the values before it."""
    if known and s.name in known and known[s.name][2] <= before:
        center, spread, _ = known[s.name]
        return Scaler(np.array(center), np.array(spread))
    return _scaler(prepared, before, scale)


def _inputs(prepared: Prepared, scaler: Scaler, until: int) -> torch.Tensor:
    """The reservoir's inputs up to ``until`` (exclusive): scaled columns and calendar."""
    columns = scaler.apply(prepared.scaled[:until])
    calendar = prepared.future[:until]
    x = np.column_stack([columns, calendar]) if calendar.shape[1] else columns
    return torch.from_numpy(x.astype(np.float32))


def _run_all(model: EchoStateForecaster, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each input sequence's states (T_i, units); sequences of one length run as a batch."""
    device = model.readout.device
    states: list[torch.Tensor | None] = [None] * len(inputs)
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_length.setdefault(len(x), []).append(i)
    for members in by_length.values():
        batch = torch.stack([inputs[i] for i in members]).to(device)
        run = model.reservoir.run(batch)
        for k, i in enumerate(members):
            states[i] = run[k]
    return states


def origin_states(model: EchoStateForecaster, series: Sequence[Series], origins: Sequence[int],
                  scale: str, calendar: str, step, prepared: Sequence[Prepared] | None = None,
                  known: KnownScales | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """The state after reading each series up to just before its origin (N, units), each
    origin's horizon inputs (N, H, future_inputs), and the center and scale (N,) of each
    forecast. A series asked at several origins is read once."""
    c = model.config
    order: dict[int, list[int]] = {}
    for i, s in enumerate(series):
        order.setdefault(id(s), []).append(i)
    groups = list(order.values())
    runs, scalers, futures = [], [], {}
    for members in groups:
        p = prepared[members[0]] if prepared is not None else prepare(
            series[members[0]], c.horizon, calendar, step)
        first, last = min(origins[i] for i in members), max(origins[i] for i in members)
        scaler = _known_or_fitted(series[members[0]], p, first, scale, known)
        runs.append(_inputs(p, scaler, last))
        scalers.append(scaler)
        for i in members:
            futures[i] = p.future[origins[i]:origins[i] + c.horizon]
    states = _run_all(model, runs)
    last_states = torch.empty(len(series), c.units, device=model.readout.device)
    center, spread = np.zeros(len(series)), np.ones(len(series))
    for members, run, scaler in zip(groups, states, scalers):
        for i in members:
            last_states[i] = run[origins[i] - 1]
            center[i], spread[i] = scaler.center[0], scaler.scale[0]
    future = torch.from_numpy(np.stack([futures[i] for i in range(len(series))]).astype(
        np.float32)).to(last_states.device)
    return last_states, future, center, spread


def esn_predict(model: EchoStateForecaster, series: Sequence[Series], origins: Sequence[int],
                scale: str, calendar: str, step, prepared: Sequence[Prepared] | None = None,
                known: KnownScales | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forecasts in the series' units (N, H, 1), and the center and scale of each."""
    states, future, center, spread = origin_states(model, series, origins, scale, calendar,
                                                   step, prepared, known)
    scaled = model.forecast(states, future).cpu().numpy()
    return scaled * spread[:, None, None] + center[:, None, None], center, spread


def accumulate(model: EchoStateForecaster, series: Sequence[Series],
               prepared: Sequence[Prepared], split: Split, scale: str
               ) -> tuple[RidgeReadout, KnownScales]:
    """XᵀX and XᵀY of every training origin past the washout: the state before it, and the
    scaled values the readout must give from there (the horizon, or the next value); and
    the scale each series was read with."""
    c = model.config
    ahead = c.horizon if c.decoder == "direct" else 1
    readout = RidgeReadout(c.units, ahead)
    chosen = [i for i, held in enumerate(split.held_out) if not held]
    inputs, targets, known = [], [], {}
    for i in chosen:
        p, end = prepared[i], split.train_end[i]
        scaler = _scaler(p, end, scale)
        known[series[i].name] = (scaler.center.tolist(), scaler.scale.tolist(), end)
        inputs.append(_inputs(p, scaler, end - ahead))
        targets.append(scaler.apply(p.scaled[:end])[:, 0])
    for i, states, target in zip(chosen, _run_all(model, inputs), targets):
        first = max(1, c.washout)  # the washout's states never reach the readout
        last = split.train_end[i] - ahead
        if last < first:
            continue
        origins = np.arange(first, last + 1)
        window = torch.from_numpy(np.stack([target[o:o + ahead] for o in origins]))
        readout.add(states[origins - 1], window)
    return readout, known
