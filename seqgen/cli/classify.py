"""Classification commands: train-classify, classify, evaluate-classify."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from seqgen.cli.common import (
    AsJson,
    BatchSize,
    Cell,
    Checkpoint,
    Device,
    Dropout,
    Embed,
    Encoding,
    Hidden,
    Layers,
    Level,
    Lowercase,
    MaxVocab,
    MinFreq,
    Precision,
    SubwordType,
    VocabSize,
    command,
    err,
    given_options,
    inference_precision,
    out,
    picked,
    report_fit,
    train_config,
    training_options,
)
from seqgen.config import CLASSIFY_TRAINING as PRESET
from seqgen.config import TEXT_MEMBERS, ClassifierConfig, ReservoirConfig
from seqgen.errors import UserError

CLASSIFIER_MODEL = ("cell", "layers", "hidden", "embed", "dropout", "bidirectional", "pool",
                    "leak_rate", "word_dropout", "members")
TEXT_OPTIONS = ("level", "lowercase", "min_freq", "max_vocab", "vocab_size", "subword_type",
                "max_len", "encoding")

DataPath = Annotated[Path | None, typer.Argument(
    help="A CSV/TSV file with a header (label and text columns found by name), or a folder "
    "with one folder of files per class (IMDB's layout).")]
Classes = Annotated[list[str] | None, typer.Option(
    "--class", help="LABEL=FILE: a file of this class's examples, one per line (repeat for "
    "each class; Rotten Tomatoes' layout).")]
TextColumn = Annotated[str | None, typer.Option(
    "--text-column", help="The text column's name in a CSV/TSV header.")]
LabelColumn = Annotated[str | None, typer.Option(
    "--label-column", help="The label column's name in a CSV/TSV header.")]
SkipBadLines = Annotated[bool, typer.Option(
    "--skip-bad-lines", help="Skip malformed rows (and say how many) instead of stopping.")]


def _read(path, classes, text_column, label_column, encoding, skip_bad_lines):
    from seqgen.data.labelled import parse_class_options, read_labelled

    data = read_labelled(path, parse_class_options(classes or []), text_column, label_column,
                         encoding, skip_bad_lines)
    if data.skipped:
        err.print(f"skipped {data.skipped} bad row{'s' * (data.skipped != 1)}", markup=False)
    return data


@command("train-classify")
@training_options(PRESET)
def train_classify_cmd(
    ctx: typer.Context,
    data: DataPath = None,
    classes: Classes = None,
    text_column: TextColumn = None,
    label_column: LabelColumn = None,
    skip_bad_lines: SkipBadLines = False,
    val_file: Annotated[Path | None, typer.Option(
        "--val-file", help="Validation examples, in the training data's layout (a file or "
        "a folder).")] = None,
    val_class: Annotated[list[str] | None, typer.Option(
        "--val-class", help="LABEL=FILE: validation examples of a class, one per line.")
    ] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Without validation data: share of each class held out.")
    ] = 0.1,
    level: Level = "word",
    lowercase: Lowercase = False,
    min_freq: MinFreq = 2,
    max_vocab: MaxVocab = None,
    vocab_size: VocabSize = 8000,
    subword_type: SubwordType = "bpe",
    max_len: Annotated[int, typer.Option(
        "--max-len", help="Read at most this many tokens of each text (its start).")] = 400,
    encoding: Encoding = "utf-8",
    cell: Cell = ClassifierConfig.cell,
    layers: Layers = ClassifierConfig.layers,
    hidden: Hidden = ClassifierConfig.hidden,
    embed: Embed = ClassifierConfig.embed,
    dropout: Dropout = ClassifierConfig.dropout,
    bidirectional: Annotated[bool, typer.Option(
        "--bidirectional/--unidirectional", help="Read each text in both directions.")
    ] = ClassifierConfig.bidirectional,
    pool: Annotated[str, typer.Option(
        "--pool", help="How the states over time become one vector: last (final states), "
        "mean, max (over time, per unit) or attention (a learned weighting).")
    ] = ClassifierConfig.pool,
    word_dropout: Annotated[float, typer.Option(
        "--word-dropout", help="Texts: share of training words read as <unk>.")
    ] = ClassifierConfig.word_dropout,
    members: Annotated[int, typer.Option(
        "--members", help="Train this many classifiers side by side on the same batches "
        "(each on its own loss) and average their probabilities (series: default 1).")
    ] = TEXT_MEMBERS,
    class_weights: Annotated[str, typer.Option(
        "--class-weights", help="none, or auto: weigh each class's loss by how rare it is.")
    ] = "none",
    init_embeddings: Annotated[Path | None, typer.Option(
        "--init-embeddings", help="Start the word embedding from pretrained vectors "
        "(GloVe / word2vec text format).")] = None,
    encoder_from: Annotated[Path | None, typer.Option(
        "--encoder-from", help="Start the embedding and recurrent layers from a seqgen "
        "language model (its tokenizer, cell and sizes are used).")] = None,
    select: Annotated[str, typer.Option(
        "--select", help="Keep best.pt and stop early on accuracy, macro_f1 or loss.")
    ] = PRESET.select_metric,
    leak_rate: Annotated[float, typer.Option(
        "--leak-rate", help="--cell leaky, --model esn: the units' α in h = (1-α) h + α "
        "tanh(…).")] = ClassifierConfig.leak_rate,
    model: Annotated[str, typer.Option(
        "--model", help="Series: rnn (the recurrent classifier) or esn (an echo state "
        "network with a ridge readout).")] = "rnn",
    fcn: Annotated[int, typer.Option(
        "--fcn", help="Series: channels of LSTM-FCN's convolutions beside the recurrence "
        "(0: none; default for series 64).")] = 0,
    znorm: Annotated[bool, typer.Option(
        "--znorm/--no-znorm", help="Series: z-normalise each series (the UCR convention).")
    ] = True,
    units: Annotated[int, typer.Option("--units", help="esn: reservoir units.")
                     ] = ReservoirConfig.units,
    spectral_radius: Annotated[float, typer.Option(
        "--spectral-radius", help="esn: the reservoir's largest |eigenvalue|.")
    ] = ReservoirConfig.spectral_radius,
    input_scaling: Annotated[float, typer.Option("--input-scaling", help="esn: input "
                                                 "weights in ±this.")
                             ] = ReservoirConfig.input_scaling,
    density: Annotated[float, typer.Option("--density", help="esn: share of non-zero "
                                           "recurrent weights.")] = ReservoirConfig.density,
    ridge: Annotated[float, typer.Option("--ridge", help="esn: the readout's ridge penalty.")
                     ] = ReservoirConfig.ridge,
    features: Annotated[str, typer.Option(
        "--features", help="esn: the mean of the states, or the last.")
    ] = ReservoirConfig.features,
) -> None:
    """Train a classifier of texts (sentiment, topics, any labels) or of numeric series (a
    .ts file or a CSV of a label and values a row) on labelled examples."""
    from seqgen.tasks.classify import TextOptions, train_classify
    from seqgen.training import check_training

    if select not in ("accuracy", "macro_f1", "loss"):
        raise UserError(f"unknown --select {select!r}: choose accuracy, macro_f1 or loss")
    from seqgen.data.signals import is_signal_file

    config = train_config(PRESET, "classify", ctx).replace(select_metric=select)
    if data is not None and is_signal_file(data):
        _train_signals(ctx, config, data, val_file, label_column, encoding, model)
        return
    model_options = picked(ctx, *CLASSIFIER_MODEL)
    text_options = TextOptions(**picked(ctx, *TEXT_OPTIONS))
    ClassifierConfig(2, vocab_size=1, **model_options)  # bad options before reading
    check_training(config)
    if val_file is not None and val_class:
        raise UserError("give --val-file or --val-class options, not both")
    train = _read(data, classes, text_column, label_column, encoding, skip_bad_lines)
    val = None
    if val_file is not None or val_class:
        val = _read(val_file, val_class, text_column, label_column, encoding, skip_bad_lines)
    result = train_classify(
        train, val, model_options, text_options, config, val_fraction, class_weights,
        str(init_embeddings) if init_embeddings else None,
        str(encoder_from) if encoder_from else None, resume=ctx.params["resume"],
        overwrite=ctx.params["overwrite"], explicit=given_options(ctx))
    report_fit(result)


ESN_OPTIONS = ("units", "spectral_radius", "leak_rate", "input_scaling", "density", "ridge",
               "features")


def _train_signals(ctx, config, data, val_file, label_column, encoding, model) -> None:
    """train-classify on numeric series: the series classifier's defaults where the user gave
    no option."""
    from seqgen.data.signals import read_signals
    from seqgen.tasks.signals import SIGNAL_DEFAULTS, SIGNAL_STEPS, train_signal_classifier

    given = given_options(ctx)
    if "word_dropout" in given:
        raise UserError("--word-dropout hides words of texts: series have none")
    if model == "esn" and "members" in given:
        raise UserError("--members trains several recurrent classifiers; --model esn fits "
                        "one readout")
    if model == "esn":
        options = picked(ctx, *ESN_OPTIONS)
    else:
        options = {**picked(ctx, *CLASSIFIER_MODEL, "leak_rate", "fcn"),
                   **{k: v for k, v in SIGNAL_DEFAULTS.items() if k not in given}}
    if "batch_size" not in given:
        config = config.replace(batch_size=16)
    if "ema" not in given:  # the text preset's average, not measured on series
        config = config.replace(ema=0.0)
    if "select" not in given:  # a fifth of a UCR set is a dozen series: accuracy ties early
        config = config.replace(select_metric="loss")
    if model != "esn" and not {"epochs", "max_steps", "time_budget"} & set(given):
        config = config.replace(epochs=None, max_steps=SIGNAL_STEPS)
    train = read_signals(data, label_column, encoding)
    val = read_signals(val_file, label_column, encoding) if val_file else None
    result = train_signal_classifier(
        train, val, model, options, config, ctx.params["znorm"],
        ctx.params["val_fraction"] if "val_fraction" in given else 0.2,
        resume=ctx.params["resume"], overwrite=ctx.params["overwrite"], explicit=given)
    report_fit(result)


def _read_any(path, classes, text_column, label_column, encoding, skip_bad_lines):
    """Labelled examples: series (a .ts file, a CSV of values) or texts."""
    from seqgen.data.signals import is_signal_file, read_signals

    if path is not None and is_signal_file(path):
        return read_signals(path, label_column, encoding)
    return _read(path, classes, text_column, label_column, encoding, skip_bad_lines)


@command("classify")
def classify_cmd(
    text: Annotated[list[str] | None, typer.Argument(
        help="Texts to classify (default: --input, or one per line on stdin).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="File with one text per line.")] = None,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    top: Annotated[int, typer.Option("--top", help="Show the N most likely labels.")] = 1,
    batch_size: BatchSize = 256,
    device: Device = "auto",
    precision: Precision = "auto",
    encoding: Encoding = "utf-8",
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per text: the text and its labels with "
        "probabilities.")] = False,
) -> None:
    """Label texts with a trained classifier: label and probability, one line per text."""
    from seqgen.tasks.classify import Classifier, load_classifier

    if text and input_file:
        raise UserError("give texts as arguments or --input, not both")
    if top < 1:
        raise UserError(f"--top must be a positive whole number, got {top}")
    if batch_size < 1:
        raise UserError("--batch-size must be positive")
    classifier, _ = load_classifier(checkpoint, device)
    from seqgen.data.reading import read_lines, read_stdin_lines

    if not isinstance(classifier, Classifier):  # a series classifier: series from a file
        from seqgen.data.signals import read_signals

        if input_file is None:
            raise UserError("a series classifier reads series: give them with --input FILE "
                            "(.ts, or a CSV of values a row)")
        inputs = read_signals(input_file, encoding=encoding).series
        shown = [f"series {i + 1}" for i in range(len(inputs))]
    else:
        if text:
            inputs = list(text)
        elif input_file is not None:
            inputs = read_lines(input_file, encoding)
        else:
            if sys.stdin.isatty():
                err.print("type one text per line, then Ctrl-D", markup=False)
            inputs = read_stdin_lines(encoding)
        shown = inputs
    with inference_precision(precision, device):
        probs = classifier.probabilities(inputs, batch_size)
    k = min(top, len(classifier.labels))
    for line, p in zip(shown, probs):
        if not line.strip():
            sys.stdout.write("{}\n" if as_json else "\n")
            continue
        best = p.topk(k)
        ranked = [(classifier.labels[int(i)], float(v)) for v, i in zip(best.values,
                                                                         best.indices)]
        if as_json:
            sys.stdout.write(json.dumps({"text": line, "labels": [
                {"label": label, "probability": round(v, 6)} for label, v in ranked]},
                ensure_ascii=False) + "\n")
        else:
            sys.stdout.write("\t".join(f"{label}\t{v:.3f}" for label, v in ranked) + "\n")
    sys.stdout.flush()


@command("evaluate-classify")
def evaluate_classify_cmd(
    data: DataPath = None,
    classes: Classes = None,
    text_column: TextColumn = None,
    label_column: LabelColumn = None,
    skip_bad_lines: SkipBadLines = False,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    batch_size: BatchSize = 256,
    examples: Annotated[int, typer.Option(
        "--examples", help="How many of the most confidently wrong examples to show.")] = 5,
    device: Device = "auto",
    precision: Precision = "auto",
    encoding: Encoding = "utf-8",
    as_json: AsJson = False,
) -> None:
    """Accuracy, macro-F1, per-class precision and recall, the confusion matrix, the expected
    calibration error and the most confidently wrong examples of a classifier on labelled
    data."""
    from seqgen.tasks.classify import evaluate_classifier, load_classifier

    if examples < 0:
        raise UserError("--examples must be 0 or more")
    labelled = _read_any(data, classes, text_column, label_column, encoding, skip_bad_lines)
    classifier, _ = load_classifier(checkpoint, device)
    with inference_precision(precision, device):
        report = evaluate_classifier(classifier, labelled, batch_size, examples)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    labels = report["labels"]
    out.print(f"accuracy {report['accuracy']:.2%}   macro-F1 {report['macro_f1']:.2%}   "
              f"({report['examples']:,} examples)", markup=False)
    calibrated = (f" (temperature {report['temperature']:.2f} fitted on validation; "
                  f"{report['ece_uncalibrated']:.1%} before)" if report["temperature"] != 1
                  else " (uncalibrated: the checkpoint holds no temperature)")
    out.print(f"expected calibration error {report['ece']:.1%}{calibrated}", markup=False)
    table = Table("class", "precision", "recall", "F1", "support", box=None)
    for label, c in zip(labels, report["per_class"]):
        table.add_row(Text(label), f"{c['precision']:.2%}", f"{c['recall']:.2%}",
                      f"{c['f1']:.2%}", f"{c['support']:,}")
    out.print(table)
    matrix = Table("true \\ predicted", box=None)
    for label in labels:
        matrix.add_column(Text(label))
    for label, row in zip(labels, report["confusion"]):
        matrix.add_row(Text(label), *(f"{n:,}" for n in row))
    out.print(matrix)
    if report["confidently_wrong"]:
        out.print("\nmost confidently wrong:", markup=False)
    for ex in report["confidently_wrong"]:
        out.print(f"  {ex['label']} read as {ex['predicted']} ({ex['probability']:.2f}): "
                  f"{ex['text'][:160]}", markup=False)
