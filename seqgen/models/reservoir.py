"""Echo state networks (Jaeger 2001): a large fixed random recurrent reservoir of leaky
units, h_t = (1 − α) h_{t−1} + α tanh(W_in x_t + W h_{t−1} + b), whose spectral radius is set,
read by a linear readout that is the only thing fitted: by ridge regression in closed form,
no backpropagation.

The readout is solved in float64 from accumulated XᵀX and XᵀY, so a long series (or many) is
read in pieces and never needs its whole state matrix in memory.
"""

from __future__ import annotations

import torch
from torch import nn


def reservoir_matrix(units: int, density: float, spectral_radius: float,
                     generator: torch.Generator) -> torch.Tensor:
    """A sparse random (units, units) matrix with exactly round(density · units²) non-zero
    weights, uniform in [−1, 1], scaled so that its largest |eigenvalue| is
    ``spectral_radius``."""
    count = max(1, round(density * units * units))
    weights = torch.zeros(units * units, dtype=torch.float64, device="cpu")
    where = torch.randperm(units * units, generator=generator, device="cpu")[:count]
    weights[where] = torch.rand(count, generator=generator, dtype=torch.float64,
                                device="cpu") * 2 - 1
    matrix = weights.view(units, units)
    radius = float(torch.linalg.eigvals(matrix).abs().max())
    if radius > 0:
        matrix = matrix * (spectral_radius / radius)
    return matrix


class Reservoir(nn.Module):
    """The fixed part: input weights, recurrent weights and bias, as buffers (saved in the
    checkpoint, never trained)."""

    def __init__(self, inputs: int, units: int, spectral_radius: float, leak_rate: float,
                 input_scaling: float, density: float, bias_scaling: float, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.leak_rate = leak_rate
        self.register_buffer("recurrent", reservoir_matrix(units, density, spectral_radius,
                                                           generator).float())
        self.register_buffer("input_weights", (torch.rand(
            units, inputs, generator=generator, device="cpu") * 2 - 1) * input_scaling)
        self.register_buffer("bias", (torch.rand(units, generator=generator, device="cpu")
                                      * 2 - 1) * bias_scaling)

    @property
    def units(self) -> int:
        return self.recurrent.size(0)

    def step(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One leaky update: (B, units), (B, inputs) → (B, units)."""
        pre = x @ self.input_weights.T + state @ self.recurrent.T + self.bias
        return (1 - self.leak_rate) * state + self.leak_rate * torch.tanh(pre)

    @torch.no_grad()
    def run(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Every state while reading x (B, T, inputs): (B, T, units), from zeros (or
        ``state``)."""
        state = x.new_zeros(len(x), self.units) if state is None else state
        states = []
        inputs = x @ self.input_weights.T + self.bias  # the input's share, all at once
        for t in range(x.size(1)):
            state = (1 - self.leak_rate) * state + self.leak_rate * torch.tanh(
                inputs[:, t] + state @ self.recurrent.T)
            states.append(state)
        return torch.stack(states, 1) if states else x.new_zeros(len(x), 0, self.units)


class RidgeReadout:
    """Accumulates XᵀX and XᵀY in float64 (X: the states with a 1 for the intercept) and
    solves (XᵀX + λI) W = XᵀY; the intercept is not penalised."""

    def __init__(self, features: int, outputs: int):
        self.xtx = torch.zeros(features + 1, features + 1, dtype=torch.float64)
        self.xty = torch.zeros(features + 1, outputs, dtype=torch.float64)
        self.count = 0

    @staticmethod
    def design(states: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(len(states), 1, dtype=torch.float64, device=states.device)
        return torch.cat([ones, states.double()], 1)

    def add(self, states: torch.Tensor, targets: torch.Tensor) -> None:
        """(N, features) states and their (N, outputs) targets."""
        x = self.design(states).cpu()
        self.xtx += x.T @ x
        self.xty += x.T @ targets.double().cpu()
        self.count += len(x)

    def solve(self, ridge: float) -> torch.Tensor:
        """The (features + 1, outputs) readout, the intercept first."""
        penalty = torch.eye(len(self.xtx), dtype=torch.float64) * ridge
        penalty[0, 0] = 0.0
        return torch.linalg.solve(self.xtx + penalty, self.xty)


class EchoStateClassifier(nn.Module):
    """A reservoir read over each sequence to its own end, its states pooled (their mean, or
    the last), and a ridge readout of the classes' scores (fitted in closed form, one-hot
    targets); the probabilities are the scores' softmax."""

    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.reservoir = Reservoir(c.inputs, c.units, c.spectral_radius, c.leak_rate,
                                   c.input_scaling, c.density, c.bias_scaling, c.seed)
        self.register_buffer("readout", torch.zeros(c.units + 1, c.outputs,
                                                    dtype=torch.float64))

    def features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, inputs) padded values (or (B, T) token ids, read one-hot), (B,) lengths →
        (B, units)."""
        if not x.is_floating_point():
            x = torch.nn.functional.one_hot(x, self.config.inputs)
        states = self.reservoir.run(x.float())
        steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)
        mask = (steps < lengths.to(x.device).unsqueeze(1)).unsqueeze(-1)
        if self.config.features == "last":
            index = (lengths.to(x.device) - 1).view(-1, 1, 1).expand(-1, 1, states.size(2))
            return states.gather(1, index).squeeze(1)
        return (states * mask).sum(1) / lengths.to(x.device).unsqueeze(1).float()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return RidgeReadout.design(self.features(x, lengths)) @ self.readout
