"""The long-lag experiments: train a many-to-one model on a generated task with the shared
trainer until it is solved (or the budget ends), and measure how the gradient reaching each
time step shrinks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from seqgen.config import ClassifierConfig, ReservoirConfig, TrainConfig, to_dict
from seqgen.data.long_lag import LongLagBatches, LongLagSpec, generate, spec_of
from seqgen.errors import UserError
from seqgen.models.building import device_of
from seqgen.models.classifier import SequenceClassifier
from seqgen.models.reservoir import EchoStateClassifier, RidgeReadout
from seqgen.progress import ProgressReporter
from seqgen.runs import Run
from seqgen.tasks.registry import TaskSpec, register
from seqgen.training import check_training, guard_out_dir

TASK = "experiment"
VAL_SEQUENCES = 1024
# Table rows: a cell, or "irnn": a ReLU RNN started from the identity (Le et al. 2015).
# "leaky": leaky-integrator units, trained; "esn": an echo state network (a fixed reservoir,
# its readout fitted in closed form on ESN_SEQUENCES sequences).
ROWS = {"rnn": ("rnn", "default"), "gru": ("gru", "default"), "lstm": ("lstm", "default"),
        "irnn": ("rnn-relu", "identity"), "rnn-relu": ("rnn-relu", "default"),
        "leaky": ("leaky", "default"), "esn": ("esn", "default")}
ESN_SEQUENCES = 10_000


def answer_loss(spec: LongLagSpec, output: torch.Tensor, answers: torch.Tensor,
                reduction: str = "sum") -> torch.Tensor:
    """Squared error of the number (adding) or cross-entropy of the class."""
    if spec.regression:
        return F.mse_loss(output.float().squeeze(-1), answers.float(), reduction=reduction)
    return F.cross_entropy(output.float(), answers, reduction=reduction)


class LongLagTask:
    """The trainer's view of an experiment: the answer's loss; validation on a fixed set."""

    def __init__(self, spec: LongLagSpec):
        self.spec = spec

    def loss(self, model, batch, carry):
        inputs, lengths, answers = batch
        return answer_loss(self.spec, model(inputs, lengths), answers), None

    def count_targets(self, batch) -> int:
        return len(batch[2])

    @torch.no_grad()
    def evaluate(self, model, data: list, final: bool = False) -> dict[str, float]:
        device = device_of(model)
        total, right, count = 0.0, 0, 0
        for inputs, lengths, answers in data:
            output = model(inputs.to(device), lengths)
            answers = answers.to(device)
            total += float(answer_loss(self.spec, output, answers))
            if not self.spec.regression:
                right += int((output.argmax(-1) == answers).sum())
            count += len(answers)
        if self.spec.regression:
            return {"mse": total / count}
        return {"loss": total / count, "accuracy": right / count}

    def preview(self, model) -> list[str]:
        return []


def gradient_norms(model: SequenceClassifier, spec: LongLagSpec, lag: int,
                   sequences: int = 64, seed: int = 0) -> list[float]:
    """‖∂L/∂h_t‖ for every time step t, for one example's loss, averaged over ``sequences``
    examples: how much of the error signal reaches each step back from the answer."""
    inputs, answers = generate(spec.name, lag, sequences, torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device
    # In training mode (the experiments' models have no dropout): cuDNN computes an RNN's
    # backward pass only there.
    with torch.enable_grad():
        output, hidden = model.step_states(inputs.to(device))
        loss = answer_loss(spec, output, answers.to(device))  # summed: per-example gradients
        grads = torch.autograd.grad(loss, hidden)
    # each grad: (layers, B, H) → each example's norm over layers and units, then the mean
    return [float(g.float().transpose(0, 1).flatten(1).norm(dim=1).mean()) for g in grads]


@dataclass
class ExperimentResult:
    task: str
    lag: int
    row: str  # the cell, or irnn
    solved: bool
    steps: int  # at the validation that found it solved, or in all
    seconds: float  # training time to that point
    value: float | None  # the deciding validation figure at the end
    metric: str
    grad_norms: dict[str, list[float]] = field(default_factory=dict)  # "start" / "end"


def _validation(name: str, lag: int, seed: int) -> list:
    return list(LongLagBatches(name, lag, 128, seed=seed + 1_000_000,
                               per_epoch=VAL_SEQUENCES // 128).batches())


def _reservoir(name: str, lag: int, spec: LongLagSpec, run: Run, units: int,
               leak_rate: float) -> ExperimentResult:
    """An echo state network on the task: its last state's readout fitted in closed form on
    ``ESN_SEQUENCES`` generated sequences; "solved" as a trained model is, by validation."""
    config = ReservoirConfig(spec.vocab_size or spec.input_dim, spec.outputs, units=units,
                             leak_rate=leak_rate, features="last", ridge=1e-4,
                             seed=run.config.seed)
    model = run.build(lambda: EchoStateClassifier(config))
    started = time.perf_counter()
    readout = RidgeReadout(units, spec.outputs)
    train = LongLagBatches(name, lag, 500, run.config.seed, per_epoch=ESN_SEQUENCES // 500)
    for inputs, lengths, answers in train.batches():
        target = answers.double().unsqueeze(1) if spec.regression else F.one_hot(
            answers, spec.outputs).double()
        readout.add(model.features(inputs, lengths), target)
    model.readout.copy_(readout.solve(config.ridge))
    seconds = time.perf_counter() - started
    result = run.fit(model, LongLagTask(spec), train, _validation(name, lag, run.config.seed),
                     {"model_config": to_dict(config)},
                     f"echo state network, {units} units (leak {leak_rate:g}), readout in "
                     "closed form")
    value = (result.best_metrics or {}).get(spec.metric)
    solved = value is not None and (value <= spec.solved_at if spec.regression
                                    else value >= spec.solved_at)
    return ExperimentResult(name, lag, "esn", solved, 0, seconds, value, spec.metric)


def run_experiment(name: str, lag: int, row: str, train_config: TrainConfig,
                   hidden: int = 128, layers: int = 1, grad_norms: bool = False,
                   reporter: ProgressReporter | None = None,
                   overwrite: bool = False, leak_rate: float = 0.3,
                   units: int = 500) -> ExperimentResult:
    """Train one model on one task until solved or out of budget."""
    spec = spec_of(name, lag)
    if row not in ROWS:
        raise UserError(f"unknown cell {row!r}: choose from {', '.join(ROWS)}")
    cell, init = ROWS[row]
    run = Run(TASK, train_config.replace(select_metric=spec.metric, stop_at=spec.solved_at),
              overwrite=overwrite, reporter=reporter)
    run.define({"experiment": name, "lag": lag, "row": row})
    if row == "esn":
        return _reservoir(name, lag, spec, run, units, leak_rate)
    config = ClassifierConfig(spec.outputs, vocab_size=spec.vocab_size,
                              input_dim=spec.input_dim, cell=cell, embed=16, hidden=hidden,
                              layers=layers, bidirectional=False, dropout=0.0, pool="last",
                              init=init, leak_rate=leak_rate)
    model = run.build(lambda: SequenceClassifier(config))
    norms = {}
    if grad_norms:
        norms["start"] = gradient_norms(model, spec, lag, seed=run.config.seed)
    result = run.fit(model, LongLagTask(spec),
                     LongLagBatches(name, lag, run.config.batch_size, run.config.seed),
                     _validation(name, lag, run.config.seed), {"model_config": to_dict(config)},
                     f"1×{hidden} {row}" if layers == 1 else f"{layers}×{hidden} {row}")
    if result.reason == "interrupted":
        raise KeyboardInterrupt
    if grad_norms:
        norms["end"] = gradient_norms(model, spec, lag, seed=run.config.seed)
    s = run.trainer.state
    final = next((h for h in reversed(run.trainer.history) if spec.metric in h), {})
    solved = result.reason == "target"
    return ExperimentResult(name, lag, row, solved, s.best_step if solved else s.step,
                            s.train_time, final.get(spec.metric), spec.metric, norms)


def run_table(name: str, lags: Sequence[int], rows: Sequence[str], train_config: TrainConfig,
              hidden: int = 128, layers: int = 1, overwrite: bool = False,
              grad_norms: bool = False, on_result=None, leak_rate: float = 0.3,
              units: int = 500) -> list[ExperimentResult]:
    """Every row (cell) at every lag, each in its own folder below ``out_dir``; all folders
    are checked before the first run starts, and each is replaced (``overwrite``) only as
    its own run starts."""
    lags, rows = list(dict.fromkeys(lags)), list(dict.fromkeys(rows))
    for lag in lags:
        spec_of(name, lag)
    for row in rows:
        if row not in ROWS:
            raise UserError(f"unknown cell {row!r}: choose from {', '.join(ROWS)}")
    root = Path(train_config.out_dir)
    single = len(lags) == 1 and len(rows) == 1
    folders = {(row, lag): root if single else root / f"{name}-{row}-lag{lag}"
               for row in rows for lag in lags}
    for folder in folders.values():
        guard_out_dir(folder, resume=False, overwrite=overwrite)
    check_training(train_config)
    results = []
    for row in rows:
        for lag in lags:
            config = train_config.replace(out_dir=str(folders[row, lag]))
            result = run_experiment(name, lag, row, config, hidden, layers, grad_norms,
                                    overwrite=overwrite, leak_rate=leak_rate, units=units)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


register(TaskSpec(TASK, "long-lag experiment"))
