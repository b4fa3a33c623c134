"""The ``seqgen`` command line: parse options, call the library, print. No logic lives here."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from seqgen.config import TrainConfig, parse_duration
from seqgen.distributed import is_main_process
from seqgen.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train and run classic recurrent sequence models.",
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def command(name: str, **kwargs):
    """Register a command whose UserErrors become one line on stderr and exit code 2."""

    def register(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            try:
                return fn(*args, **kw)
            except UserError as exc:
                sys.stderr.write(f"error: {exc}\n")
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                sys.stderr.write("interrupted\n")
                raise typer.Exit(130) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return register


# Options shared by every training command (one definition, defaults per command).
Out = Annotated[Path, typer.Option("--out", help="Folder for best.pt, last.pt, metrics.jsonl.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Sequences per batch.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Stop after this many epochs.")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps.")]
TimeBudget = Annotated[str | None, typer.Option(
    "--time-budget", help="Stop after this much training time, e.g. 90s, 10m, 2h.")]
Optimizer = Annotated[str, typer.Option("--optimizer", help="adamw or sgd.")]
Lr = Annotated[float, typer.Option("--lr", help="Peak learning rate.")]
WeightDecay = Annotated[float, typer.Option("--weight-decay", help="Decoupled weight decay.")]
Momentum = Annotated[float, typer.Option("--momentum", help="SGD momentum.")]
Schedule = Annotated[str, typer.Option(
    "--schedule", help="cosine (over the budget), plateau (halve when validation stalls) "
    "or constant.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Linear warm-up steps.")]
Clip = Annotated[float, typer.Option("--clip", help="Clip the gradient norm (0: off).")]
EvalEvery = Annotated[int, typer.Option(
    "--eval-every", help="Validate every N steps (and at each epoch end).")]
Patience = Annotated[int | None, typer.Option(
    "--patience", help="Stop after N validations without improvement.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (runs repeat exactly on CPU).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an earlier run's checkpoints in --out.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing while training.")]
CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Where tokenised corpora are cached (default ~/.cache/seqgen).")]
Cell = Annotated[str, typer.Option("--cell", help="lstm, gru, rnn or rnn-relu.")]
Layers = Annotated[int, typer.Option("--layers", help="Stacked recurrent layers.")]
Hidden = Annotated[int, typer.Option("--hidden", help="Hidden units per layer.")]
Embed = Annotated[int, typer.Option("--embed", help="Embedding size.")]
Dropout = Annotated[float, typer.Option("--dropout", help="Dropout probability.")]
Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")]
Encoding = Annotated[str, typer.Option("--encoding", help="Text encoding.")]
Beam = Annotated[int, typer.Option("--beam", help="Beam size; 1 is greedy search.")]
Alpha = Annotated[float, typer.Option(
    "--alpha", help="Beam length penalty ((5+len)/6)^alpha; 0 is none.")]


def train_config(out_dir: Path, batch_size: int, epochs: int | None, max_steps: int | None,
                 time_budget: str | None, optimizer: str, lr: float, weight_decay: float,
                 momentum: float, schedule: str, warmup: int, clip: float, eval_every: int,
                 patience: int | None, device: str, seed: int, quiet: bool,
                 select_metric: str = "loss", default_epochs: int = 10) -> TrainConfig:
    budget = parse_duration(time_budget)
    if epochs is None and max_steps is None and budget is None:
        epochs = default_epochs
    return TrainConfig(
        out_dir=str(out_dir), batch_size=batch_size, epochs=epochs, max_steps=max_steps,
        time_budget=budget, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
        momentum=momentum, schedule=schedule, warmup_steps=warmup, clip=clip,
        eval_every=eval_every, patience=patience, device=device, seed=seed, quiet=quiet,
        select_metric=select_metric,
    )


def report_fit(result) -> None:
    if result.reason == "diverged":
        sys.stderr.write(
            f"error: training stopped at step {result.step}: the loss became NaN/inf. The last "
            f"good checkpoints in {result.out_dir} are kept; try a lower --lr or --clip.\n"
        )
        raise typer.Exit(1)
    if not is_main_process():
        return
    best = "" if result.best is None else f"; best validation {result.best:.4f}"
    err.print(f"stopped ({result.reason}) at step {result.step}{best}; checkpoints in "
              f"{result.out_dir}", markup=False)
    if result.reason == "interrupted":
        err.print("continue with the same command and --resume", markup=False)
        raise typer.Exit(130)


@command("train-lm")
def train_lm_cmd(
    corpus: Annotated[list[Path], typer.Argument(help="Text files or folders of .txt files.")],
    level: Annotated[str, typer.Option("--level", help="char, word or subword.")] = "char",
    lowercase: Annotated[bool, typer.Option("--lowercase", help="Lowercase words.")] = False,
    pretokenized: Annotated[bool, typer.Option(
        "--pretokenized", help="Word level: split on spaces only (Penn Treebank).")] = False,
    max_vocab: Annotated[int | None, typer.Option(
        "--max-vocab", help="Word level: keep the N most frequent words.")] = None,
    min_freq: Annotated[int, typer.Option(
        "--min-freq", help="Word level: drop words seen fewer times.")] = 1,
    vocab_size: Annotated[int, typer.Option(
        "--vocab-size", help="Subword level: sentencepiece vocabulary size.")] = 4000,
    subword_type: Annotated[str, typer.Option(
        "--subword-type", help="Subword level: bpe or unigram.")] = "bpe",
    encoding: Encoding = "utf-8",
    val_file: Annotated[Path | None, typer.Option(
        "--val-file", help="Validation text (default: the end of the corpus).")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Share of the corpus kept for validation.")] = 0.05,
    bptt: Annotated[int, typer.Option("--bptt", help="Truncated-BPTT length.")] = 64,
    cell: Cell = "lstm",
    layers: Layers = 2,
    hidden: Hidden = 512,
    embed: Embed = 128,
    dropout: Dropout = 0.2,
    tie_weights: Annotated[bool, typer.Option(
        "--tie-weights", help="Share input embedding and output weights.")] = False,
    init: Annotated[str, typer.Option(
        "--init", help="default, or identity (IRNN) for plain RNNs.")] = "default",
    out_dir: Out = Path("checkpoints/lm"),
    batch_size: BatchSize = 32,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    time_budget: TimeBudget = None,
    optimizer: Optimizer = "adamw",
    lr: Lr = 3e-3,
    weight_decay: WeightDecay = 0.0,
    momentum: Momentum = 0.0,
    schedule: Schedule = "cosine",
    warmup: Warmup = 50,
    clip: Clip = 1.0,
    eval_every: EvalEvery = 200,
    patience: Patience = None,
    device: Device = "auto",
    seed: Seed = 1234,
    resume: Resume = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    cache_dir: CacheDir = None,
) -> None:
    """Train a character, word or subword language model on your text."""
    from seqgen.tasks.lm import CorpusOptions, train_lm

    config = train_config(out_dir, batch_size, epochs, max_steps, time_budget, optimizer, lr,
                          weight_decay, momentum, schedule, warmup, clip, eval_every, patience,
                          device, seed, quiet)
    corpus_options = CorpusOptions(level, lowercase, pretokenized, max_vocab, min_freq,
                                   vocab_size, subword_type, encoding)
    model_options = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout,
                         tie_weights=tie_weights, init=init)
    result = train_lm([str(p) for p in corpus], model_options, corpus_options, config, bptt,
                      str(val_file) if val_file else None, val_fraction, resume, overwrite,
                      cache_dir)
    report_fit(result)


@command("sample")
def sample_cmd(
    checkpoint: Checkpoint = Path("checkpoints/lm/best.pt"),
    temp: Annotated[float, typer.Option("--temp", help="Temperature; 0 is greedy.")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Sample from the k likeliest.")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")] = 1.0,
    prime: Annotated[str, typer.Option("--prime", help="Text to start from.")] = "",
    length: Annotated[int, typer.Option("--length", help="Tokens to generate.")] = 500,
    num_samples: Annotated[int, typer.Option(
        "--num-samples", "-n", help="Independent samples, generated as one batch.")] = 1,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for repeatable samples.")] = None,
    device: Device = "auto",
) -> None:
    """Generate text from a trained language model, streamed as it is produced."""
    from seqgen.tasks.lm import load_lm, sample_tokens, start_tokens

    if length < 1 or num_samples < 1:
        raise UserError("--length and --num-samples must be positive")
    if not 0 < top_p <= 1:
        raise UserError("--top-p must be in (0, 1]")
    if top_k < 0 or temp < 0:
        raise UserError("--top-k and --temp cannot be negative")
    model, tokenizer, _ = load_lm(checkpoint, device)
    unknown = tokenizer.unknown_pieces(prime)
    if unknown:
        sys.stderr.write(f"warning: the model never saw {', '.join(map(repr, unknown[:10]))} "
                         "in training; read as <unk>\n")
    model_device = next(model.parameters()).device
    prev = start_tokens(tokenizer, prime)[-1] if prime else None
    previous = [prev] * num_samples
    texts = [prime] * num_samples
    write = sys.stdout.write
    if num_samples == 1:
        write(prime)
    for tokens in sample_tokens(model, tokenizer, prime, length, temp, top_k, top_p,
                                num_samples, seed, model_device):
        for i, token in enumerate(tokens.tolist()):
            piece = tokenizer.piece_text(previous[i], token)
            previous[i] = token
            if num_samples == 1:
                write(piece)
                sys.stdout.flush()
            else:
                texts[i] += piece
    if num_samples == 1:
        write("\n")
    else:
        for i, text in enumerate(texts, 1):
            write(f"--- sample {i} ---\n{text}\n")
    sys.stdout.flush()


@command("evaluate-lm")
def evaluate_lm_cmd(
    files: Annotated[list[Path], typer.Argument(help="Text files or folders to score.")],
    checkpoint: Checkpoint = Path("checkpoints/lm/best.pt"),
    batch_size: BatchSize = 16,
    device: Device = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Loss, perplexity and bits per character of a language model on some text."""
    from seqgen.tasks.lm import evaluate_lm

    metrics = evaluate_lm(checkpoint, [str(f) for f in files], batch_size, device, cache_dir)
    if as_json:
        out.print(json.dumps(metrics))
        return
    table = Table(show_header=False, box=None)
    table.add_row("loss (nats/token)", f"{metrics['loss']:.4f}")
    table.add_row("perplexity", f"{metrics['ppl']:.2f}")
    table.add_row("bits per character", f"{metrics['bpc']:.4f}")
    table.add_row("tokens scored", f"{metrics['tokens']:,}")
    table.add_row("unknown tokens", f"{metrics['unk_rate']:.2%}")
    out.print(table)


