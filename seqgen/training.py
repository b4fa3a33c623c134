"""The one training loop every task uses.

The trainer knows no task. A task object supplies

- ``loss(model, batch, carry) -> (loss_sum, carry)``: the summed loss of a batch's targets;
  ``carry`` is state handed from one batch to the next (truncated BPTT), reset each epoch;
- ``count_targets(batch) -> int``: how many targets that sum is over;
- ``evaluate(model, data, final) -> dict``: validation metrics, including the selection
  metric; ``final`` asks for the full validation after training (a task may read a fixed
  subset during training, so that validating costs little of the budget);
- ``preview(model) -> list[str]``: a few short generations to show after validation;
- optionally ``set_progress(fraction)``: called before each step with the share of the
  budget used, for what changes over training (scheduled sampling).

Training data supplies ``len(data)`` (batches per epoch) and ``data.batches(epoch, start)``
(exactly ``len(data) - start`` batches, the same ones for the same arguments) so that a
resumed run continues from the exact batch where it stopped.

What a run promises, and where it is kept:

- resume is exact: ``last.pt`` holds the weights, optimiser, ``TrainState``, every process's
  carried state and random generators, and the metric history, all as training continues from
  them (validation and previews run in eval mode on a forked generator, so they change
  nothing); a resumed run ends bit-identical to an uninterrupted one on the CPU;
- nothing non-finite is saved: a step whose gradient norm is not finite is skipped and
  counted, several in a row stop the run, a NaN validation is never the best;
- Ctrl-C (or SIGTERM) stops after the current step and writes ``last.pt``; a second one stops
  at once;
- one host-device synchronisation per step: the gradient norm, read for the finite check
  after the backward pass; losses accumulate on the device and are read when logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shlex
import signal
import sys
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from seqgen.averaging import WeightAverage
from seqgen.checkpoint import load_checkpoint, save_checkpoint
from seqgen.config import TrainConfig, from_dict, option, to_dict
from seqgen.data.prefetch import prefetch
from seqgen.distributed import join_world
from seqgen.errors import UserError
from seqgen.files import atomic_write_text, check_writable_folder
from seqgen.models.recurrent import detach_state
from seqgen.precision import Precision
from seqgen.progress import ProgressReporter, format_rate, format_seconds

LOWER_IS_BETTER = {"loss", "ppl", "bpc", "mse", "mae", "rmse", "smape", "mase", "owa", "msis",
                   "nrmse"}


class Task(Protocol):
    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[torch.Tensor, Any]: ...

    def count_targets(self, batch: Any) -> int: ...

    def evaluate(self, model: nn.Module, data: Any, final: bool = False
                 ) -> dict[str, float]: ...

    def preview(self, model: nn.Module) -> list[str]: ...


class TrainData(Protocol):
    def __len__(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterable[Any]: ...


@dataclass
class TrainState:
    """The counters a resumed run continues from; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0  # wall-clock seconds of the run, validation included
    train_time: float = 0.0  # of which in training steps
    best: float | None = None
    best_metrics: dict[str, float] | None = None
    best_step: int | None = None  # the step best.pt was written at
    bad_evals: int = 0  # validations since the best one (early stopping)
    plateau_wait: int = 0  # validations since the plateau schedule last halved the lr
    plateau_factor: float = 1.0
    skipped_steps: int = 0  # steps whose gradient was not finite

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return from_dict(cls, data)


@dataclass
class FitResult:
    reason: str  # budget | epochs | early-stop | target | interrupted | diverged | fitted
    step: int
    best: float | None
    best_metrics: dict[str, float] | None
    out_dir: Path
    skipped_steps: int = 0
    seconds: float = 0.0  # the run's wall-clock time, validation included


@dataclass
class _Window:
    """Training figures between two log lines; the loss stays on the device until read."""

    loss: torch.Tensor | float = 0.0
    targets: int = 0  # this process's
    tokens: int = 0  # the whole batch's, every process together
    start: float = field(default_factory=time.perf_counter)


