"""Sentence classification: the glue between labelled text, the many-to-one model, the trainer
and batched prediction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seqgen.calibration import expected_calibration_error, fit_temperature, with_temperature
from seqgen.checkpoint import load_checkpoint, save_checkpoint
from seqgen.config import ClassifierConfig, TrainConfig, check_choice, from_dict, to_dict
from seqgen.data.batching import LengthBatches, pad_batch, records_digest
from seqgen.data.labelled import LabelledData, label_ids, ordered_labels, split_labelled
from seqgen.errors import UserError
from seqgen.metrics import classification_scores
from seqgen.models.building import device_of
from seqgen.models.classifier import build_classifier, members_of
from seqgen.progress import ProgressReporter
from seqgen.runs import Run, load_trained
from seqgen.tasks.registry import TaskSpec, register
from seqgen.tasks.translate import PairOptions
from seqgen.tokenizers import Tokenizer, build_tokenizer
from seqgen.training import FitResult

TASK = "classify"
CLASS_WEIGHTS = ("none", "auto")
# What runs of earlier versions were, where today's default differs.
EARLIER_RUNS = {"word_dropout": 0.0, "members": 1}


@dataclass
class TextOptions(PairOptions):
    """How texts become tokens; as for sentence pairs, except that a text longer than
    ``max_len`` tokens keeps its first ``max_len`` (a review is not dropped for its length).
    Words seen once become ``<unk>`` (``min_freq`` 2): on Rotten Tomatoes that halves the
    vocabulary and runs more steps in the same time (best dev accuracy after 5 minutes:
    79.9% and 78.8% in two runs, 78.5% with every word kept; weight decay 0.5 gave 77.5%,
    300-wide embeddings 74.9% after 2,168 steps)."""

    max_len: int = 400


def encode_texts(texts: Sequence[str], tokenizer: Tokenizer, max_len: int | None = None
                 ) -> tuple[list[list[int]], int]:
    """Token ids of each text, cut to ``max_len``, and how many were cut."""
    encoded, cut = [], 0
    for text in texts:
        ids = tokenizer.encode(text)
        if max_len and len(ids) > max_len:
            ids, cut = ids[:max_len], cut + 1
        encoded.append(ids)
    return encoded, cut


class LabelledBatches(LengthBatches):
    """Batches of (token ids (B, T), lengths (B,), class ids (B,)); every sequence ends with
    ``<eos>``, so an example is never empty."""

    def __init__(self, ids: list[list[int]], labels: list[int], batch_size: int, seed: int = 0,
                 shuffle: bool = True):
        super().__init__([len(x) for x in ids], batch_size, seed, shuffle)
        self.ids, self.labels = ids, labels

    def make_batch(self, index: list[int]):
        tokens, lengths = pad_batch([self.ids[i] for i in index], eos=True)
        return tokens, lengths, torch.tensor([self.labels[i] for i in index])


def balanced_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """``--class-weights auto``: n / (classes × n_c), so every class weighs the same in the
    loss however rare it is."""
    counts = Counter(labels)
    return [len(labels) / (n_classes * counts[c]) if counts[c] else 0.0
            for c in range(n_classes)]


@torch.no_grad()
def predict(model: nn.Module, batches: LabelledBatches, temperature: float = 1.0
            ) -> torch.Tensor:
    """Class probabilities (N, C) in the data's order, computed over sorted batches, of the
    logits divided by ``temperature`` (see ``seqgen.calibration``)."""
    device = device_of(model)
    probs, order = [], []
    for index in batches.index_batches(0):
        tokens, lengths, _ = batches.make_batch(index)
        logits = model(tokens.to(device), lengths)
        probs.append((logits.float() / temperature).softmax(-1).cpu())
        order.extend(index)
    out = torch.empty(len(order), probs[0].size(1)) if probs else torch.empty(0, 0)
    if probs:
        out[torch.tensor(order)] = torch.cat(probs)
    return out


class ClassifyTask:
    """Cross-entropy of the class (weighted with ``--class-weights auto``), of each of an
    ensemble's ``members`` on its own, averaged; validation gives loss, accuracy and
    macro-F1 of the averaged probabilities."""

    def __init__(self, labels: list[str], tokenizer: Tokenizer,
                 class_weights: list[float] | None = None, preview_texts: Sequence[str] = (),
                 members: int = 1):
        self.labels, self.tokenizer, self.members = labels, tokenizer, members
        self.weights = torch.tensor(class_weights) if class_weights else None
        self.preview_texts = list(preview_texts)

    def loss(self, model, batch, carry):
        tokens, lengths, target = batch
        logits = (model(tokens, lengths, per_member=True) if self.members > 1
                  else model(tokens, lengths).unsqueeze(0)).float()  # (members, B, C)
        weight = None if self.weights is None else self.weights.to(logits.device)
        total = F.cross_entropy(logits.flatten(0, 1), target.repeat(len(logits)),
                                weight=weight, reduction="sum")
        return total / len(logits), None

    def count_targets(self, batch) -> int:
        return len(batch[2])

    @torch.no_grad()
    def evaluate(self, model, data: LabelledBatches, final: bool = False) -> dict[str, float]:
        probs = predict(model, data)
        gold = torch.tensor(data.labels)
        loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), gold))
        scores = classification_scores(probs.argmax(-1).tolist(), data.labels,
                                       len(self.labels))
        return {"loss": loss, "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}

    def preview(self, model) -> list[str]:
        if not self.preview_texts:
            return []
        classifier = Classifier(model, self.tokenizer, self.labels)
        return [f"  {self.labels[int(p.argmax())]} {float(p.max()):.2f}  {text[:100]}"
                for text, p in zip(self.preview_texts,
                                   classifier.probabilities(self.preview_texts))]


class Classifier:
    """A trained model, its tokenizer and its class names, ready for batches of texts;
    ``temperature`` is the one calibrated on validation after training."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, labels: list[str],
                 max_len: int | None = None, temperature: float = 1.0):
        self.model, self.tokenizer, self.labels = model, tokenizer, labels
        self.max_len, self.temperature = max_len, temperature

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, C) class probabilities; texts of similar length are batched together."""
        if batch_size < 1:
            raise UserError("--batch-size must be positive")
        was_training = self.model.training
        self.model.eval()
        ids, _ = encode_texts(texts, self.tokenizer, self.max_len)
        probs = predict(self.model, LabelledBatches(ids, [0] * len(ids), batch_size,
                                                    shuffle=False), self.temperature)
        self.model.train(was_training)
        return probs


def texts_digest(data: LabelledData) -> str:
    return records_digest(f"{label}\t{text}\n" for text, label in zip(data.texts, data.labels))


def _start_from_lm(path: str | Path, model_options: dict, explicit: Collection[str] | None
                   ) -> tuple[Tokenizer, dict, dict]:
    """``--encoder-from lm.pt``: the language model's tokenizer, the model options that make
    the classifier's encoder the LM's (its cell, sizes and direction), and its weights. Asked
    for (``--bidirectional``), a one-layer LM is read both ways: its weights start the
    forward direction and the backward one starts fresh. Not by default: on Rotten Tomatoes
    that gave 77.2% against 78.5% read one way (5 minutes each, from the same LM); deeper
    stacks keep their one direction (upper layers would read twice as wide an input)."""
    from seqgen.tasks.lm import load_lm

    lm, tokenizer, _ = load_lm(path, "cpu")
    c = lm.config
    asked = explicit is None or "bidirectional" in explicit
    both_ways = asked and bool(model_options.get("bidirectional")) and c.layers == 1
    taken = {"cell": c.cell, "embed": c.embed, "hidden": c.hidden, "layers": c.layers,
             "bidirectional": both_ways}
    clash = [k for k, v in taken.items() if explicit and k in explicit
             and model_options.get(k) != v]
    if clash:
        raise UserError(f"--encoder-from {path}: the encoder is the language model's "
                        f"({c.layers}×{c.hidden} {c.cell}, embed {c.embed}"
                        + (", one direction" if c.layers > 1 else "") + "); leave out "
                        + ", ".join(f"--{k}" for k in clash))
    weights = {k: v for k, v in lm.state_dict().items()
               if k.startswith(("embedding.", "rnn."))}
    return tokenizer, {**model_options, **taken}, weights


def _pretrained_vectors(path: str | Path, tokenizer: Tokenizer, embed: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``--init-embeddings``: the vocabulary's vectors and which were found, read and checked
    before training prints anything."""
    from seqgen.data.vectors import read_vectors

    vectors, found = read_vectors(path, tokenizer.itos)
    if vectors.size(1) != embed:
        raise UserError(f"--init-embeddings: the vectors have {vectors.size(1)} dimensions; "
                        f"pass --embed {vectors.size(1)}")
    if not bool(found.any()):
        raise UserError(f"--init-embeddings: {path} has no vector for any word of the "
                        "vocabulary")
    return vectors, found


