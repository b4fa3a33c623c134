"""Classification of numeric series (EEG/ECG-like signals, the UCR archive): the many-to-one
recurrent classifier reading values instead of tokens (a linear projection of each step's
channels, no embedding), optionally beside LSTM-FCN's convolutions, or an echo state network
with a ridge readout. A run of the ``classify`` task like a text classifier's: the same
trainer task, metrics, ``classify``, ``evaluate-classify`` and ``info``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqgen.config import ClassifierConfig, ReservoirConfig, TrainConfig, check_choice, to_dict
from seqgen.data.batching import LengthBatches, records_digest
from seqgen.data.labelled import label_ids, ordered_labels, stratified_split
from seqgen.data.signals import SignalData, prepare_signals
from seqgen.errors import UserError
from seqgen.models.classifier import build_classifier
from seqgen.models.reservoir import EchoStateClassifier, RidgeReadout
from seqgen.progress import ProgressReporter
from seqgen.runs import Run, load_trained
from seqgen.training import FitResult

TASK = "classify"
SIGNAL_MODELS = ("rnn", "esn")
# The recurrent classifier's defaults for series, where a user gives no option (measured on
# ItalyPowerDemand and GunPoint: README, time-series classification).
SIGNAL_DEFAULTS = {"cell": "lstm", "hidden": 64, "layers": 1, "bidirectional": True,
                   "dropout": 0.2, "pool": "mean", "fcn": 64, "members": 1}
# What runs of earlier versions were, where an option is newer than they are.
EARLIER_RUNS = {"members": 1}
# A UCR training set is tens to hundreds of series: ten epochs are a few dozen steps. Without
# --epochs, --max-steps or --time-budget a series classifier trains this many steps.
SIGNAL_STEPS = 2000


def pad_values(series: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, channels) zero-padded values and the lengths (B,)."""
    lengths = torch.tensor([len(s) for s in series])
    out = torch.zeros(len(series), int(lengths.max()), series[0].shape[1])
    for i, s in enumerate(series):
        out[i, :len(s)] = torch.from_numpy(s)
    return out, lengths


class SignalBatches(LengthBatches):
    """Batches of (values (B, T, channels), lengths (B,), class ids (B,))."""

    def __init__(self, series: list[np.ndarray], labels: list[int], batch_size: int,
                 seed: int = 0, shuffle: bool = True):
        super().__init__([len(s) for s in series], batch_size, seed, shuffle)
        self.series, self.labels = series, labels

    def make_batch(self, index: list[int]):
        values, lengths = pad_values([self.series[i] for i in index])
        return values, lengths, torch.tensor([self.labels[i] for i in index])


@dataclass
class SignalClassifier:
    """A trained series classifier and how it reads series; what ``classify`` runs."""

    model: torch.nn.Module
    labels: list[str]
    znormalise: bool
    temperature: float = 1.0  # calibrated on validation after training

    @torch.no_grad()
    def probabilities(self, series: Sequence[np.ndarray], batch_size: int = 256
                      ) -> torch.Tensor:
        from seqgen.tasks.classify import predict

        if batch_size < 1:
            raise UserError("--batch-size must be positive")
        data = SignalData(list(series), [""] * len(series))
        width = getattr(self.model.config, "input_dim", None) or self.model.config.inputs
        if data.channels != width:
            raise UserError(f"the model reads series of {width} channel(s); these have "
                            f"{data.channels}")
        was_training = self.model.training
        self.model.eval()
        prepared = prepare_signals(data, self.znormalise)
        probs = predict(self.model, SignalBatches(prepared, [0] * len(prepared), batch_size,
                                                  shuffle=False), self.temperature)
        self.model.train(was_training)
        return probs


def _subset(data: SignalData, rows: list[int]) -> SignalData:
    return SignalData([data.series[i] for i in rows], [data.labels[i] for i in rows],
                      data.source)


def fit_esn(model: EchoStateClassifier, batches: SignalBatches, classes: int) -> int:
    """The readout by ridge regression on one-hot classes; returns how many series it read."""
    readout = RidgeReadout(model.config.units, classes)
    for values, lengths, target in batches.batches(0):
        readout.add(model.features(values, lengths), F.one_hot(target, classes).double())
    model.readout.copy_(readout.solve(model.config.ridge))
    return readout.count


