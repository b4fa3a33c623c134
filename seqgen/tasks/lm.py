"""Language modelling: the glue between corpus, model, trainer and decoding."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from seqgen.checkpoint import load_checkpoint
from seqgen.config import LMConfig, TrainConfig, from_dict, to_dict
from seqgen.data.text import (
    StreamBatches,
    eval_streams,
    resolve_text_files,
    split_tokens,
    tokenize_files,
)
from seqgen.decoding import generate
from seqgen.errors import UserError
from seqgen.models.lm import RNNLanguageModel
from seqgen.progress import ProgressReporter
from seqgen.tokenizers import BOS_ID, EOS_ID, PAD_ID, Tokenizer, tokenizer_from_dict
from seqgen.training import FitResult, Trainer, guard_out_dir, resolve_device

TASK = "lm"


@dataclass
class CorpusOptions:
    """How text becomes tokens; saved so a resumed run or an evaluation reads text the same way."""

    level: str = "char"
    lowercase: bool = False
    pretokenized: bool = False
    max_vocab: int | None = None
    min_freq: int = 1
    vocab_size: int = 4000
    subword_type: str = "bpe"
    encoding: str = "utf-8"

    def tokenizer_options(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase,
                "pretokenized": self.pretokenized, "max_vocab": self.max_vocab,
                "min_freq": self.min_freq, "vocab_size": self.vocab_size,
                "subword_type": self.subword_type}


@dataclass
class LMData:
    tokenizer: Tokenizer
    train: StreamBatches
    val: StreamBatches
    chars_per_token: float
    cached: bool


class LMTask:
    """Next-token cross-entropy with the hidden state carried between batches."""

    def __init__(self, tokenizer: Tokenizer, chars_per_token: float = 1.0,
                 preview_length: int = 120):
        self.tokenizer = tokenizer
        self.chars_per_token = chars_per_token
        self.preview_length = preview_length

    def loss(self, model, batch, carry):
        x, y = batch
        logits, state = model(x, carry)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
        return loss, y.numel(), state

    def evaluate(self, model, data: StreamBatches) -> dict[str, float]:
        total, count = stream_loss(model, data)
        loss = total / max(1, count)
        metrics = {"loss": loss, "ppl": math.exp(min(loss, 50.0))}
        metrics["bpc"] = loss / math.log(2) / self.chars_per_token
        return metrics

    def preview(self, model) -> list[str]:
        device = next(model.parameters()).device
        lines = []
        for temp in (0.5, 1.0):
            text = "".join(sample_text(model, self.tokenizer, "", self.preview_length // (
                1 if self.tokenizer.level == "char" else 4), temperature=temp, device=device))
            lines.append(f"  [temp {temp}] " + text.replace("\n", " / ")[:160])
        return lines


@torch.no_grad()
def stream_loss(model, data: StreamBatches) -> tuple[float, int]:
    """Summed next-token loss over all streams, carrying the state as in training."""
    device = next(model.parameters()).device
    state = None
    total, count = 0.0, 0
    for x, y in data.batches():
        x, y = x.to(device), y.to(device)
        logits, state = model(x, state)
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum"))
        count += y.numel()
    return total, count


def prepare_lm_data(
    corpus: Sequence[str],
    options: CorpusOptions,
    batch_size: int,
    bptt: int,
    val_file: str | None = None,
    val_fraction: float = 0.05,
    tokenizer: Tokenizer | None = None,
    cache_dir: Path | None = None,
) -> LMData:
    files = resolve_text_files(corpus)
    data = tokenize_files(files, options.tokenizer_options(), tokenizer, options.encoding,
                          cache_dir)
    if len(data.tokens) == 0:
        raise UserError("the corpus is empty")
    if val_file:
        val = tokenize_files(resolve_text_files([val_file]), {}, data.tokenizer,
                             options.encoding, cache_dir)
        train_tokens, val_tokens = data.tokens, val.tokens
    else:
        train_tokens, val_tokens = split_tokens(data.tokens, val_fraction)
    if len(val_tokens) < 2:
        raise UserError("the validation text is too short: use a longer corpus, a larger "
                        "--val-fraction or a --val-file")
    return LMData(
        tokenizer=data.tokenizer,
        train=StreamBatches(train_tokens, batch_size, bptt, "corpus"),
        val=eval_streams(val_tokens, batch_size, bptt, "validation text"),
        chars_per_token=data.n_chars / len(data.tokens),
        cached=data.cached,
    )


def train_lm(
    corpus: Sequence[str],
    model_options: dict,
    corpus_options: CorpusOptions,
    train_config: TrainConfig,
    bptt: int = 64,
    val_file: str | None = None,
    val_fraction: float = 0.05,
    resume: bool = False,
    overwrite: bool = False,
    cache_dir: Path | None = None,
    reporter: ProgressReporter | None = None,
) -> FitResult:
    out_dir = Path(train_config.out_dir)
    guard_out_dir(out_dir, resume, overwrite)
    tokenizer = None
    if resume:
        saved = load_checkpoint(out_dir / "last.pt", task=TASK)
        tokenizer = tokenizer_from_dict(saved["tokenizer"])
        model_options = saved["model_config"]
        bptt = saved["data"]["bptt"]
    reporter = reporter or ProgressReporter(quiet=train_config.quiet)
    data = prepare_lm_data(corpus, corpus_options, train_config.batch_size, bptt, val_file,
                           val_fraction, tokenizer, cache_dir)
    reporter.message(
        f"corpus: {data.train.n_targets:,} training tokens, {data.val.n_targets:,} validation "
        f"tokens, vocabulary {data.tokenizer.describe()}"
        + (" (from cache)" if data.cached else "")
    )
    config = from_dict(LMConfig, {**model_options, "vocab_size": data.tokenizer.vocab_size})
    torch.manual_seed(train_config.seed)  # the same seed gives the same initial weights
    model = RNNLanguageModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    reporter.message(f"model: {config.layers}×{config.hidden} {config.cell}, "
                     f"{n_params / 1e6:.2f}M parameters, {len(data.train)} batches per epoch")
    meta = {
        "task": TASK,
        "model_config": to_dict(config),
        "tokenizer": data.tokenizer.to_dict(),
        "data": {"bptt": bptt, "corpus_options": to_dict(corpus_options),
                 "chars_per_token": data.chars_per_token},
    }
    task = LMTask(data.tokenizer, data.chars_per_token)
    trainer = Trainer(model, task, data.train, data.val, train_config, meta, reporter)
    return trainer.fit(resume=resume)


def load_lm(
    checkpoint: str | Path, device: str = "auto"
) -> tuple[RNNLanguageModel, Tokenizer, dict]:
    data = load_checkpoint(checkpoint, task=TASK)
    config = from_dict(LMConfig, data["model_config"])
    model = RNNLanguageModel(config)
    model.load_state_dict(data["model_state"])
    model.to(resolve_device(device)).eval()
    return model, tokenizer_from_dict(data["tokenizer"]), data


def start_tokens(tokenizer: Tokenizer, prime: str) -> list[int]:
    """The prime's ids; with no prime, start after a line end like the start of a document."""
    if prime:
        return tokenizer.encode(prime)
    newline = tokenizer.encode("\n")
    return newline[-1:] if newline else [len(tokenizer.itos) - 1]