def _copy_vectors(model: nn.Module, vectors: torch.Tensor, found: torch.Tensor
                  ) -> str:
    """The found vectors into the embedding; the other words get random vectors of the same
    scale. Returns a line for the user."""
    with torch.no_grad():
        for member in members_of(model):
            weight = member.embedding.weight
            weight.normal_(0.0, float(vectors[found].std()))
            weight[found] = vectors[found]
            weight[0].zero_()  # padding
    return (f"pretrained vectors for {int(found.sum()):,} of {len(found):,} vocabulary words "
            f"({float(found.float().mean()):.0%})")


def train_classify(
    train_data: LabelledData,
    val_data: LabelledData | None,
    model_options: dict,
    text_options: TextOptions,
    train_config: TrainConfig,
    val_fraction: float = 0.1,
    class_weights: str = "none",
    init_embeddings: str | None = None,
    encoder_from: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
    explicit: Collection[str] | None = None,
) -> FitResult:
    """Train a text classifier. With ``resume``, the run in ``train_config.out_dir``
    continues with the options that define it (see ``seqgen.runs.Run``)."""
    check_choice("class_weights", class_weights, CLASS_WEIGHTS)
    if init_embeddings and encoder_from:
        raise UserError("--init-embeddings and --encoder-from both set the embedding: pass one")
    if init_embeddings and text_options.level != "word":
        raise UserError("--init-embeddings needs --level word: the vectors are words'")
    if val_data is None and not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    run = Run(TASK, train_config, resume, overwrite, explicit, reporter)
    run.check_size(lambda: build_classifier(ClassifierConfig(2, vocab_size=1,
                                                             **model_options)))
    tokenizer = lm_weights = None
    if encoder_from and not resume:
        tokenizer, model_options, lm_weights = _start_from_lm(encoder_from, model_options,
                                                              explicit)
    definition = run.define({
        **model_options, **to_dict(text_options), "batch_size": run.config.batch_size,
        "seed": run.config.seed, "val_fraction": None if val_data else val_fraction,
        "class_weights": class_weights, "init_embeddings": init_embeddings,
        "encoder_from": encoder_from})
    # runs of earlier versions had no leak rate (the option as given) and no word dropout
    model_options = {k: definition.get(k, EARLIER_RUNS.get(k, v))
                     for k, v in model_options.items()}
    text_options = from_dict(TextOptions, definition)
    val_fraction, class_weights = definition["val_fraction"], definition["class_weights"]
    run.check_data({"train": texts_digest(train_data),
                    "val": texts_digest(val_data) if val_data else None}, "the examples differ")
    config = run.config
    tokenizer = run.saved_tokenizer() or tokenizer
    if len(train_data) == 0:
        raise UserError("no training examples")
    for note in train_data.notes:
        run.reporter.message(note)
    if val_data is None:
        train_data, val_data = split_labelled(train_data, val_fraction, config.seed)
    if len(val_data) == 0:
        raise UserError("no validation examples: use more data, a larger --val-fraction or a "
                        "--val-file")
    # On --resume, the class order the weights were trained with.
    labels = run.saved["labels"] if run.saved else ordered_labels(train_data.labels)
    if len(labels) < 2:
        raise UserError(f"the training data has one class only ({labels[0]!r}): a classifier "
                        "needs two or more")
    if tokenizer is None:
        tokenizer = build_tokenizer(text_options.level, train_data.texts,
                                    **text_options.tokenizer_options())
    pretrained = None
    if init_embeddings and not resume:
        pretrained = _pretrained_vectors(init_embeddings, tokenizer, model_options["embed"])
    train_ids, cut = encode_texts(train_data.texts, tokenizer, text_options.max_len)
    val_ids, _ = encode_texts(val_data.texts, tokenizer, text_options.max_len)
    train_y, val_y = label_ids(train_data, labels, "training data"), label_ids(
        val_data, labels, "validation data")
    counts = Counter(train_data.labels)
    run.reporter.message(
        f"examples: {len(train_ids):,} for training ("
        + ", ".join(f"{label} {counts[label]:,}" for label in labels) + ")"
        + (f", {cut:,} cut to --max-len {text_options.max_len}" if cut else "")
        + f"; {len(val_ids):,} for validation; vocabulary {tokenizer.describe()}")
    model_config = ClassifierConfig(outputs=len(labels), vocab_size=tokenizer.vocab_size,
                                    **model_options)
    model = run.build(lambda: build_classifier(model_config))
    if lm_weights is not None:
        for member in members_of(model):
            member.load_state_dict(lm_weights, strict=False)
        run.reporter.message(f"embedding and {model_config.layers}×{model_config.hidden} "
                             f"{model_config.cell} from {encoder_from}")
    if pretrained is not None:
        run.reporter.message(_copy_vectors(model, *pretrained))
    batches = LabelledBatches(train_ids, train_y, config.batch_size, config.seed)
    weights = balanced_weights(train_y, len(labels)) if class_weights == "auto" else None
    meta = {
        "model_config": to_dict(model_config),
        "tokenizer": tokenizer.to_dict(),
        "labels": labels,
        "data": {"text_options": to_dict(text_options),
                 "files": [d.source for d in (train_data, val_data) if d.source]},
    }
    task = ClassifyTask(labels, tokenizer, weights, val_data.texts[:3], model_config.members)
    val = LabelledBatches(val_ids, val_y, max(64, config.batch_size), shuffle=False)
    c = model_config
    result = run.fit(model, task, batches, val, meta,
                     (f"{c.members} × " if c.members > 1 else "")
                     + f"{c.layers}×{c.hidden} {'bi-' if c.bidirectional else ''}{c.cell}, "
                     f"{c.pool} pooling")
    calibrate_run(run, val_data.inputs, val_y)
    return result