# ------------------------------------------------------------------------------ setup helpers
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UserError(f"unknown --device {name!r}: choose auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for, but MPS is not available")
    return torch.device(name)


def check_training(config: TrainConfig) -> torch.device:
    """What can be checked before any data is read: the device, the precision, and that
    --out can be written. Returns the device."""
    device = resolve_device(config.device)
    Precision.resolve(config.precision, device)
    check_writable_folder(config.out_dir, "--out")
    return device


RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl")


def guard_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an earlier run's checkpoints unless told to resume or replace it.
    Nothing is removed here: ``--overwrite`` replaces the run only once training starts
    (``clear_run``), so a mistake found before that leaves it as it was."""
    if resume and overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: "
                        "pass one of them")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a folder")
    existing = [p.name for p in (out_dir / "best.pt", out_dir / "last.pt") if p.exists()]
    if existing and not (resume or overwrite):
        raise UserError(
            f"{out_dir} already holds a run ({', '.join(existing)}): pass --resume to continue "
            "it, --overwrite to replace it, or --out DIR for a new folder"
        )


def clear_run(out_dir: Path) -> None:
    """``--overwrite``: remove the earlier run's files, as the new run starts training."""
    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)


def load_run(out_dir: Path, task: str, run: dict[str, Any],
             explicit: Collection[str] | None = None) -> dict[str, Any]:
    """For ``--resume``: the run's ``last.pt``, once the options that define a run (``run``:
    option name → value) agree with it. ``explicit`` names the options the user gave (the
    CLI's; None: all of ``run`` counts); the others are taken from the run."""
    path = out_dir / "last.pt"
    if not path.is_file():
        raise UserError(f"--resume: {out_dir} holds no last.pt to continue from; train without "
                        "--resume to start a run there, or point --out at an earlier run")
    saved = load_checkpoint(path, task=task)
    if "run" not in saved:
        raise UserError(f"--resume: {path} was written by an older seqgen and cannot be "
                        "continued; train into a new --out")
    defined = saved["run"]
    for name, value in run.items():
        if (explicit is None or name in explicit) and name in defined \
                and defined[name] != value:
            raise UserError(
                f"--resume: {option(name)} {value} differs from the run in {out_dir} "
                f"({option(name)} {defined[name]}); leave the option out to continue that run, "
                "or train into a new --out"
            )
    return saved


BUDGETS = ("epochs", "max_steps", "time_budget")


def resumed_config(saved: dict[str, Any], given: TrainConfig,
                   explicit: Collection[str] | None = None) -> TrainConfig:
    """The run's training options with the ones given now on top: a budget given now
    replaces the run's (so it can extend it), a new --lr applies from the resumed step on.
    Without ``explicit``, the given config counts as it is."""
    if explicit is None:
        return given
    base = from_dict(TrainConfig, saved["train_config"])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    chosen = {name for name in explicit if name in names}
    if chosen & set(BUDGETS):
        chosen |= set(BUDGETS)
    chosen |= {"out_dir", "quiet"}
    return base.replace(**{name: getattr(given, name) for name in chosen})


def build_optimizer(model: nn.Module, config: TrainConfig,
                    device: torch.device) -> torch.optim.Optimizer:
    """AdamW or SGD over the trainable parameters; models may split them in groups with
    their own learning rates (``param_groups(lr)``). ``base_lr`` is each group's peak."""
    groups_fn = getattr(model, "param_groups", None)
    groups = groups_fn(config.lr) if callable(groups_fn) else [
        {"params": [p for p in model.parameters() if p.requires_grad], "lr": config.lr}
    ]
    for group in groups:
        group["base_lr"] = group["lr"]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    # PyTorch's fused AdamW: one kernel over every tensor. On a CPU it is 4x the for-loop
    # update (22 vs 90 ms a step for the translator's 12.9M weights, one thread).
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, **fused)


def move_to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    return obj


def _pinned(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.pin_memory()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_pinned(o) for o in obj)
    return obj


