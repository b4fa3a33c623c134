"""A moving average of a model's weights (Polyak averaging, ``--ema``). Late in a run the
weights as trained wander around a minimum, each step's noise on top; their average sits
nearer its centre. The average is what validation scores, ``best.pt`` keeps and every
command loads; training itself goes on from the weights as trained, which checkpoints keep
beside it so that ``--resume`` continues exactly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.model, self.decay = model, decay
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.floats = [k for k, v in self.average.items() if v.is_floating_point()]
        self.counters = [k for k in self.average if k not in set(self.floats)]
        self.updates = 0

    def update(self) -> None:
        """After an optimiser step. Early on the decay is lower ((1 + n) / (10 + n) after n
        updates), so the random initial weights are soon forgotten."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = self.model.state_dict()
        with torch.no_grad():
            torch._foreach_lerp_([self.average[k] for k in self.floats],
                                 [current[k] for k in self.floats], 1.0 - decay)
            for k in self.counters:  # batch norm's step counts follow the model
                self.average[k].copy_(current[k])

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the model for the block, then the trained ones back (in
        place: the optimiser keeps its parameters)."""
        trained = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.average)
        try:
            yield
        finally:
            self.model.load_state_dict(trained)

    def load(self, average: dict[str, torch.Tensor], updates: int) -> None:
        for k, v in self.average.items():
            v.copy_(average[k])
        self.updates = updates