def calibrate_run(run: Run, inputs: Sequence, gold: list[int]) -> None:
    """After training, each checkpoint's temperature, fitted on the validation examples and
    stored in it (its weights stay as they are), so that ``classify`` and ``serve`` give
    calibrated probabilities; of text and of series classifiers alike."""
    if run.trainer is None or not run.trainer.world.main:
        return
    for name in ("best.pt", "last.pt"):
        path = run.out_dir / name
        if not path.is_file():
            continue
        classifier, saved = load_classifier(path, str(run.device))
        classifier.temperature = 1.0  # fitted afresh: a resumed run's weights have moved
        probs = classifier.probabilities(inputs)
        temperature = fit_temperature(probs, gold)
        before = expected_calibration_error(probs, gold)
        after = expected_calibration_error(with_temperature(probs, temperature), gold)
        save_checkpoint(path, {**saved, "calibration": {
            "temperature": temperature, "examples": len(gold), "ece_before": before,
            "ece_after": after}})
        if name == "best.pt":
            run.reporter.message(f"calibrated on the {len(gold):,} validation examples: "
                                 f"temperature {temperature:.2f}, expected calibration error "
                                 f"{before:.1%} → {after:.1%}")


def saved_temperature(saved: dict) -> float:
    """The checkpoint's calibrated temperature (1 for a run of an earlier seqgen)."""
    value = (saved.get("calibration") or {}).get("temperature", 1.0)
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def load_classifier(checkpoint: str | Path, device: str = "auto") -> tuple[Classifier, dict]:
    """A trained classifier (of texts, or of series) and the checkpoint's contents;
    everything is checked before anything is built."""
    saved = load_checkpoint(checkpoint, task=TASK)
    if (saved.get("data") or {}).get("inputs") == "signals":
        from seqgen.tasks.signals import load_signal_classifier

        return load_signal_classifier(checkpoint, saved, device)
    trained = load_trained(checkpoint, TASK, ClassifierConfig, build_classifier, device,
                           {"tokenizer": "vocab_size"})
    labels = trained.data.get("labels")
    if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)
            and len(labels) == trained.config.outputs):
        raise UserError(f"{checkpoint} does not hold the class names of its model")
    max_len = (trained.data.get("data") or {}).get("text_options", {}).get("max_len")
    return Classifier(trained.model, trained.tokenizers["tokenizer"], labels, max_len,
                      saved_temperature(trained.data)), trained.data