def _record(line: str) -> dict[str, Any] | None:
    """A metrics.jsonl line as its record; None for a blank or partly written one."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """metrics.jsonl is strict JSON: a non-finite number is written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()}


# ------------------------------------------------------------------------------ the trainer
class Trainer:
    def __init__(
        self,
        model: nn.Module,
        task: Task,
        train_data: TrainData,
        val_data: Any,
        config: TrainConfig,
        meta: dict[str, Any],
        reporter: ProgressReporter | None = None,
    ):
        self.config = config
        self.world, self.device = join_world(resolve_device(config.device))
        self.precision = Precision.resolve(config.precision, self.device)
        self.model = model.to(self.device)
        # What the loss runs through: with several processes, the gradient-averaging wrapper.
        self.net: nn.Module = self.model
        if self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.task = task
        self.train_data = train_data
        self.val_data = val_data
        self.meta = meta
        self.out_dir = Path(config.out_dir)
        self.reporter = reporter or ProgressReporter(quiet=config.quiet)
        # A model with no trainable weights (a baseline, a readout fitted in closed form)
        # has no optimiser: it is validated and saved (``record``), never stepped.
        trainable = any(p.requires_grad for p in self.model.parameters())
        self.optimizer = build_optimizer(self.model, config, self.device) if trainable else None
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]] \
            if self.optimizer else []
        self.scaler = self.precision.scaler()
        self.average = WeightAverage(self.model, config.ema) \
            if config.ema and self.optimizer else None
        self.higher_is_better = config.select_metric not in LOWER_IS_BETTER
        # Saved in checkpoints and restored by --resume:
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []
        self.carry: Any = None
        # This session only:
        self._interrupted = False
        self._bad_in_row = 0
        self._grad_norm = 0.0
        self._last_val_step = -1
        self._last_val_at = 0.0  # train_time at the last validation
        self._val_seconds: float | None = None  # how long the last validation took
        self._paused = 0.0  # validation seconds inside the current step's clock
        self._window = _Window()
        self._tick = time.perf_counter()

    # ------------------------------------------------------------------------- the run
    def fit(self, resume: bool = False) -> FitResult:
        torch.manual_seed(self.config.seed)
        try:
            if resume:
                self.restore()
            elif self.world.main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            if len(self.train_data) == 0:
                raise UserError("the training data gives no batch: use more data or a "
                                "smaller batch")
            self.model.train()
            with self.reporter, self._graceful_stop():
                reason = self._loop()
                if reason in ("budget", "epochs", "early-stop", "target"):
                    self.final_validation()
            s = self.state
            if reason != "diverged":  # a diverged model must not replace the last good one
                best_now = s.step > 0 and (s.best is None or s.best_step == s.step)
                self.save("last.pt", *(("best.pt",) if best_now else ()))
        finally:
            self.world.close()
        s = self.state
        return FitResult(reason, s.step, s.best, s.best_metrics, self.out_dir, s.skipped_steps,
                         s.elapsed)

    def record(self, seconds: float = 0.0) -> FitResult:
        """A model with nothing to learn by gradient steps is a run too: validated once (the
        final validation) and saved as ``best.pt`` and ``last.pt`` like any; ``seconds`` is
        what fitting it took (a closed-form readout), its ``elapsed``."""
        self.state.elapsed = seconds
        try:
            if self.world.main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            with self.reporter:
                self.final_validation()
            s = self.state
            final = self.history[-1] if self.history else {}
            s.best_metrics = {k: v for k, v in final.items()
                              if k not in ("kind", "step", "epoch", "elapsed")}
            s.best, s.best_step = s.best_metrics.get(self.config.select_metric), 0
            self.save("last.pt", "best.pt")
        finally:
            self.world.close()
        s = self.state
        return FitResult("fitted", 0, s.best, s.best_metrics, self.out_dir, 0, s.elapsed)

    def _loop(self) -> str:
        """The run, one named stage per line; validation has one site, stopping one test."""
        if reason := self._stop_reason():
            return reason  # e.g. resumed with a budget already spent
        self._tick = time.perf_counter()
        with contextlib.closing(self._batches()) as batches:
            for batch, epoch_ends in batches:
                self._set_lr()  # warm-up, then the schedule
                self._train_step(batch)  # forward, backward, finite check, clip, step
                self._advance(epoch_ends)  # counters; the agreed clock and stop flag
                self._maybe_log()  # metrics.jsonl and the progress line
                reason = self._stop_reason()  # budget, epochs, Ctrl-C, divergence
                if stop := self._maybe_validate(epoch_ends, reason in ("budget", "epochs")):
                    return stop
                if reason:
                    return reason
        raise AssertionError("the batches never end")

    # ------------------------------------------------------------------------- stages
    def _batches(self) -> Iterator[tuple[Any, bool]]:
        """Batches from where the run stands, epoch after epoch, each prepared (counted,
        sharded, pinned) while the previous one trains on an accelerator; with whether it is
        the epoch's last."""
        depth = 0 if self.device.type == "cpu" else 2
        while True:
            n, first = len(self.train_data), self.state.batch_in_epoch
            source = self.train_data.batches(self.state.epoch, first)
            with prefetch(map(self._prepare, source), depth) as prepared:
                for i, item in enumerate(prepared, start=first + 1):
                    yield item, i == n

    def _prepare(self, batch: Any) -> tuple[Any, int, int]:
        """(this process's rows, targets in the whole batch, targets in those rows)."""
        total = self.task.count_targets(batch)
        rows = self.world.shard(batch)
        if rows is None:  # fewer rows than processes: every process skips this batch
            return None, total, 0
        mine = self.task.count_targets(rows) if self.world.size > 1 else total
        if self.device.type == "cuda":
            rows = _pinned(rows)
        return rows, total, mine

    def _set_lr(self) -> None:
        factor = self.lr_factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    def _train_step(self, prepared: tuple[Any, int, int]) -> None:
        batch, total, mine = prepared
        if batch is None:
            return
        batch = move_to(batch, self.device)
        if hasattr(self.task, "set_progress"):
            self.task.set_progress(self.progress())
        with self.precision.autocast():
            loss_sum, carry = self.task.loss(self.net, batch, self.carry)
        # DistributedDataParallel averages gradients over processes; scaled by the whole
        # batch's target count, that average is the mean over every target of the batch.
        loss = loss_sum.float() * (self.world.size / max(1, total))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.clip or math.inf)
        grad_norm = float(norm)  # the step's one host-device synchronisation
        finite = math.isfinite(grad_norm)  # the same on every process: gradients are shared
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the update itself when not finite
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        if finite and self.average is not None:
            self.average.update()
        if not finite:
            self.state.skipped_steps += 1
            self._bad_in_row += 1
            self.carry = None  # the carried state may be poisoned too: restart the streams
            return
        self._bad_in_row = 0
        self._grad_norm = grad_norm
        self.carry = detach_state(carry)
        w = self._window
        w.loss = w.loss + loss_sum.detach().float()
        w.targets += mine
        w.tokens += total

    def _advance(self, epoch_ends: bool) -> None:
        s = self.state
        s.step += 1
        s.batch_in_epoch += 1
        if epoch_ends:
            s.epoch += 1
            s.batch_in_epoch = 0
            self.carry = None  # streams start again at the corpus start
        now = time.perf_counter()
        s.elapsed += now - self._tick
        s.train_time += now - self._tick - self._paused
        self._tick, self._paused = now, 0.0
        self._interrupted, (s.elapsed, s.train_time) = self.world.sync(
            self._interrupted, (s.elapsed, s.train_time))

    def _maybe_log(self) -> None:
        c, s, w = self.config, self.state, self._window
        if s.step % c.log_every:
            return
        loss = float(w.loss) / w.targets if w.targets else math.nan
        rate = w.tokens / max(1e-9, time.perf_counter() - w.start)
        self._window = _Window()
        self._log({"kind": "train", "step": s.step, "elapsed": round(s.elapsed, 2),
                   "loss": round(loss, 5),
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "grad_norm": round(self._grad_norm, 4), "tokens_per_s": round(rate, 1)})
        self._show(loss, rate)

    def _stop_reason(self) -> str | None:
        """Why training should stop now; the same on every process (its inputs are agreed)."""
        c, s = self.config, self.state
        if self._bad_in_row >= c.max_bad_steps:
            return "diverged"
        if self._interrupted:
            return "interrupted"
        if c.max_steps and s.step >= c.max_steps:
            return "budget"
        if c.time_budget and s.elapsed >= c.time_budget:
            return "budget"
        if c.epochs and s.epoch >= c.epochs:
            return "epochs"
        return None

    def _maybe_validate(self, epoch_ends: bool, final: bool) -> str | None:
        """Validate when due (once per step) and when a budget ends; the reason to stop when
        validation gives one (see ``validate``). Due: every ``eval_every`` steps and at each
        epoch's end; or, without ``eval_every``, by training time, so that validating takes
        about ``eval_share`` of it (the first time after a tenth of the budget or two
        minutes)."""
        c, s = self.config, self.state
        if c.eval_every:
            due = s.step % c.eval_every == 0 or epoch_ends
        elif self._val_seconds is None:
            due = self.progress() >= 0.1 or s.train_time >= 120
        else:
            due = s.train_time - self._last_val_at >= max(self._val_seconds / c.eval_share, 1.0)
        if not (due or final) or self._last_val_step == s.step:
            return None
        self._last_val_step, self._last_val_at = s.step, s.train_time
        started = time.perf_counter()
        stop = self.validate()
        self._val_seconds = time.perf_counter() - started
        self._paused += self._val_seconds
        return stop

    # ------------------------------------------------------------------------- schedule
    def progress(self) -> float:
        """Fraction of the training budget used: the largest of steps, time and epochs."""
        c, s = self.config, self.state
        parts = [0.0]
        if c.max_steps:
            parts.append(s.step / c.max_steps)
        if c.time_budget:
            # Training time against the share of the budget left for it: the schedule does
            # not move while validating, and still ends with the budget.
            parts.append(s.train_time / (c.time_budget * (1 - c.eval_share)))
        if c.epochs:
            n = max(1, len(self.train_data))
            parts.append((s.epoch + s.batch_in_epoch / n) / c.epochs)
        return min(1.0, max(parts))

    def lr_factor(self) -> float:
        c, s = self.config, self.state
        warm = min(1.0, (s.step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        if c.schedule == "cosine":
            cosine = 0.5 * (1 + math.cos(math.pi * self.progress()))
            return warm * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cosine)
        if c.schedule == "plateau":
            return warm * s.plateau_factor
        return warm

    # ------------------------------------------------------------------------- validation
    def validate(self) -> str | None:
        """Evaluate (the first process), keep best.pt and last.pt; on every process, "target"
        once the best value reaches ``stop_at``, "early-stop" when patience runs out."""
        update = self._judge(self._evaluate()) if self.world.main else None
        self.state, improved, previews = self.world.broadcast(update or (self.state, False, []))
        self.save("last.pt", *(("best.pt",) if improved else ()))
        for text in previews:
            self.reporter.message(text)
        c, s = self.config, self.state
        if c.stop_at is not None and s.best is not None and (
                s.best >= c.stop_at if self.higher_is_better else s.best <= c.stop_at):
            return "target"
        if c.patience and s.bad_evals >= c.patience:
            return "early-stop"
        return None

    def final_validation(self) -> None:
        """After training, the task's full validation of the final weights (kind "final" in
        metrics.jsonl), e.g. all the validation text where training read a subset."""
        if not self.world.main:
            return
        metrics, _ = self._evaluate(final=True)
        s = self.state
        record = {"kind": "final", "step": s.step, "epoch": s.epoch,
                  "elapsed": round(s.elapsed, 2), **metrics}
        self.history.append(record)
        self._log(record)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.reporter.message(f"final validation at step {s.step}: {shown}")

    def _evaluate(self, final: bool = False) -> tuple[dict[str, float], list[str]]:
        """Metrics and previews, in eval mode and float32, on a forked random generator: what
        validation does never changes how training continues."""
        devices = [self.device] if self.device.type == "cuda" else []
        self.model.eval()
        averaged = self.average.swapped_in() if self.average else contextlib.nullcontext()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices), averaged:
                metrics = self.task.evaluate(self.model, self.val_data, final)
                previews = [] if final else self.task.preview(self.model)
        finally:
            self.model.train()
        return metrics, previews

    def _judge(self, evaluated: tuple[dict[str, float], list[str]]
               ) -> tuple[TrainState, bool, list[str]]:
        """Record a validation; update best, early-stopping and plateau counters."""
        metrics, previews = evaluated
        c, s = self.config, self.state
        value = metrics[c.select_metric]
        # Like ReduceLROnPlateau: a change below 0.01% of the best does not count.
        margin = abs(s.best) * 1e-4 if s.best is not None else 0.0
        improved = math.isfinite(value) and (s.best is None or (
            value > s.best + margin if self.higher_is_better else value < s.best - margin))
        record = {"kind": "val", "step": s.step, "epoch": s.epoch,
                  "elapsed": round(s.elapsed, 2), **metrics}
        self.history.append(record)
        self._log(record)
        if improved:
            s.best, s.best_metrics, s.best_step = value, metrics, s.step
            s.bad_evals = s.plateau_wait = 0
        else:
            s.bad_evals += 1
            s.plateau_wait += 1
            if c.schedule == "plateau" and s.plateau_wait >= c.plateau_patience:
                s.plateau_factor = max(c.min_lr_ratio, s.plateau_factor * 0.5)
                s.plateau_wait = 0
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.reporter.message(f"validation at step {s.step}: {shown}"
                              + ("  (best so far)" if improved else ""))
        return s, improved, previews

    # ------------------------------------------------------------------------- checkpoints
    def _rank_state(self) -> dict[str, Any]:
        """What only this process knows: its carried state and random generators."""
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        carry = None if self.carry is None else move_to(self.carry, torch.device("cpu"))
        return {"carry": carry, "rng": rng}

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def save(self, *names: str) -> None:
        """Write checkpoints. Every process calls it: each one's state goes in; the first one
        writes. Weights that are not finite are never written (the run then stops)."""
        if not self._weights_finite():  # the same on every process: the weights are shared
            self._bad_in_row = self.config.max_bad_steps
            self.reporter.message("the weights are no longer finite: not saved")
            return
        ranks = self.world.gather(self._rank_state())
        if not self.world.main:
            return
        # the weights validation scored; with --ema, the trained ones too, to resume from
        averaged = {} if self.average is None else {
            "model_state": self.average.average, "trained_state": self.model.state_dict(),
            "average_updates": self.average.updates}
        payload = {
            **self.meta,
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "device": self._device_text(),
            "model_state": self.model.state_dict(),
            **averaged,
            "optimizer_state": self.optimizer.state_dict() if self.optimizer else None,
            "scaler_state": self.scaler.state_dict() if self.scaler else None,
            "train_config": to_dict(self.config),
            "trainer_state": {**dataclasses.asdict(self.state), "ranks": ranks},
            "history": self.history,
        }
        for name in names:  # only last.pt is resumed from
            save_checkpoint(self.out_dir / name, payload if name == "last.pt" else {
                k: v for k, v in payload.items() if k != "trained_state"})

    def _device_text(self) -> str:
        name = f" ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" \
            else ""
        processes = f", {self.world.size} processes" if self.world.size > 1 else ""
        return f"{self.device}{name}, {self.precision.name}{processes}"

    def restore(self) -> None:
        path = self.out_dir / "last.pt"
        if not path.is_file():
            raise UserError(f"--resume: {self.out_dir} holds no last.pt to continue from")
        data = load_checkpoint(path, task=self.meta.get("task"))
        # Hyperparameters come from this run's options (a new --lr applies from here on);
        # the optimiser's statistics come from the checkpoint.
        options = [{k: v for k, v in g.items() if k != "params"}
                   for g in self.optimizer.param_groups]
        try:
            self.model.load_state_dict(data.get("trained_state") or data["model_state"])
            if self.average is not None:  # a run without one starts it from its weights
                self.average.load(data["model_state"], data.get("average_updates", 0))
            self.optimizer.load_state_dict(data["optimizer_state"])
            if self.scaler is not None and data.get("scaler_state"):
                self.scaler.load_state_dict(data["scaler_state"])
            saved = data["trainer_state"]
            state, ranks = TrainState.from_dict(saved), saved["ranks"]
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise UserError(f"--resume: {path} does not fit this model ({first})") from None
        if len(ranks) != self.world.size:
            raise UserError(f"--resume: {path} was trained by {len(ranks)} process(es); resume "
                            f"it with the same number (torchrun --nproc_per_node {len(ranks)})")
        for group, values in zip(self.optimizer.param_groups, options):
            group.update(values)
        self.state = state
        self.history = list(data.get("history", []))
        mine = ranks[self.world.rank]
        self.carry = None if mine["carry"] is None else move_to(mine["carry"], self.device)
        torch.set_rng_state(mine["rng"]["cpu"])
        if "cuda" in mine["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["rng"]["cuda"], self.device)
        if self.world.main:
            self._drop_metrics_after(state.step)

    def _drop_metrics_after(self, step: int) -> None:
        """Rows logged after the checkpoint (before a kill) would be logged again: drop them,
        and a row a kill cut off in the middle of its writing."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
            row = _record(line)
            if row is not None and row.get("step", 0) <= step:
                kept.append(line)
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def _log(self, record: dict[str, Any]) -> None:
        if not self.world.main:
            return
        try:
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(_jsonable(record)) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {self.out_dir / 'metrics.jsonl'}: "
                            f"{exc.strerror or exc}") from None

    # ------------------------------------------------------------------------- signals
    @contextlib.contextmanager
    def _graceful_stop(self) -> Iterator[None]:
        """The first Ctrl-C (or SIGTERM, which torchrun and schedulers send) stops training
        after the current step, so last.pt holds a state training can continue from; a second
        one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame) -> None:
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    # ------------------------------------------------------------------------- display
    def _show(self, loss: float, rate: float) -> None:
        c, s = self.config, self.state
        fraction = self.progress()
        eta = s.elapsed * (1 - fraction) / fraction if fraction > 0 else None
        n = max(1, len(self.train_data))
        fields = {
            "step": str(s.step),
            "epoch": f"{s.epoch + s.batch_in_epoch / n:.2f}",
            "loss": f"{loss:.3f}",
        }
        last_val = next((h for h in reversed(self.history) if h["kind"] == "val"), None)
        if last_val:
            fields["val"] = ", ".join(f"{k} {last_val[k]:.3g}" for k in
                                      self.task_display_keys(last_val))
        fields["tok/s"] = format_rate(rate)
        fields["lr"] = f"{self.optimizer.param_groups[0]['lr']:.2e}"
        fields["|g|"] = f"{self._grad_norm:.2f}"
        if s.skipped_steps:
            fields["skipped"] = str(s.skipped_steps)
        if c.max_steps or c.time_budget or c.epochs:
            fields["ETA"] = format_seconds(eta)
        self.reporter.update(fraction, fields)

    @staticmethod
    def task_display_keys(record: dict[str, Any]) -> list[str]:
        skip = {"kind", "step", "epoch", "elapsed"}
        return [k for k, v in record.items() if k not in skip and isinstance(v, (int, float))][:4]