def train_signal_classifier(
    train_data: SignalData,
    val_data: SignalData | None,
    model: str,
    model_options: dict,
    train_config: TrainConfig,
    znormalise: bool = True,
    val_fraction: float = 0.2,
    resume: bool = False,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
    explicit: Collection[str] | None = None,
) -> FitResult:
    """Train a series classifier (or fit an echo state network's readout)."""
    check_choice("model", model, SIGNAL_MODELS)
    if val_data is None and not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if len(train_data) == 0:
        raise UserError("no training series")
    run = Run(TASK, train_config, resume, overwrite, explicit, reporter)
    channels = train_data.channels
    config_type, make = (ReservoirConfig, EchoStateClassifier) if model == "esn" else (
        ClassifierConfig, build_classifier)
    size = ({"inputs": channels, "outputs": 2} if model == "esn"
            else {"outputs": 2, "input_dim": channels})
    run.check_size(lambda: make(config_type(**size, **model_options)))
    definition = run.define({**model_options, "inputs": "signals", "model": model,
                             "znormalise": znormalise, "batch_size": run.config.batch_size,
                             "seed": run.config.seed,
                             "val_fraction": None if val_data else val_fraction})
    model_options = {k: definition.get(k, EARLIER_RUNS.get(k)) for k in model_options}
    run.check_data({"train": records_digest(train_data.digest_records()),
                    "val": records_digest(val_data.digest_records()) if val_data else None},
                   "the series differ")
    config = run.config
    if val_data is None:
        kept, held = stratified_split(train_data.labels, val_fraction, config.seed)
        train_data, val_data = _subset(train_data, kept), _subset(train_data, held)
    if len(val_data) == 0:
        raise UserError("no validation series: use more data, a larger --val-fraction or a "
                        "--val-file")
    if val_data.channels != channels:
        raise UserError(f"the validation series have {val_data.channels} channel(s), the "
                        f"training series {channels}")
    labels = run.saved["labels"] if run.saved else ordered_labels(train_data.labels)
    if len(labels) < 2:
        raise UserError(f"the training data has one class only ({labels[0]!r}): a classifier "
                        "needs two or more")
    train_y = label_ids(train_data, labels, "training data")
    val_y = label_ids(val_data, labels, "validation data")
    train_x = prepare_signals(train_data, znormalise)
    val_x = prepare_signals(val_data, znormalise)
    lengths = sorted({len(s) for s in train_x})
    run.reporter.message(
        f"series: {len(train_x):,} for training, {len(val_x):,} for validation; {channels} "
        f"channel(s), {lengths[0]}{'–' + str(lengths[-1]) if len(lengths) > 1 else ''} "
        f"steps; classes {', '.join(labels)}"
        + ("; each series z-normalised" if znormalise else ""))
    shape = ({"inputs": channels, "outputs": len(labels), "seed": config.seed}
             if model == "esn" else {"outputs": len(labels), "input_dim": channels})
    model_config = config_type(**shape, **model_options)
    network = run.build(lambda: make(model_config))
    batches = SignalBatches(train_x, train_y, config.batch_size, config.seed)
    if model == "esn":
        started = time.perf_counter()
        count = fit_esn(network, batches, len(labels))
        run.reporter.message(f"readout fitted in closed form on {count:,} series in "
                             f"{time.perf_counter() - started:.1f} s")
    meta = {
        "model_config": to_dict(model_config),
        "labels": labels,
        "data": {"inputs": "signals", "model": model, "znormalise": znormalise,
                 "channels": channels, "files": [d.source for d in (train_data, val_data)
                                                  if d.source]},
    }
    from seqgen.tasks.classify import ClassifyTask, calibrate_run

    c = model_config
    describe = (f"echo state network, {c.units} units (spectral radius {c.spectral_radius:g}, "
                f"leak {c.leak_rate:g}), {c.features} of its states → ridge readout"
                if model == "esn" else (f"{c.members} × " if c.members > 1 else "")
                + f"{c.layers}×{c.hidden} {'bi-' if c.bidirectional else ''}{c.cell} over "
                f"{channels} channel(s), {c.pool} pooling"
                + (f", LSTM-FCN convolutions ({c.fcn}-{2 * c.fcn}-{c.fcn})" if c.fcn else ""))
    result = run.fit(network, ClassifyTask(labels, None, members=getattr(c, "members", 1)),
                     batches,
                     SignalBatches(val_x, val_y, max(64, config.batch_size), shuffle=False),
                     meta, describe)
    calibrate_run(run, val_data.series, val_y)
    return result


def load_signal_classifier(checkpoint: str | Path, saved: dict, device: str = "auto"
                           ) -> tuple[SignalClassifier, dict]:
    stored = saved.get("data") or {}
    config_type, make = (ReservoirConfig, EchoStateClassifier) if stored.get("model") == "esn" \
        else (ClassifierConfig, build_classifier)
    trained = load_trained(checkpoint, TASK, config_type, make, device)
    labels = trained.data.get("labels")
    if not (isinstance(labels, list) and len(labels) == trained.config.outputs):
        raise UserError(f"{checkpoint} does not hold the class names of its model")
    from seqgen.tasks.classify import saved_temperature

    return SignalClassifier(trained.model, labels, bool(stored.get("znormalise", True)),
                            saved_temperature(trained.data)), trained.data