@torch.no_grad()
def sample_tokens(
    model: RNNLanguageModel,
    tokenizer: Tokenizer,
    prime: str,
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    num_samples: int = 1,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[torch.Tensor]:
    """Yield one token per sample per step; the prime is read once, then each step is O(1)."""
    ids = start_tokens(tokenizer, prime)
    if not ids:
        raise UserError("the prime encodes to no tokens")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    prime_t = torch.tensor(ids, dtype=torch.long, device=device).unsqueeze(0)
    logits, state = model(prime_t.expand(num_samples, -1).contiguous())

    def step(tokens: torch.Tensor, state):
        logits, state = model.step(tokens, state)
        return logits.index_fill(-1, never, float("-inf")), state

    # Padding and sentence markers never occur in a language-model corpus.
    never = torch.tensor([PAD_ID, BOS_ID, EOS_ID], device=device)
    first = logits[:, -1].index_fill(-1, never, float("-inf"))
    for tokens, _ in generate(step, state, first, length, temperature, top_k, top_p, generator):
        yield tokens


def sample_text(model, tokenizer, prime: str, length: int, temperature: float = 1.0,
                device: torch.device | str = "cpu", **kwargs) -> Iterator[str]:
    """Stream the text of one sample, piece by piece."""
    ids = start_tokens(tokenizer, prime)
    prev: int | None = ids[-1] if prime else None
    for tokens in sample_tokens(model, tokenizer, prime, length, temperature, device=device,
                                **kwargs):
        token = int(tokens[0])
        yield tokenizer.piece_text(prev, token)
        prev = token


def evaluate_lm(checkpoint: str | Path, files: Sequence[str], batch_size: int = 16,
                device: str = "auto", cache_dir: Path | None = None) -> dict[str, float]:
    model, tokenizer, saved = load_lm(checkpoint, device)
    options = from_dict(CorpusOptions, saved["data"].get("corpus_options", {}))
    corpus = tokenize_files(resolve_text_files(files), {}, tokenizer, options.encoding, cache_dir)
    if len(corpus.tokens) < 2:
        raise UserError("the text is too short to evaluate")
    streams = eval_streams(corpus.tokens, batch_size, saved["data"]["bptt"], "text")
    total, count = stream_loss(model, streams)
    loss = total / count
    tokens = corpus.tokens[: streams.n_targets + 1]
    n_unk = int((tokens == 1).sum())
    chars = corpus.n_chars * count / max(1, len(corpus.tokens))
    return {
        "loss": loss,
        "ppl": math.exp(min(loss, 50.0)),
        "bpc": total / max(1.0, chars) / math.log(2),
        "tokens": count,
        "unk_rate": n_unk / max(1, len(tokens)),
    }
