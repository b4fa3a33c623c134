"""Language-model commands: train-lm, sample, evaluate-lm."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqgen.cli.common import (
    AsJson,
    CacheDir,
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
    given_options,
    inference_precision,
    out,
    picked,
    report_fit,
    train_config,
    training_options,
)
from seqgen.config import LM_BPTT, LMConfig
from seqgen.config import LM_TRAINING as PRESET
from seqgen.errors import UserError

LM_MODEL = ("cell", "layers", "hidden", "embed", "dropout", "tie_weights", "init")
CORPUS = ("level", "lowercase", "pretokenized", "max_vocab", "min_freq", "vocab_size",
          "subword_type", "encoding")


@command("train-lm")
@training_options(PRESET)
def train_lm_cmd(
    ctx: typer.Context,
    corpus: Annotated[list[Path], typer.Argument(help="Text files or folders of .txt files.")],
    level: Level = "char",
    lowercase: Lowercase = False,
    pretokenized: Annotated[bool, typer.Option(
        "--pretokenized", help="Word level: split on spaces only (Penn Treebank).")] = False,
    max_vocab: MaxVocab = None,
    min_freq: MinFreq = 1,
    vocab_size: VocabSize = 4000,
    subword_type: SubwordType = "bpe",
    encoding: Encoding = "utf-8",
    val_file: Annotated[Path | None, typer.Option(
        "--val-file", help="Validation text (default: the end of the corpus).")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Share of the corpus kept for validation.")] = 0.05,
    bptt: Annotated[int, typer.Option("--bptt", help="Truncated-BPTT length.")] = LM_BPTT,
    cell: Cell = LMConfig.cell,
    layers: Layers = LMConfig.layers,
    hidden: Hidden = LMConfig.hidden,
    embed: Embed = LMConfig.embed,
    dropout: Dropout = LMConfig.dropout,
    tie_weights: Annotated[bool, typer.Option(
        "--tie-weights", help="Share input embedding and output weights.")] = False,
    init: Annotated[str, typer.Option(
        "--init", help="default, or identity (IRNN) for plain RNNs.")] = LMConfig.init,
    cache_dir: CacheDir = None,
) -> None:
    """Train a character, word or subword language model on your text."""
    from seqgen.tasks.lm import CorpusOptions, train_lm

    config = train_config(PRESET, "lm", ctx)
    result = train_lm([str(p) for p in corpus], picked(ctx, *LM_MODEL),
                      CorpusOptions(**picked(ctx, *CORPUS)), config, bptt,
                      str(val_file) if val_file else None, val_fraction,
                      resume=ctx.params["resume"], overwrite=ctx.params["overwrite"],
                      cache_dir=cache_dir, explicit=given_options(ctx))
    report_fit(result)


@command("sample")
def sample_cmd(
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    temp: Annotated[float, typer.Option("--temp", help="Temperature; 0 is greedy.")] = 1.0,
    top_k: Annotated[int, typer.Option(
        "--top-k", help="Sample from the k likeliest tokens (0: all).")] = 0,
    top_p: Annotated[float, typer.Option(
        "--top-p", help="Nucleus sampling: the likeliest tokens up to this mass (1: all).")
    ] = 1.0,
    prime: Annotated[str, typer.Option("--prime", help="Text to start from.")] = "",
    length: Annotated[int, typer.Option("--length", help="Tokens to generate.")] = 500,
    num_samples: Annotated[int, typer.Option(
        "--num-samples", "-n", help="Independent samples, generated as one batch.")] = 1,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for repeatable samples.")] = None,
    no_repeat_ngram: NoRepeatNgram = 0,
    device: Device = "auto",
    precision: Precision = "auto",
) -> None:
    """Generate text from a trained language model, streamed as it is produced."""
    from seqgen.decoding import check_no_repeat, check_sampling
    from seqgen.tasks.lm import load_lm, sample_tokens, start_tokens

    if length < 1 or num_samples < 1:
        raise UserError("--length and --num-samples must be positive")
    check_sampling(temp, top_k, top_p)
    check_no_repeat(no_repeat_ngram)
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
    with inference_precision(precision, str(model_device)):
        for tokens in sample_tokens(model, tokenizer, prime, length, temp, top_k, top_p,
                                    num_samples, seed, model_device, no_repeat_ngram):
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
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    streams: Annotated[int, typer.Option(
        "--streams", help="Cut each file in N parts read side by side, each starting cold "
        "(faster on long texts, slightly worse); default: each file read whole.")] = 1,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Streams (files or parts) read side by side.")] = 16,
    device: Device = "auto",
    precision: Precision = "auto",
    as_json: AsJson = False,
    cache_dir: CacheDir = None,
) -> None:
    """Loss, perplexity and bits per character of a language model on some text, read as
    the model reads it: each file from start to end, the state carried throughout."""
    from seqgen.tasks.lm import evaluate_lm

    if batch_size < 1:
        raise UserError("--batch-size must be positive")
    with inference_precision(precision, device):
        metrics = evaluate_lm(checkpoint, [str(f) for f in files], batch_size, device,
                              cache_dir, streams)
    if as_json:
        out.print(json.dumps(metrics))
        return
    table = Table(show_header=False, box=None)
    table.add_row("loss (nats/token)", f"{metrics['loss']:.4f}")
    table.add_row("perplexity", f"{metrics['ppl']:.2f}")
    table.add_row("bits per character", f"{metrics['bpc']:.4f}")
    table.add_row("tokens scored", f"{metrics['tokens']:,}")
    table.add_row("unknown tokens", f"{metrics['unk_rate']:.2%}")
    table.add_row("scored as", metrics["scored_as"])
    out.print(table)
