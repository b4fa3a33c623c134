"""The one training loop every task uses.

The trainer knows no task. A task object supplies

- ``loss(model, batch, carry) -> (loss_sum, n_tokens, carry)``: summed loss of one batch;
  ``carry`` is state handed from one batch to the next (truncated BPTT), reset each epoch;
- ``evaluate(model, data) -> dict``: validation metrics, including the selection metric;
- ``preview(model) -> list[str]``: a few short generations to show after validation.

Training data supplies ``len(data)`` (batches per epoch) and ``data.batches(epoch, start)``
so that a resumed run continues from the exact batch where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from seqgen.checkpoint import load_checkpoint, save_checkpoint
from seqgen.config import TrainConfig, to_dict
from seqgen.distributed import join_world
from seqgen.errors import UserError
from seqgen.models.recurrent import detach_state
from seqgen.progress import ProgressReporter, format_rate, format_seconds

LOWER_IS_BETTER = {"loss", "ppl", "bpc"}


class Task(Protocol):
    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[torch.Tensor, int, Any]: ...

    def evaluate(self, model: nn.Module, data: Any) -> dict[str, float]: ...

    def preview(self, model: nn.Module) -> list[str]: ...


class TrainData(Protocol):
    def __len__(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterable[Any]: ...


@dataclass
class FitResult:
    reason: str  # budget | epochs | early-stop | interrupted | diverged
    step: int
    best: float | None
    best_metrics: dict[str, float] | None
    out_dir: Path


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


def guard_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an earlier run's checkpoints unless told to resume or replace it."""
    existing = [p.name for p in (out_dir / "best.pt", out_dir / "last.pt") if p.exists()]
    if existing and not (resume or overwrite):
        raise UserError(
            f"{out_dir} already holds a run ({', '.join(existing)}): pass --resume to continue "
            "it, --overwrite to replace it, or --out DIR for a new folder"
        )
    if overwrite and not resume:
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            (out_dir / name).unlink(missing_ok=True)


def move_to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    return obj


