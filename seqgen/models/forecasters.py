"""Forecasters: a window of past steps → the next ``horizon`` values (or, with quantiles, a
value per quantile of each), in the scaled units the task feeds them.

- recurrent stacks (LSTM / GRU / RNN, optionally behind a 1-D convolution) with three heads:
  ``direct`` (the last state → every horizon value at once; seq-to-vector), ``seq2seq`` (a
  decoder that writes the horizon step by step from the encoder's state, teacher-forced in
  training, with scheduled sampling), ``recursive`` (one step ahead, its forecast fed back);
- ``wavenet``: stacks of causal dilated convolutions with gated tanh·σ units, residual and
  skip connections (van den Oord et al. 2016), the last step's skip sum → the horizon;
- ``linear``: the window, flattened → the horizon (the baseline of a trained model);
- ``esn``: an echo state network, read over the whole history (``EchoStateForecaster``);
- the baselines (naive, seasonal naive, Naive2) hold no weights: the task computes them from
  each series' whole history (``seqgen.models.baselines``).

Every model's ``forward(x, future, targets=None, teacher_forcing=1.0)`` takes ``x`` (B, L,
inputs), ``future`` (B, H, future_inputs) and, for teacher forcing, the targets (B, H); it
gives (B, H, outputs). With several quantiles the outputs are ordered by construction (the
lowest, then positive steps up).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqgen.config import BASELINE_FORECASTERS, ForecastConfig
from seqgen.models.recurrent import make_rnn
from seqgen.models.reservoir import Reservoir, RidgeReadout


def ordered(raw: torch.Tensor) -> torch.Tensor:
    """(…, Q) free outputs → Q non-decreasing quantiles: the first, then softplus steps."""
    if raw.size(-1) == 1:
        return raw
    return torch.cat([raw[..., :1], raw[..., :1] + F.softplus(raw[..., 1:]).cumsum(-1)], -1)


class Highway(nn.Module):
    """LSTNet's autoregressive highway (Lai et al. 2018): a linear forecast from the
    window's target values, added to the network's, so that the network learns what a linear
    model cannot and the forecast follows the series' level and scale."""

    def __init__(self, config: ForecastConfig):
        super().__init__()
        self.horizon, self.outputs = config.horizon, config.outputs
        self.linear = nn.Linear(config.input_size, config.horizon * config.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[..., 0]).view(len(x), self.horizon, self.outputs)