def evaluate_classifier(classifier, data, batch_size: int = 256, n_wrong: int = 5) -> dict:
    """Accuracy, macro-F1, each class's precision/recall/F1, the confusion matrix (rows: the
    true class), the expected calibration error of the probabilities as given (calibrated)
    and before calibration, and the examples the model got wrong most confidently; of a text
    classifier on labelled text or of a series classifier on labelled series."""
    if len(data) == 0:
        raise UserError("no examples to evaluate")
    gold = label_ids(data, classifier.labels, "evaluation data")
    probs = classifier.probabilities(data.inputs, batch_size)
    predicted = probs.argmax(-1).tolist()
    scores = classification_scores(predicted, gold, len(classifier.labels))
    wrong = sorted((i for i in range(len(gold)) if predicted[i] != gold[i]),
                   key=lambda i: -float(probs[i, predicted[i]]))[:n_wrong]
    temperature = classifier.temperature
    return {
        **scores,
        "ece": expected_calibration_error(probs, gold),
        "ece_uncalibrated": expected_calibration_error(
            with_temperature(probs, 1 / temperature), gold),
        "temperature": temperature,
        "labels": classifier.labels,
        "examples": len(gold),
        "confidently_wrong": [{"text": data.texts[i], "label": classifier.labels[gold[i]],
                               "predicted": classifier.labels[predicted[i]],
                               "probability": float(probs[i, predicted[i]])} for i in wrong],
    }


def _describe(data: dict) -> dict:
    return {"classes": data.get("labels")}


register(TaskSpec(TASK, "classifier", load_classifier, _describe,
                  routes="seqgen.serve.classify"))