def _state_to(obj: Any, device: torch.device) -> Any:
    return None if obj is None else move_to(obj, device)


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
        self.optimizer = self._make_optimizer()
        self.higher_is_better = config.select_metric not in LOWER_IS_BETTER
        # Everything below is saved in checkpoints and restored by --resume.
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.elapsed = 0.0
        self.best: float | None = None
        self.best_metrics: dict[str, float] | None = None
        self.bad_evals = 0
        self.plateau_factor = 1.0
        self.history: list[dict[str, Any]] = []
        self.carry: Any = None

    # ----------------------------------------------------------------- setup
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        groups_fn = getattr(self.model, "param_groups", None)
        params = groups_fn(c.lr) if callable(groups_fn) else [
            {"params": [p for p in self.model.parameters() if p.requires_grad], "lr": c.lr}
        ]
        for group in params:
            group["base_lr"] = group["lr"]
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum,
                                   weight_decay=c.weight_decay)
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay,
                                 **({"fused": True} if fused else {}))

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -------------------------------------------------------------- progress
    def progress(self) -> float:
        """Fraction of the training budget used: the largest of steps, time and epochs."""
        c = self.config
        parts = [0.0]
        if c.max_steps:
            parts.append(self.step / c.max_steps)
        if c.time_budget:
            parts.append(self.elapsed / c.time_budget)
        if c.epochs:
            n = max(1, len(self.train_data))
            parts.append((self.epoch + self.batch_in_epoch / n) / c.epochs)
        return min(1.0, max(parts))

    def lr_factor(self) -> float:
        c = self.config
        warm = min(1.0, (self.step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        if c.schedule == "cosine":
            p = self.progress()
            cosine = 0.5 * (1 + math.cos(math.pi * p))
            return warm * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cosine)
        if c.schedule == "plateau":
            return warm * self.plateau_factor
        return warm

    def _budget_reason(self) -> str | None:
        c = self.config
        if c.max_steps and self.step >= c.max_steps:
            return "budget"
        if c.time_budget and self.elapsed >= c.time_budget:
            return "budget"
        if c.epochs and self.epoch >= c.epochs:
            return "epochs"
        return None

    # ----------------------------------------------------------- checkpoints
    def _payload(self) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            **self.meta,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "train_config": to_dict(self.config),
            "trainer_state": {
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "elapsed": self.elapsed, "best": self.best, "best_metrics": self.best_metrics,
                "bad_evals": self.bad_evals, "plateau_factor": self.plateau_factor,
                "rng": rng, "carry": _state_to(self.carry, torch.device("cpu")),
            },
            "history": self.history,
        }

    def save(self, name: str) -> None:
        if self.world.main:
            save_checkpoint(self.out_dir / name, self._payload())

    def restore(self) -> None:
        path = self.out_dir / "last.pt"
        if not path.exists():
            raise UserError(f"--resume: no {path} to continue from")
        data = load_checkpoint(path, task=self.meta.get("task"))
        try:
            self.model.load_state_dict(data["model_state"])
            self.optimizer.load_state_dict(data["optimizer_state"])
            state = data["trainer_state"]
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"--resume: {path} does not fit this model ({first})") from None
        for key in ("step", "epoch", "batch_in_epoch", "elapsed", "best", "best_metrics",
                    "bad_evals", "plateau_factor"):
            setattr(self, key, state[key])
        self.history = list(data.get("history", []))
        self.carry = _state_to(state.get("carry"), self.device)
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def _log(self, record: dict[str, Any]) -> None:
        if not self.world.main:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------ validation
    def validate(self) -> bool:
        """Evaluate (the first process only), keep best.pt and last.pt; returns True, on every
        process, when training should stop early."""
        stop = self._validate() if self.world.main else False
        return self.world.agree(stop, self.device)

    def _validate(self) -> bool:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            metrics = self.task.evaluate(self.model, self.val_data)
        self.model.train()
        value = metrics[self.config.select_metric]
        # Like ReduceLROnPlateau: a change below 0.01% of the best does not count.
        margin = abs(self.best) * 1e-4 if self.best is not None else 0.0
        improved = self.best is None or (
            value > self.best + margin if self.higher_is_better else value < self.best - margin
        )
        record = {"kind": "val", "step": self.step, "epoch": self.epoch,
                  "elapsed": round(self.elapsed, 2), **metrics}
        self.history.append(record)
        self._log(record)
        if improved:
            self.best, self.best_metrics, self.bad_evals = value, metrics, 0
            self.save("best.pt")
        else:
            self.bad_evals += 1
            if self.config.schedule == "plateau":
                self.plateau_factor *= 0.5
        self.save("last.pt")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.reporter.message(f"validation at step {self.step}: {shown}"
                              + ("  (best so far)" if improved else ""))
        for text in self.task.preview(self.model):
            self.reporter.message(text)
        self.model.train()
        return bool(self.config.patience and self.bad_evals >= self.config.patience)

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False) -> FitResult:
        torch.manual_seed(self.config.seed)
        if resume:
            self.restore()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if len(self.train_data) == 0:
            raise UserError("the training data gives no batch: use more data or a smaller batch")
        self.model.train()
        with self.reporter:
            reason = self._loop()
        if reason != "diverged":  # a diverged model must not replace the last good one
            self.save("last.pt")
            if self.best is None and self.step > 0:
                self.save("best.pt")
        return FitResult(reason, self.step, self.best, self.best_metrics, self.out_dir)

    def _loop(self) -> str:
        c = self.config
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        window_tokens, window_start = 0, time.perf_counter()
        loss_avg: float | None = None
        last_val_step = self.step if self.history else -1
        tick = time.perf_counter()
        try:
            while True:
                reason = self._budget_reason()
                if self.world.agree(reason is not None, self.device):
                    return reason or "budget"
                if self.batch_in_epoch == 0:
                    self.carry = None
                for batch in self.train_data.batches(self.epoch, self.batch_in_epoch):
                    factor = self.lr_factor()
                    for group in self.optimizer.param_groups:
                        group["lr"] = group["base_lr"] * factor
                    batch = self.world.shard(batch)
                    if batch is None:  # fewer rows than processes: every process skips it
                        self.batch_in_epoch += 1
                        continue
                    batch = move_to(batch, self.device)
                    with self._autocast():
                        loss_sum, n_tokens, carry = self.task.loss(self.net, batch, self.carry)
                    loss = loss_sum / max(1, n_tokens)
                    if self.world.agree(not bool(torch.isfinite(loss)), self.device):
                        return "diverged"
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    max_norm = c.clip if c.clip and c.clip > 0 else float("inf")
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
                    self.optimizer.step()
                    self.carry = detach_state(carry)
                    self.step += 1
                    self.batch_in_epoch += 1
                    now = time.perf_counter()
                    self.elapsed += now - tick
                    tick = now
                    window_tokens += n_tokens
                    value = float(loss.detach())
                    loss_avg = value if loss_avg is None else 0.9 * loss_avg + 0.1 * value
                    if self.step % c.log_every == 0:
                        rate = window_tokens / max(1e-9, now - window_start)
                        window_tokens, window_start = 0, now
                        self._log({"kind": "train", "step": self.step, "loss": round(value, 5),
                                   "lr": self.optimizer.param_groups[0]["lr"],
                                   "grad_norm": round(grad_norm, 4),
                                   "tokens_per_s": round(rate, 1)})
                        self._show(loss_avg, grad_norm, rate)
                    if c.eval_every and self.step % c.eval_every == 0:
                        last_val_step = self.step
                        if self.validate():
                            return "early-stop"
                    if self.world.agree(self._budget_reason() is not None, self.device):
                        break
                else:
                    # The epoch ran to its end.
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    if last_val_step != self.step:
                        last_val_step = self.step
                        if self.validate():
                            return "early-stop"
                    continue
                # A budget ran out mid-epoch: validate once more so best.pt sees the end.
                if last_val_step != self.step:
                    if self.validate():
                        return "early-stop"
        except KeyboardInterrupt:
            self.save("last.pt")
            return "interrupted"

    def _show(self, loss_avg: float, grad_norm: float, rate: float) -> None:
        c = self.config
        fraction = self.progress()
        eta = None
        if fraction > 0:
            eta = self.elapsed * (1 - fraction) / fraction
        n = max(1, len(self.train_data))
        fields = {
            "step": str(self.step),
            "epoch": f"{self.epoch + self.batch_in_epoch / n:.2f}",
            "loss": f"{loss_avg:.3f}",
        }
        last_val = next((h for h in reversed(self.history) if h["kind"] == "val"), None)
        if last_val:
            fields["val"] = ", ".join(f"{k} {last_val[k]:.3g}" for k in
                                      self.task_display_keys(last_val))
        fields["tok/s"] = format_rate(rate)
        fields["lr"] = f"{self.optimizer.param_groups[0]['lr']:.2e}"
        fields["|g|"] = f"{grad_norm:.2f}"
        if c.max_steps or c.time_budget or c.epochs:
            fields["ETA"] = format_seconds(eta)
        self.reporter.update(fraction, fields)

    @staticmethod
    def task_display_keys(record: dict[str, Any]) -> list[str]:
        skip = {"kind", "step", "epoch", "elapsed"}
        return [k for k, v in record.items() if k not in skip and isinstance(v, (int, float))][:4]