# ------------------------------------------------------------------ translation
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


def _read_translate_pairs(file, source_file, target_file, reverse, skip_bad_lines, encoding):
    from seqgen.tasks.translate import read_pairs

    data = read_pairs(file, source_file, target_file, reverse, skip_bad_lines, encoding)
    if data.skipped:
        err.print(f"skipped {data.skipped} bad line{'s' * (data.skipped != 1)}", markup=False)
    return data


@command("train-translate")
def train_translate_cmd(
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
    level: Annotated[str, typer.Option("--level", help="word, subword or char.")] = "word",
    lowercase: Annotated[bool, typer.Option("--lowercase", help="Lowercase both sides.")
                         ] = False,
    min_freq: Annotated[int, typer.Option(
        "--min-freq", help="Word level: rarer words become <unk>.")] = 2,
    max_vocab: Annotated[int | None, typer.Option(
        "--max-vocab", help="Word level: keep the N most frequent words per side.")] = None,
    vocab_size: Annotated[int, typer.Option(
        "--vocab-size", help="Subword level: sentencepiece vocabulary per side.")] = 8000,
    subword_type: Annotated[str, typer.Option(
        "--subword-type", help="Subword level: bpe or unigram.")] = "bpe",
    max_len: Annotated[int, typer.Option(
        "--max-len", help="Drop training pairs with a side longer than this (tokens).")] = 50,
    encoding: Encoding = "utf-8",
    cell: Cell = "lstm",
    layers: Layers = 1,
    hidden: Hidden = 256,
    embed: Embed = 256,
    dropout: Dropout = 0.2,
    bidirectional: Annotated[bool, typer.Option(
        "--bidirectional/--unidirectional", help="Bidirectional encoder.")] = True,
    attention: Annotated[str, typer.Option(
        "--attention", help="luong (general score), bahdanau (additive score) or none.")
    ] = "luong",
    input_feeding: Annotated[bool, typer.Option(
        "--input-feeding", help="Feed the previous attentional vector to the decoder "
        "(Luong); trains step by step, several times slower.")] = False,
    teacher_forcing: Annotated[float, typer.Option(
        "--teacher-forcing", help="Below 1: scheduled sampling, feeding the model's own "
        "guess with probability 1-RATIO (trains step by step).")] = 1.0,
    label_smoothing: Annotated[float, typer.Option(
        "--label-smoothing", help="Label smoothing of the training loss.")] = 0.0,
    select: Annotated[str, typer.Option(
        "--select", help="Keep best.pt and stop early on bleu or loss.")] = "bleu",
    out_dir: Out = Path("checkpoints/translate"),
    batch_size: BatchSize = 64,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    time_budget: TimeBudget = None,
    optimizer: Optimizer = "adamw",
    lr: Lr = 2e-3,
    weight_decay: WeightDecay = 0.01,
    momentum: Momentum = 0.0,
    schedule: Schedule = "cosine",
    warmup: Warmup = 100,
    clip: Clip = 1.0,
    eval_every: EvalEvery = 500,
    patience: Patience = None,
    device: Device = "auto",
    seed: Seed = 1234,
    resume: Resume = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Train an encoder–decoder translation model on sentence pairs."""
    from seqgen.tasks.translate import PairOptions, train_translate

    if select not in ("bleu", "loss"):
        raise UserError(f"unknown --select {select!r}: choose bleu or loss")
    config = train_config(out_dir, batch_size, epochs, max_steps, time_budget, optimizer, lr,
                          weight_decay, momentum, schedule, warmup, clip, eval_every, patience,
                          device, seed, quiet, select_metric=select)
    train = _read_translate_pairs(file, source_file, target_file, reverse, skip_bad_lines,
                                  encoding)
    val = None
    if val_file is not None:
        val = _read_translate_pairs(val_file, None, None, reverse, skip_bad_lines, encoding)
    pair_options = PairOptions(level, lowercase, min_freq, max_vocab, vocab_size, subword_type,
                               max_len, encoding)
    model_options = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout,
                         bidirectional=bidirectional, attention=attention,
                         input_feeding=input_feeding)
    result = train_translate(train, val, model_options, pair_options, config, val_fraction,
                             val_bleu_sentences, teacher_forcing, label_smoothing, resume,
                             overwrite)
    report_fit(result)


@command("translate")
def translate_cmd(
    text: Annotated[list[str] | None, typer.Argument(
        help="Sentences to translate (default: --input, or one per line on stdin).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="File with one sentence per line.")] = None,
    checkpoint: Checkpoint = Path("checkpoints/translate/best.pt"),
    beam: Beam = 5,
    alpha: Alpha = 0.6,
    n_best: Annotated[int, typer.Option(
        "--n-best", help="Show the N best translations of each sentence, with scores.")] = 1,
    max_len_ratio: MaxLenRatio = 2.0,
    batch_size: BatchSize = 64,
    device: Device = "auto",
    encoding: Encoding = "utf-8",
    plot_attention: Annotated[Path | None, typer.Option(
        "--plot-attention", help="Save the attention of the first sentence's translation as "
        "an image (needs matplotlib: pip install 'seqgen[plots]').")] = None,
) -> None:
    """Translate sentences with a trained model (arguments, --input file or stdin)."""
    from seqgen.tasks.translate import check_search, load_translator

    if text and input_file:
        raise UserError("give sentences as arguments or --input, not both")
    check_search(beam, n_best, max_len_ratio, batch_size)
    translator, _ = load_translator(checkpoint, device)
    interactive = not text and input_file is None and sys.stdin.isatty()
    if interactive:
        err.print("type a sentence and press Enter (Ctrl-D to quit)", markup=False)
        for line in sys.stdin:
            if line.strip():
                _print_translations([line.strip()], translator, beam, alpha, n_best,
                                    max_len_ratio, batch_size, plot_attention)
        return
    if text:
        sentences = list(text)
    elif input_file is not None:
        if not input_file.is_file():
            raise UserError(f"file not found: {input_file}")
        try:
            sentences = input_file.read_text(encoding=encoding).splitlines()
        except UnicodeDecodeError:
            raise UserError(f"{input_file} is not {encoding} text; pass --encoding") from None
    else:
        sentences = sys.stdin.read().splitlines()
    _print_translations(sentences, translator, beam, alpha, n_best, max_len_ratio, batch_size,
                        plot_attention)


def _print_translations(sentences, translator, beam, alpha, n_best, max_len_ratio, batch_size,
                        plot_attention=None):
    unknown = sorted({w for s in sentences for w in translator.src_tokenizer.unknown_pieces(s)})
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" …" if len(unknown) > 10 else "")
        sys.stderr.write(f"warning: the model never saw {shown} in training; read as <unk>\n")
    results = translator.translate(sentences, beam, alpha, n_best, max_len_ratio, batch_size)
    for sentence, hyps in zip(sentences, results):
        if not sentence.strip():
            sys.stdout.write("\n")
        elif n_best == 1:
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
    checkpoint: Checkpoint = Path("checkpoints/translate/best.pt"),
    beam: Beam = 5,
    alpha: Alpha = 0.6,
    max_len_ratio: MaxLenRatio = 2.0,
    batch_size: BatchSize = 64,
    examples: Annotated[int, typer.Option("--examples", help="Examples to show.")] = 5,
    device: Device = "auto",
    encoding: Encoding = "utf-8",
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
) -> None:
    """BLEU and chrF of a translation model on test pairs (all references of a source count)."""
    from seqgen.tasks.translate import check_search, evaluate_translations, load_translator

    check_search(beam, 1, max_len_ratio, batch_size)
    data = _read_translate_pairs(file, source_file, target_file, reverse, skip_bad_lines,
                                 encoding)
    translator, _ = load_translator(checkpoint, device)
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


# ---------------------------------------------------------------- captioning
CaptionFormat = Annotated[str, typer.Option(
    "--format", help="Caption file layout: auto, coco, karpathy, flickr8k, csv or jsonl.")]
ImagesDir = Annotated[Path | None, typer.Option(
    "--images", help="Folder the caption file's image names are relative to "
    "(default: an images/ folder beside it, else its folder).")]


@command("train-caption")
def train_caption_cmd(
    captions: Annotated[Path, typer.Argument(help="Caption file (COCO, Karpathy JSON, "
                                             "Flickr8k.token.txt, CSV or JSONL).")],
    images: ImagesDir = None,
    fmt: CaptionFormat = "auto",
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Share of images held out when the file has no split.")] = 0.05,
    min_freq: Annotated[int, typer.Option(
        "--min-freq", help="Drop caption words seen fewer times.")] = 3,
    encoder: Annotated[str, typer.Option(
        "--encoder", help="efficientnet-lite0, small-cnn, or a torchvision backbone: resnet18/34/"
        "50/101/152, mobilenet_v3_small/large, efficientnet_b0-b3, convnext_tiny, "
        "regnet_y_400mf, densenet121.")] = "efficientnet-lite0",
    pretrained: Annotated[bool, typer.Option(
        "--pretrained/--no-pretrained", help="Start from ImageNet weights.")] = True,
    encoder_weights: Annotated[Path | None, typer.Option(
        "--encoder-weights", help="A local state dict for the encoder.")] = None,
    finetune_encoder: Annotated[bool, typer.Option(
        "--finetune-encoder", help="Train the encoder too (end to end; no feature cache).")
    ] = False,
    encoder_lr: Annotated[float | None, typer.Option(
        "--encoder-lr", help="Learning rate of a trained encoder (default: --lr / 10 for "
        "a pretrained one, --lr for small-cnn).")
    ] = None,
    augment: Annotated[bool, typer.Option(
        "--augment/--no-augment", help="Random crops and flips of training images "
        "(runs the encoder every epoch).")] = False,
    feature_cache: Annotated[bool, typer.Option(
        "--feature-cache/--no-feature-cache", help="Cache frozen-encoder features on disk.")
    ] = True,
    val_images: Annotated[int, typer.Option(
        "--val-images", help="Validation images captioned for BLEU at each validation.")] = 200,
    cell: Cell = "lstm",
    layers: Layers = 1,
    hidden: Hidden = 256,
    embed: Embed = 256,
    dropout: Dropout = 0.5,
    out_dir: Out = Path("checkpoints/caption"),
    batch_size: BatchSize = 32,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    time_budget: TimeBudget = None,
    optimizer: Optimizer = "adamw",
    lr: Lr = 2e-3,
    weight_decay: WeightDecay = 0.1,
    momentum: Momentum = 0.0,
    schedule: Schedule = "cosine",
    warmup: Warmup = 50,
    clip: Clip = 5.0,
    eval_every: EvalEvery = 200,
    patience: Patience = None,
    device: Device = "auto",
    seed: Seed = 1234,
    resume: Resume = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    cache_dir: CacheDir = None,
) -> None:
    """Train a Show-and-Tell captioner on images and their captions."""
    from seqgen.tasks.caption import CaptionDataOptions, EncoderOptions, train_caption

    config = train_config(out_dir, batch_size, epochs, max_steps, time_budget, optimizer, lr,
                          weight_decay, momentum, schedule, warmup, clip, eval_every, patience,
                          device, seed, quiet, select_metric="bleu4", default_epochs=20)
    if val_images < 1:
        raise UserError("--val-images must be positive")
    data_options = CaptionDataOptions(fmt, val_fraction, min_freq, augment=augment,
                                      feature_cache=feature_cache, val_images=val_images)
    encoder_options = EncoderOptions(encoder, pretrained,
                                     str(encoder_weights) if encoder_weights else None,
                                     finetune_encoder, encoder_lr)
    model_options = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout)
    result = train_caption(captions, images, model_options, data_options, encoder_options,
                           config, resume, overwrite, cache_dir)
    report_fit(result)


@command("caption")
def caption_cmd(
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).")],
    checkpoint: Checkpoint = Path("checkpoints/caption/best.pt"),
    beam: Beam = 3,
    n_best: Annotated[int, typer.Option(
        "--n-best", help="Captions per image, with their log-probabilities.")] = 1,
    temp: Annotated[float, typer.Option(
        "--temp", help="Sample at this temperature instead of searching (0: search).")] = 0.0,
    alpha: Alpha = 0.0,
    max_len: Annotated[int, typer.Option("--max-len", help="Words per caption at most.")] = 20,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for repeatable samples.")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    device: Device = "auto",
) -> None:
    """Caption images with a trained captioner."""
    from seqgen.tasks.caption import caption_files, load_captioner

    model, tokenizer, spec, _ = load_captioner(checkpoint, device)
    results, skipped = caption_files(model, tokenizer, spec, images, beam, n_best, temp,
                                     max_len, alpha, seed)
    if as_json:
        out.print(json.dumps([{"image": r.image, "captions": [
            {"caption": text, "logprob": round(lp, 4)} for text, lp in r.captions]}
            for r in results], ensure_ascii=False), markup=False, soft_wrap=True)
    else:
        for r in results:
            prefix = f"{r.image}: " if len(images) > 1 else ""
            if n_best == 1:
                out.print(prefix + r.captions[0][0], markup=False, soft_wrap=True)
            else:
                out.print(r.image, markup=False, soft_wrap=True)
                for text, lp in r.captions:
                    out.print(f"  {lp:8.3f}  {text}", markup=False, soft_wrap=True)
    if skipped:
        sys.stderr.write(f"skipped {len(skipped)} unreadable image(s): "
                         f"{', '.join(skipped[:5])}\n")


@command("evaluate-caption")
def evaluate_caption_cmd(
    captions: Annotated[Path, typer.Argument(help="Caption file with the reference captions.")],
    images: ImagesDir = None,
    checkpoint: Checkpoint = Path("checkpoints/caption/best.pt"),
    fmt: CaptionFormat = "auto",
    split: Annotated[str, typer.Option(
        "--split", help="Images to score: auto (test, else val, else all), train, val, test "
        "or all.")] = "auto",
    beam: Beam = 3,
    limit: Annotated[int | None, typer.Option("--limit", help="Score the first N images.")
                     ] = None,
    examples: Annotated[int, typer.Option("--examples", help="Example captions to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    device: Device = "auto",
) -> None:
    """BLEU-1..4 of a captioner's captions against all reference captions of each image."""
    from seqgen.tasks.caption import evaluate_captions

    metrics = evaluate_captions(checkpoint, captions, images, fmt, split, beam, limit, device,
                                examples)
    if as_json:
        out.print(json.dumps(metrics, ensure_ascii=False), markup=False, soft_wrap=True)
        return
    table = Table(show_header=False, box=None)
    for n in (1, 2, 3, 4):
        table.add_row(f"BLEU-{n}", f"{metrics[f'bleu{n}']:.2f}")
    table.add_row("images", f"{metrics['images']:,} ({metrics['split']} split)")
    if metrics["skipped"]:
        table.add_row("unreadable images", str(metrics["skipped"]))
    out.print(table)
    for ex in metrics["examples"]:
        out.print(f"{ex['image']}: {ex['caption']}", markup=False, soft_wrap=True)
        for ref in ex["references"]:
            out.print(f"    ref: {ref}", markup=False, soft_wrap=True)


@command("info")
def info_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint file.")] = Path(
        "checkpoints/lm/best.pt"),
) -> None:
    """Show what a checkpoint holds: task, model, tokenizer, training progress, metrics."""
    from seqgen.inspect import describe_checkpoint

    table = Table(show_header=False, box=None)
    for key, value in describe_checkpoint(checkpoint):
        table.add_row(key, value)
    out.print(table)


@command("demo")
def demo_cmd(
    out_dir: Out = Path("checkpoints/demo"),
    time_budget: TimeBudget = "60s",
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Train small models on the built-in shapes world and show what they learned."""
    from seqgen.demo import run_demo

    run_demo(out_dir, parse_duration(time_budget) or 60.0, device, seed, out, err)


def main() -> None:
    app()
