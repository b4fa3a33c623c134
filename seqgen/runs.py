"""A training run's life, written once for every task, and the way back from a trained
checkpoint to a model ready for use.

A run goes through the same stages whatever the task (``Run``):

1. the output folder is guarded (an earlier run is kept unless ``--resume`` or
   ``--overwrite`` is given) and the device, precision and folder are checked;
2. the task checks its options and model size (``check_size``), before any data is read;
3. ``define``: what defines the run (the options ``--resume`` must keep); on ``--resume``
   they are compared with the run in ``--out`` and the run's own values are taken, with its
   training options under the ones given now;
4. the task reads its data; ``check_data``: on ``--resume``, the data must be what the run
   trained on;
5. ``build``: seeded, counted against the free memory, then built;
6. ``fit``: the model is reported, an earlier run is removed only now (with
   ``--overwrite``: every check has passed and the data is read), and the trainer runs.

Each task keeps only what is its own: reading its data, building its model, its loss and
metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from seqgen.checkpoint import load_checkpoint
from seqgen.config import TrainConfig, from_dict
from seqgen.errors import UserError
from seqgen.models.building import (
    build_model,
    check_fits,
    from_checkpoint,
    load_weights,
    parameter_count,
)
from seqgen.progress import ProgressReporter
from seqgen.tokenizers import Tokenizer, tokenizer_from_dict
from seqgen.training import (
    FitResult,
    Task,
    TrainData,
    Trainer,
    check_training,
    clear_run,
    guard_out_dir,
    load_run,
    resolve_device,
    resumed_config,
)

M = TypeVar("M", bound=nn.Module)
# Where checkpoints of earlier versions kept the digest of their data.
_EARLIER_DIGESTS = ("corpus_digest", "digests", "digest")


def saved_digest(saved: dict[str, Any]) -> Any:
    """The digest of the data a saved run trained on (None where it recorded none)."""
    if "data_digest" in saved:
        return saved["data_digest"]
    data = saved.get("data") or {}
    return next((data[key] for key in _EARLIER_DIGESTS if key in data), None)


class Run:
    """One training run of ``task``, from its options to the trainer (see the module's
    docstring for the stages, in order)."""

    def __init__(self, task: str, config: TrainConfig, resume: bool = False,
                 overwrite: bool = False, explicit: Collection[str] | None = None,
                 reporter: ProgressReporter | None = None):
        self.task = task
        self.out_dir = Path(config.out_dir)
        guard_out_dir(self.out_dir, resume, overwrite)
        self.device = check_training(config)
        self.config = config
        self.resume, self.overwrite, self.explicit = resume, overwrite, explicit
        self._built = time.perf_counter()  # when the model was built (see ``build``)
        self.saved: dict[str, Any] | None = None  # the run's last.pt, on --resume
        self.definition: dict[str, Any] = {}
        self.digest: Any = None
        self.trainer: Trainer | None = None  # once fit has started, with its counters
        self._reporter = reporter

    @property
    def reporter(self) -> ProgressReporter:
        """Made once the training options are final (``--quiet`` may come from the run)."""
        if self._reporter is None:
            self._reporter = ProgressReporter(quiet=self.config.quiet)
        return self._reporter

    def check_size(self, make: Callable[[], nn.Module]) -> None:
        """Bad sizes stop here, counted on the meta device, before any data is read."""
        check_fits(parameter_count(make), self.device, training=True)

    def define(self, definition: dict[str, Any]) -> dict[str, Any]:
        """What defines the run (option name → value), as it will be trained: on
        ``--resume``, the run's own values, once those the user gave agree with them."""
        if self.resume:
            self.saved = load_run(self.out_dir, self.task, definition, self.explicit)
            self.config = resumed_config(self.saved, self.config, self.explicit)
            definition = self.saved["run"]
        self.definition = definition
        return definition

    def saved_tokenizer(self, key: str = "tokenizer") -> Tokenizer | None:
        """On ``--resume``, the run's tokenizer (its vocabulary is the model's)."""
        return tokenizer_from_dict(self.saved[key]) if self.saved else None

    def check_data(self, digest: Any, differs: str = "the data differs") -> None:
        """Record what the data is; on ``--resume`` it must be what the run trained on
        (``differs`` says otherwise: "the corpus differs")."""
        self.digest = digest
        before = saved_digest(self.saved) if self.saved else None
        if before is not None and before != digest:
            raise UserError(f"--resume: {differs} from what the run in {self.out_dir} "
                            "trained on; train into a new --out to use it")

    def build(self, make: Callable[[], M]) -> M:
        """The model, from the run's seed (the same seed gives the same initial weights)."""
        torch.manual_seed(self.config.seed)
        self._built = time.perf_counter()
        return build_model(make, self.device)

    def fit(self, model: nn.Module, task: Task, train_data: TrainData, val_data: Any,
            meta: dict[str, Any], describe: str, parameters: int | None = None,
            counted: str = "parameters") -> FitResult:
        """Report the model, replace an earlier run (``--overwrite``), and train."""
        n = parameters if parameters is not None else sum(p.numel() for p in model.parameters())
        size = f"{n / 1e6:.2f}M {counted}" if n >= 10_000 else f"{n:,} {counted}"
        self.reporter.message(f"model: {describe}, {size}, {len(train_data)} batches per "
                              "epoch")
        payload = {"task": self.task, "run": self.definition, "data_digest": self.digest,
                   **meta}
        if self.overwrite:
            clear_run(self.out_dir)
        self.trainer = Trainer(model, task, train_data, val_data, self.config, payload,
                               self.reporter)
        if not any(p.requires_grad for p in model.parameters()):
            # a baseline, or a readout fitted in closed form since the model was built
            return self.trainer.record(time.perf_counter() - self._built)
        return self.trainer.fit(resume=self.resume)


