"""The long-time-lag problems that motivated the LSTM (Hochreiter & Schmidhuber 1997),
generated on the fly: the answer at the end of a sequence depends on inputs about ``lag``
steps back, and on nothing in between.

- ``adding``: each step reads a number in [0, 1) and a marker; two steps are marked, one in
  each half of the sequence; the answer is the sum of the two marked numbers (a regression;
  always answering 1 scores a mean squared error of about 0.167).
- ``copy``: the first of ``lag + 2`` symbols is one of 8; then come ``lag`` noise symbols and
  a recall marker; the answer is the first symbol (chance: 1 in 8).
- ``order`` (temporal order): ``lag`` symbols, mostly noise, with an X or a Y at one step in
  the first fifth and another in the sixth tenth; the answer is which came in which order
  (XX, XY, YX, YY; chance: 1 in 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqgen.errors import UserError

COPY_SYMBOLS, COPY_NOISE = 8, 2
ORDER_NOISE = 4


@dataclass(frozen=True)
class LongLagSpec:
    """What a task's model reads and answers, and when it counts as solved."""

    name: str
    outputs: int  # classes, or 1 for a number
    vocab_size: int | None = None  # token inputs
    input_dim: int | None = None  # real-valued inputs
    metric: str = "accuracy"  # the validation figure that decides
    solved_at: float = 0.99  # accuracy at least this, or mean squared error at most this
    min_lag: int = 2

    @property
    def regression(self) -> bool:
        return self.outputs == 1


SPECS = {
    "adding": LongLagSpec("adding", 1, input_dim=2, metric="mse", solved_at=0.01),
    "copy": LongLagSpec("copy", COPY_SYMBOLS, vocab_size=1 + COPY_SYMBOLS + COPY_NOISE + 1,
                        min_lag=1),
    "order": LongLagSpec("order", 4, vocab_size=1 + ORDER_NOISE + 2, min_lag=10),
}


def spec_of(name: str, lag: int) -> LongLagSpec:
    if name not in SPECS:
        raise UserError(f"unknown experiment {name!r}: choose one of {', '.join(SPECS)}")
    spec = SPECS[name]
    if not isinstance(lag, int) or lag < spec.min_lag:
        raise UserError(f"--lag must be a whole number of at least {spec.min_lag} for {name}, "
                        f"got {lag!r}")
    return spec


def _positions(n: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """One position per sequence in [low, high)."""
    return torch.randint(low, max(low + 1, high), (n,), generator=generator)


def generate(name: str, lag: int, n: int, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences and their answers: (n, T, 2) floats and (n,) floats for adding, (n, T)
    token ids (from 1; 0 is padding) and (n,) class ids for the others."""
    rows = torch.arange(n)
    if name == "adding":
        values = torch.rand(n, lag, generator=generator)
        marks = torch.zeros(n, lag)
        first = _positions(n, 0, lag // 2, generator)
        second = _positions(n, lag // 2, lag, generator)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        return torch.stack([values, marks], -1), values[rows, first] + values[rows, second]
    if name == "copy":
        symbol = torch.randint(0, COPY_SYMBOLS, (n,), generator=generator)
        noise = 1 + COPY_SYMBOLS + torch.randint(0, COPY_NOISE, (n, lag), generator=generator)
        recall = torch.full((n, 1), 1 + COPY_SYMBOLS + COPY_NOISE)
        return torch.cat([(symbol + 1).unsqueeze(1), noise, recall], 1), symbol
    if name == "order":
        tokens = 1 + torch.randint(0, ORDER_NOISE, (n, lag), generator=generator)
        which = torch.randint(0, 2, (n, 2), generator=generator)  # 0: X, 1: Y
        x_id = 1 + ORDER_NOISE
        first = _positions(n, lag // 10, lag // 5, generator)
        second = _positions(n, lag // 2, 6 * lag // 10, generator)
        tokens[rows, first] = x_id + which[:, 0]
        tokens[rows, second] = x_id + which[:, 1]
        return tokens, which[:, 0] * 2 + which[:, 1]
    raise UserError(f"unknown experiment {name!r}: choose one of {', '.join(SPECS)}")


class LongLagBatches:
    """Batches of (inputs, lengths, answers) drawn fresh for every step, the same ones for the
    same seed, epoch and position (so a run repeats exactly); an epoch is ``per_epoch``
    batches."""

    def __init__(self, name: str, lag: int, batch_size: int, seed: int = 0,
                 per_epoch: int = 100):
        self.name, self.lag, self.batch_size = name, lag, batch_size
        self.seed, self.per_epoch = seed, per_epoch

    def __len__(self) -> int:
        return self.per_epoch

    def batch(self, epoch: int, index: int):
        mixed = ((self.seed * 1_000_003 + epoch) * 1_000_003 + index) % (2**63 - 1)
        generator = torch.Generator().manual_seed(mixed)
        inputs, answers = generate(self.name, self.lag, self.batch_size, generator)
        return inputs, torch.full((self.batch_size,), inputs.size(1)), answers

    def batches(self, epoch: int = 0, start: int = 0):
        for index in range(start, self.per_epoch):
            yield self.batch(epoch, index)
