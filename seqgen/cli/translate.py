"""Translation commands: train-translate, translate, evaluate-translate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqgen.cli.common import (
    Alpha,
    AsJson,
    BatchSize,
    Beam,
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
    NoRepeatNgram,
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
from seqgen.config import TRANSLATE_LEVEL, TRANSLATE_VOCAB_SIZE, Seq2SeqConfig
from seqgen.config import TRANSLATE_TRAINING as PRESET
from seqgen.errors import UserError

SEQ2SEQ_MODEL = ("cell", "layers", "hidden", "embed", "dropout", "bidirectional", "attention",
                 "input_feeding")
PAIR_OPTIONS = ("level", "lowercase", "min_freq", "max_vocab", "vocab_size", "subword_type",
                "max_len", "encoding")

SourceFile = Annotated[Path | None, typer.Option(
    "--source-file", help="Source sentences, one per line (with --target-file).")]
TargetFile = Annotated[Path | None, typer.Option(
    "--target-file", help="Target sentences, line-aligned with --source-file.")]
Reverse = Annotated[bool, typer.Option(
    "--reverse", help="Swap the two columns: translate target → source.")]
SkipBadLines = Annotated[bool, typer.Option(
    "--skip-bad-lines", help="Skip malformed lines (and say how many) instead of stopping.")]
MaxLenRatio = Annotated[float, typer.Option(
    "--max-len-ratio", help="Longest output, in source tokens times this ratio (+2).")]


def _read_pairs(file, source_file, target_file, reverse, skip_bad_lines, encoding):
    from seqgen.tasks.translate import read_pairs

    data = read_pairs(file, source_file, target_file, reverse, skip_bad_lines, encoding)
    if data.skipped:
        err.print(f"skipped {data.skipped} bad line{'s' * (data.skipped != 1)}", markup=False)
    return data


@command("train-translate")
@training_options(PRESET)
def train_translate_cmd(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(
        help="Training pairs, source<TAB>target[<TAB>...] per line (Tatoeba/anki layout).")
    ] = None,
    source_file: SourceFile = None,
    target_file: TargetFile = None,
    reverse: Reverse = False,
    skip_bad_lines: SkipBadLines = False,
    val_file: Annotated[Path | None, typer.Option(
        "--val-file", help="Validation pairs, in the training file's layout.")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Without --val-file: share of the distinct source sentences "
        "held out for validation.")] = 0.05,
    val_bleu_sentences: Annotated[int, typer.Option(
        "--val-bleu-sentences", help="Validation sentences decoded (greedy) for BLEU.")] = 500,
    level: Level = TRANSLATE_LEVEL,
    lowercase: Lowercase = False,
    min_freq: MinFreq = 2,
    max_vocab: MaxVocab = None,
    vocab_size: VocabSize = TRANSLATE_VOCAB_SIZE,
    subword_type: SubwordType = "bpe",
    max_len: Annotated[int, typer.Option(
        "--max-len", help="Drop training pairs with a side longer than this (tokens).")] = 50,
    encoding: Encoding = "utf-8",
    cell: Cell = Seq2SeqConfig.cell,
    layers: Layers = Seq2SeqConfig.layers,
    hidden: Hidden = Seq2SeqConfig.hidden,
    embed: Embed = Seq2SeqConfig.embed,
    dropout: Dropout = Seq2SeqConfig.dropout,
    bidirectional: Annotated[bool, typer.Option(
        "--bidirectional/--unidirectional", help="Bidirectional encoder.")
    ] = Seq2SeqConfig.bidirectional,
    attention: Annotated[str, typer.Option(
        "--attention", help="luong (general score h·W·e) or concat (additive score "
        "v·tanh(W e + U h)), both on the decoder's current state (Luong et al. 2015); or none.")
    ] = Seq2SeqConfig.attention,
    input_feeding: Annotated[bool, typer.Option(
        "--input-feeding", help="Feed the previous attentional vector to the decoder "
        "(Luong); trains step by step, several times slower.")] = False,
    teacher_forcing: Annotated[float, typer.Option(
        "--teacher-forcing", help="Below 1: feed the model's own previous guess instead of the "
        "reference with probability 1-RATIO (trains step by step).")] = 1.0,
    teacher_forcing_decay: Annotated[str, typer.Option(
        "--teacher-forcing-decay", help="none (the rate stays --teacher-forcing), or scheduled "
        "sampling: linear or inverse-sigmoid from 1 down to --teacher-forcing.")] = "none",
    label_smoothing: Annotated[float, typer.Option(
        "--label-smoothing", help="Label smoothing of the training loss.")] = 0.0,
    select: Annotated[str, typer.Option(
        "--select", help="Keep best.pt and stop early on bleu or loss.")
    ] = PRESET.select_metric,
) -> None:
    """Train an encoder–decoder translation model on sentence pairs."""
    from seqgen.tasks.translate import PairOptions, train_translate
    from seqgen.training import check_training

    if select not in ("bleu", "loss"):
        raise UserError(f"unknown --select {select!r}: choose bleu or loss")
    config = train_config(PRESET, "translate", ctx).replace(select_metric=select)
    model_options = picked(ctx, *SEQ2SEQ_MODEL)
    pair_options = PairOptions(**picked(ctx, *PAIR_OPTIONS))
    Seq2SeqConfig(src_vocab=1, tgt_vocab=1, **model_options)  # bad options before reading
    check_training(config)
    train = _read_pairs(file, source_file, target_file, reverse, skip_bad_lines, encoding)
    val = None
    if val_file is not None:
        val = _read_pairs(val_file, None, None, reverse, skip_bad_lines, encoding)
    result = train_translate(train, val, model_options, pair_options, config, val_fraction,
                             val_bleu_sentences, teacher_forcing, label_smoothing,
                             resume=ctx.params["resume"], overwrite=ctx.params["overwrite"],
                             explicit=given_options(ctx),
                             teacher_forcing_decay=teacher_forcing_decay)
    report_fit(result)


@command("translate")
def translate_cmd(
    text: Annotated[list[str] | None, typer.Argument(
        help="Sentences to translate (default: --input, or one per line on stdin).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="File with one sentence per line.")] = None,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    beam: Beam = 5,
    alpha: Alpha = 0.6,
    n_best: Annotated[int, typer.Option(
        "--n-best", help="Show the N best translations of each sentence, with scores.")] = 1,
    max_len_ratio: MaxLenRatio = 2.0,
    batch_size: BatchSize = 64,
    device: Device = "auto",
    precision: Precision = "auto",
    encoding: Encoding = "utf-8",
    plot_attention: Annotated[Path | None, typer.Option(
        "--plot-attention", help="Save the attention of the first sentence's translation as "
        "an image (needs matplotlib: pip install 'seqgen[plots]').")] = None,
    no_repeat_ngram: NoRepeatNgram = 0,
) -> None:
    """Translate sentences with a trained model (arguments, --input file or stdin)."""
    from seqgen.data.reading import read_lines, read_stdin_lines, stdin_line_stream
    from seqgen.decoding import check_no_repeat
    from seqgen.tasks.translate import check_search, load_translator

    if text and input_file:
        raise UserError("give sentences as arguments or --input, not both")
    check_search(beam, n_best, max_len_ratio, batch_size, alpha)
    check_no_repeat(no_repeat_ngram)
    search = dict(beam=beam, alpha=alpha, n_best=n_best, max_len_ratio=max_len_ratio,
                  batch_size=batch_size, no_repeat_ngram=no_repeat_ngram)
    translator, _ = load_translator(checkpoint, device)
    interactive = not text and input_file is None and sys.stdin.isatty()
    with inference_precision(precision, device):
        if interactive:
            err.print("type a sentence and press Enter (Ctrl-D to quit)", markup=False)
            for line in stdin_line_stream(encoding):
                if line.strip():
                    _print_translations([line.strip()], translator, search, plot_attention)
            return
        if text:
            sentences = list(text)
        elif input_file is not None:
            sentences = read_lines(input_file, encoding)
        else:
            sentences = read_stdin_lines(encoding)
        _print_translations(sentences, translator, search, plot_attention)


def _print_translations(sentences, translator, search: dict, plot_attention=None):
    unknown = sorted({w for s in sentences for w in translator.src_tokenizer.unknown_pieces(s)})
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" …" if len(unknown) > 10 else "")
        sys.stderr.write(f"warning: the model never saw {shown} in training; read as <unk>\n")
    results = translator.translate(sentences, **search)
    for sentence, hyps in zip(sentences, results):
        if not sentence.strip():
            sys.stdout.write("\n")
        elif search["n_best"] == 1:
            sys.stdout.write(hyps[0].text + "\n")
        else:
            for k, h in enumerate(hyps, 1):
                sys.stdout.write(f"{k}\t{h.score:.4f}\t{h.text}\n")
            sys.stdout.write("\n")
    sys.stdout.flush()
    if plot_attention is not None and sentences:
        translator.plot_attention(sentences[0], results[0][0], plot_attention)
        err.print(f"attention of the first translation saved to {plot_attention}", markup=False)


@command("evaluate-translate")
def evaluate_translate_cmd(
    file: Annotated[Path | None, typer.Argument(
        help="Test pairs, source<TAB>target[<TAB>...] per line.")] = None,
    source_file: SourceFile = None,
    target_file: TargetFile = None,
    reverse: Reverse = False,
    skip_bad_lines: SkipBadLines = False,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    beam: Beam = 5,
    alpha: Alpha = 0.6,
    max_len_ratio: MaxLenRatio = 2.0,
    batch_size: BatchSize = 64,
    examples: Annotated[int, typer.Option("--examples", help="Examples to show.")] = 5,
    device: Device = "auto",
    precision: Precision = "auto",
    encoding: Encoding = "utf-8",
    as_json: AsJson = False,
) -> None:
    """BLEU and chrF of a translation model on test pairs (all references of a source count)."""
    from seqgen.tasks.translate import check_search, evaluate_translations, load_translator

    check_search(beam, 1, max_len_ratio, batch_size, alpha)
    data = _read_pairs(file, source_file, target_file, reverse, skip_bad_lines, encoding)
    translator, _ = load_translator(checkpoint, device)
    with inference_precision(precision, device):
        metrics = evaluate_translations(translator, data.pairs, beam, alpha, max_len_ratio,
                                        batch_size, examples)
    if as_json:
        sys.stdout.write(json.dumps(metrics, ensure_ascii=False) + "\n")
        return
    table = Table(show_header=False, box=None)
    table.add_row("BLEU", f"{metrics['bleu']:.2f}")
    table.add_row("BLEU (lowercased)", f"{metrics['bleu_lowercase']:.2f}")
    table.add_row("chrF", f"{metrics['chrf']:.2f}")
    table.add_row("sentences", f"{metrics['sentences']:,} ({metrics['references']:,} "
                  "references)")
    out.print(table)
    for ex in metrics["examples"]:
        out.print(f"\nsource     {ex['source']}\nreference  {ex['reference']}\n"
                  f"output     {ex['output']}", markup=False)