def with_highway(module: nn.Module, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The network's raw outputs (B, H, Q), plus the highway's where the model has one."""
    return raw + module.highway(x) if module.highway is not None else raw


def middle(outputs: torch.Tensor, quantiles: tuple[float, ...]) -> torch.Tensor:
    """The point forecast of (…, Q) outputs: the quantile nearest the median."""
    if not quantiles:
        return outputs[..., 0]
    index = min(range(len(quantiles)), key=lambda k: abs(quantiles[k] - 0.5))
    return outputs[..., index]


class RecurrentForecaster(nn.Module):
    def __init__(self, config: ForecastConfig):
        super().__init__()
        c = self.config = config
        width = c.inputs
        self.conv = None
        if c.conv:  # strided, so the recurrence reads half as many steps (Géron's conv + GRU)
            self.conv = nn.Conv1d(c.inputs, c.conv, kernel_size=4, stride=2)
            width = c.conv
        self.encoder = make_rnn(c.model, width, c.hidden, c.layers, c.dropout, forget_bias=None,
                                leak_rate=c.leak_rate)
        self.dropout = nn.Dropout(c.dropout)
        self.highway = Highway(c) if c.highway else None
        if c.decoder == "direct":
            self.head = nn.Linear(c.hidden + c.horizon * c.future_inputs,
                                  c.horizon * c.outputs)
        else:
            if c.decoder == "seq2seq":
                self.decoder = make_rnn(c.model, 1 + c.future_inputs, c.hidden, c.layers,
                                        c.dropout, forget_bias=None, leak_rate=c.leak_rate)
            self.head = nn.Linear(c.hidden, c.outputs)

    def encode(self, x: torch.Tensor):
        if self.conv is not None:
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.encoder(x)

    def forward(self, x, future, targets=None, teacher_forcing: float = 1.0):
        c = self.config
        if c.decoder == "direct":
            outputs, _ = self.encode(x)
            last = self.dropout(outputs[:, -1])
            if c.future_inputs:
                last = torch.cat([last, future.flatten(1)], -1)
            raw = self.head(last).view(len(x), c.horizon, c.outputs)
            return ordered(with_highway(self, raw, x))
        if c.decoder == "seq2seq":
            return self._seq2seq(x, future, targets, teacher_forcing)
        return self._recursive(x, future, targets)

    def _seq2seq(self, x, future, targets, teacher_forcing):
        """The decoder reads the previous value (the last observed one first) and the step's
        known inputs; the whole horizon in one fused call when teacher-forced."""
        c = self.config
        _, state = self.encode(x)
        previous = x[:, -1:, 0]  # (B, 1): the target is the first input
        if targets is not None and teacher_forcing >= 1:
            fed = torch.cat([previous, targets[:, :-1]], 1).unsqueeze(-1)
            inputs = torch.cat([fed, future], -1) if c.future_inputs else fed
            outputs, _ = self.decoder(inputs, state)
            return ordered(with_highway(self, self.head(self.dropout(outputs)), x))
        steps = []
        highway = self.highway(x) if self.highway is not None else None
        for k in range(c.horizon):
            step_in = previous.unsqueeze(-1)
            if c.future_inputs:
                step_in = torch.cat([step_in, future[:, k:k + 1]], -1)
            output, state = self.decoder(step_in, state)
            raw = self.head(self.dropout(output))
            if highway is not None:
                raw = raw + highway[:, k:k + 1]
            out = ordered(raw)  # (B, 1, Q)
            steps.append(out)
            guess = middle(out, c.quantiles).detach()
            if targets is not None and teacher_forcing > 0:
                keep = torch.rand(len(x), 1, device=x.device) < teacher_forcing
                previous = torch.where(keep, targets[:, k:k + 1], guess)
            else:
                previous = guess
        return torch.cat(steps, 1)

    def _recursive(self, x, future, targets):
        """One step ahead from every step; in training the horizon is read teacher-forced in
        the same call, at forecast time each forecast is the next step's input."""
        c = self.config
        if targets is not None:
            fed = targets[:, :-1].unsqueeze(-1)
            if c.future_inputs:
                fed = torch.cat([fed, future[:, :-1]], -1)
            outputs, _ = self.encode(torch.cat([x, fed], 1))
            return ordered(self.head(self.dropout(outputs[:, -c.horizon:])))
        outputs, state = self.encode(x)
        out = ordered(self.head(outputs[:, -1:]))
        steps = [out]
        for k in range(1, c.horizon):
            step_in = middle(out, c.quantiles).unsqueeze(-1)
            if c.future_inputs:
                step_in = torch.cat([step_in, future[:, k - 1:k]], -1)
            output, state = self.encoder(step_in, state)
            out = ordered(self.head(output))
            steps.append(out)
        return torch.cat(steps, 1)


class WaveNetBlock(nn.Module):
    """A gated causal dilated convolution with its residual and skip 1×1 convolutions."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.filter = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.gate = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        padded = F.pad(x, (self.pad, 0))  # on the left only: nothing from the future
        z = torch.tanh(self.filter(padded)) * torch.sigmoid(self.gate(padded))
        return x + self.residual(z), self.skip(z)


class WaveNet(nn.Module):
    def __init__(self, config: ForecastConfig):
        super().__init__()
        c = self.config = config
        self.input = nn.Conv1d(c.inputs, c.channels, 1)
        self.blocks = nn.ModuleList(WaveNetBlock(c.channels, c.kernel, d)
                                    for _ in range(c.stacks) for d in c.dilations)
        self.output = nn.Conv1d(c.channels, c.channels, 1)
        self.dropout = nn.Dropout(c.dropout)
        self.highway = Highway(c) if c.highway else None
        self.head = nn.Linear(c.channels + c.horizon * c.future_inputs, c.horizon * c.outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, inputs) → (B, L, channels): each step's output depends only on the steps
        up to it (causal), at most ``receptive_field()`` of them."""
        h = self.input(x.transpose(1, 2))
        skips = 0
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip
        return torch.relu(self.output(torch.relu(skips))).transpose(1, 2)

    def forward(self, x, future, targets=None, teacher_forcing: float = 1.0):
        c = self.config
        last = self.dropout(self.features(x)[:, -1])
        if c.future_inputs:
            last = torch.cat([last, future.flatten(1)], -1)
        return ordered(with_highway(self, self.head(last).view(len(x), c.horizon, c.outputs), x))


class LinearForecaster(nn.Module):
    def __init__(self, config: ForecastConfig):
        super().__init__()
        c = self.config = config
        self.head = nn.Linear(c.input_size * c.inputs + c.horizon * c.future_inputs,
                              c.horizon * c.outputs)

    def forward(self, x, future, targets=None, teacher_forcing: float = 1.0):
        c = self.config
        flat = x.flatten(1)
        if c.future_inputs:
            flat = torch.cat([flat, future.flatten(1)], -1)
        return ordered(self.head(flat).view(len(x), c.horizon, c.outputs))


class EchoStateForecaster(nn.Module):
    """An echo state network: a fixed reservoir read over a series' whole history, and a
    linear readout of its last state, fitted in closed form (``seqgen.tasks.echo_state``):
    the whole horizon at once (``direct``) or one step, fed back as the next input, horizon
    times (``recursive``: the reservoir runs free)."""

    def __init__(self, config: ForecastConfig):
        super().__init__()
        c = self.config = config
        self.reservoir = Reservoir(c.inputs, c.units, c.spectral_radius, c.leak_rate,
                                   c.input_scaling, c.density, c.bias_scaling, c.seed)
        outputs = c.horizon if c.decoder == "direct" else 1
        self.register_buffer("readout", torch.zeros(c.units + 1, outputs, dtype=torch.float64))

    def read(self, states: torch.Tensor) -> torch.Tensor:
        """(N, units) states → (N, readout outputs), in float64."""
        return RidgeReadout.design(states) @ self.readout

    @torch.no_grad()
    def forecast(self, states: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        """The forecasts (N, H, 1) from each origin's last state (N, units) and the horizon's
        known inputs (N, H, future_inputs)."""
        c = self.config
        if c.decoder == "direct":
            return self.read(states).unsqueeze(-1)
        steps, state = [], states
        for k in range(c.horizon):
            value = self.read(state)  # (N, 1)
            steps.append(value)
            if k + 1 < c.horizon:
                x = torch.cat([value.to(state.dtype), future[:, k]], -1) if c.future_inputs \
                    else value.to(state.dtype)
                state = self.reservoir.step(state, x)
        return torch.stack(steps, 1)


class Baseline(nn.Module):
    """A baseline as a model: no weights; its forecasts come from each series' history."""

    def __init__(self, config: ForecastConfig):
        super().__init__()
        self.config = config


def build_forecaster(config: ForecastConfig) -> nn.Module:
    if config.model in BASELINE_FORECASTERS:
        return Baseline(config)
    if config.model == "esn":
        return EchoStateForecaster(config)
    if config.model == "wavenet":
        return WaveNet(config)
    if config.model == "linear":
        return LinearForecaster(config)
    return RecurrentForecaster(config)