# ------------------------------------------------------------------ using a trained model
@dataclass
class Trained:
    """A checkpoint's model, ready for use (on its device, in eval mode), with what it was
    built from."""

    model: nn.Module
    config: Any
    data: dict[str, Any]  # the checkpoint's contents
    tokenizers: dict[str, Tokenizer] = field(default_factory=dict)


def load_trained(checkpoint: str | Path, task: str, config_type: type,
                 make: Callable[[Any], nn.Module], device: str = "auto",
                 vocabularies: dict[str, str] | None = None,
                 upgrade_config: Callable[[dict], dict] = lambda c: c,
                 upgrade_state: Callable[[Any], Any] = lambda s: s) -> Trained:
    """A trained model of ``task``; everything in the file is checked before anything is
    built. ``vocabularies`` maps each tokenizer's key in the checkpoint to the model
    configuration's field that must equal its size; ``upgrade_*`` read earlier versions."""
    target = resolve_device(device)
    data = load_checkpoint(checkpoint, task=task)
    config = from_checkpoint(checkpoint, "model configuration", lambda: from_dict(
        config_type, upgrade_config(data["model_config"])))
    tokenizers = {}
    for key, size_field in (vocabularies or {}).items():
        tokenizer = from_checkpoint(checkpoint, key.replace("_", " "),
                                    lambda key=key: tokenizer_from_dict(data[key]))
        if tokenizer.vocab_size != getattr(config, size_field):
            raise UserError(f"{checkpoint}: its {key.replace('_', ' ')} has "
                            f"{tokenizer.vocab_size} tokens but its model "
                            f"{getattr(config, size_field)}")
        tokenizers[key] = tokenizer
    model = from_checkpoint(checkpoint, "model configuration", lambda: build_model(
        lambda: make(config), target, training=False))
    load_weights(checkpoint, model, upgrade_state(data.get("model_state")))
    return Trained(model.to(target).eval(), config, data, tokenizers)
