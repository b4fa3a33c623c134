"""Option dataclasses shared by the CLI, the trainer and checkpoints (as plain dicts)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from seqgen.errors import UserError

T = TypeVar("T")

CELLS = ("lstm", "gru", "rnn", "rnn-relu")


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: dict) -> T:
    """Build ``cls`` from a dict, ignoring keys it does not know (older/newer checkpoints)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_duration(text: str | None) -> float | None:
    """'90s', '10m', '2h' or a bare number of seconds → seconds."""
    if text is None or text == "":
        return None
    match = _DURATION_RE.match(str(text))
    if not match:
        raise UserError(f"cannot read duration {text!r}: use e.g. 90s, 10m or 2h")
    value, unit = match.groups()
    return float(value) * _UNIT_SECONDS[(unit or "s").lower()]


@dataclass
class LMConfig:
    vocab_size: int
    cell: str = "lstm"
    embed: int = 256
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.1
    tie_weights: bool = False
    init: str = "default"

    def __post_init__(self) -> None:
        check_cell(self.cell)
        if self.init not in ("default", "identity"):
            raise UserError(f"unknown --init {self.init!r}: choose default or identity")


def check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise UserError(f"unknown --cell {cell!r}: choose one of {', '.join(CELLS)}")


@dataclass
class TrainConfig:
    """What the shared trainer needs; every task fills it from its CLI options."""

    out_dir: str = "checkpoints/lm"
    batch_size: int = 32
    epochs: int | None = None
    max_steps: int | None = None
    time_budget: float | None = None
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    clip: float = 1.0
    eval_every: int | None = 200
    patience: int | None = None
    select_metric: str = "loss"
    device: str = "auto"
    seed: int = 1234
    log_every: int = 10
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise UserError(f"unknown --optimizer {self.optimizer!r}: choose adamw or sgd")
        if self.schedule not in ("cosine", "plateau", "constant"):
            raise UserError(
                f"unknown --schedule {self.schedule!r}: choose cosine, plateau or constant"
            )
        for name in ("batch_size", "epochs", "max_steps", "eval_every", "patience"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise UserError("--time-budget must be positive")
