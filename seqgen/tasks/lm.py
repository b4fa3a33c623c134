"""Language modelling: the glue between corpus, model, trainer and decoding."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seqgen.config import (
    LM_BPTT,
    LM_GPU_LR,
    LM_GPU_SIZES,
    LMConfig,
    TrainConfig,
    from_dict,
    option,
    to_dict,
)
from seqgen.data.text import (
    StreamBatches,
    cut_streams,
    resolve_text_files,
    split_tokens,
    stream_chunks,
    tokenize_files,
)
from seqgen.decoding import ban_tokens, generate
from seqgen.errors import UserError
from seqgen.metrics import perplexity
from seqgen.models.building import (
    from_checkpoint,
)
from seqgen.models.lm import RNNLanguageModel
from seqgen.precision import cpu_has_bf16
from seqgen.progress import ProgressReporter
from seqgen.runs import Run, load_trained
from seqgen.tasks.registry import TaskSpec, register
from seqgen.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    Tokenizer,
    check_tokenizer_options,
)
from seqgen.training import FitResult

TASK = "lm"
NEVER = (PAD_ID, BOS_ID, EOS_ID)  # padding and sentence markers never occur in a corpus


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

    def __post_init__(self) -> None:
        check_tokenizer_options(self)

    def tokenizer_options(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase,
                "pretokenized": self.pretokenized, "max_vocab": self.max_vocab,
                "min_freq": self.min_freq, "vocab_size": self.vocab_size,
                "subword_type": self.subword_type}


@dataclass
class LMData:
    tokenizer: Tokenizer
    train: StreamBatches
    val: np.ndarray  # validation tokens, scored as one carried stream
    chars_per_token: float  # of the validation text (for bits per character)
    cached: bool
    digest: str  # of the corpus files' bytes


# Validation during training reads VAL_TOKENS tokens of the validation text in VAL_PIECES runs
# spread evenly over it (the same ones every time, so validations compare; spread, because a
# text's parts differ: the last 5% of Tiny Shakespeare ends one play, whose 20,000 characters
# score about 0.3 nats/char lower than the next play's); the final one reads it all.
VAL_TOKENS = 20_000
VAL_PIECES = 4


def spread_sample(tokens: np.ndarray, total: int, pieces: int) -> list[np.ndarray]:
    """``pieces`` runs of ``tokens`` starting at evenly spaced places, about ``total`` targets
    in all; all of ``tokens`` as one run when it is no longer."""
    if len(tokens) <= total + 1:
        return [tokens]
    return [run[:total // pieces + 1] for run in cut_streams(tokens, pieces)]


class LMTask:
    """Next-token cross-entropy with the hidden state carried between batches."""

    def __init__(self, tokenizer: Tokenizer, chars_per_token: float = 1.0,
                 preview_length: int = 120, val_tokens: int = VAL_TOKENS):
        self.tokenizer = tokenizer
        self.chars_per_token = chars_per_token
        self.preview_length = preview_length
        self.val_tokens = val_tokens

    def loss(self, model, batch, carry):
        x, y = batch
        logits, state = model(x, carry)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum"), state

    def count_targets(self, batch) -> int:
        return batch[1].numel()

    def evaluate(self, model, data: np.ndarray, final: bool = False) -> dict[str, float]:
        runs = [data] if final else spread_sample(data, self.val_tokens, VAL_PIECES)
        total, count = score_streams(model, runs)
        return lm_metrics(total, count, count * self.chars_per_token)

    def preview(self, model) -> list[str]:
        device = next(model.parameters()).device
        lines = []
        for temp in (0.5, 1.0):
            text = "".join(sample_text(model, self.tokenizer, "", self.preview_length // (
                1 if self.tokenizer.level == "char" else 4), temperature=temp, device=device))
            lines.append(f"  [temp {temp}] " + text.replace("\n", " / ")[:160])
        return lines


def lm_metrics(total: float, count: int, chars: float) -> dict[str, float]:
    """Loss (nats per token), perplexity and bits per character of a summed loss."""
    loss = total / max(1, count)
    return {"loss": loss, "ppl": perplexity(loss), "bpc": total / max(1.0, chars) / math.log(2)}


@torch.no_grad()
def score_streams(model, streams: Sequence[np.ndarray], batch_size: int = 16,
                  chunk: int = 256) -> tuple[float, int]:
    """Summed next-token loss of each token sequence read as one stream from its start, the
    state carried from chunk to chunk (never reset), up to ``batch_size`` streams side by side.
    How a user means "the loss of this text"; training and ``evaluate-lm`` both use it."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for start in range(0, len(streams), batch_size):
        state = None
        for x, y, mask in stream_chunks(streams[start:start + batch_size], chunk):
            logits, state = model(x.to(device), state)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten().to(device),
                                   reduction="none")
            total += loss.masked_fill(~mask.flatten().to(device), 0.0).sum()
            count += int(mask.sum())
    model.train(was_training)
    return float(total), count


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
    val_files = resolve_text_files([val_file]) if val_file else []
    data = tokenize_files(files, options.tokenizer_options(), tokenizer, options.encoding,
                          cache_dir)
    if len(data.tokens) == 0:
        raise UserError("the corpus is empty")
    chars_per_token = data.n_chars / len(data.tokens)
    if val_file:
        val = tokenize_files(val_files, {}, data.tokenizer, options.encoding, cache_dir)
        train_tokens, val_tokens = data.tokens, val.tokens
        chars_per_token = val.n_chars / max(1, len(val.tokens))
    else:
        train_tokens, val_tokens = split_tokens(data.tokens, val_fraction)
    if len(val_tokens) < 2:
        raise UserError("the validation text is too short: use a longer corpus, a larger "
                        "--val-fraction or a --val-file")
    return LMData(
        tokenizer=data.tokenizer,
        train=StreamBatches(train_tokens, batch_size, bptt, "corpus"),
        val=val_tokens,
        chars_per_token=chars_per_token,
        cached=data.cached,
        digest=data.digest,
    )


def train_lm(
    corpus: Sequence[str],
    model_options: dict,
    corpus_options: CorpusOptions,
    train_config: TrainConfig,
    bptt: int = LM_BPTT,
    val_file: str | None = None,
    val_fraction: float = 0.05,
    resume: bool = False,
    overwrite: bool = False,
    cache_dir: Path | None = None,
    reporter: ProgressReporter | None = None,
    explicit: Collection[str] | None = None,
) -> FitResult:
    """Train a language model. With ``resume``, the run in ``train_config.out_dir`` continues
    with the options that define it; ``explicit`` names the options the user gave (see
    ``seqgen.runs.Run``)."""
    run = Run(TASK, train_config, resume, overwrite, explicit, reporter)
    if bptt < 1:
        raise UserError(f"--bptt must be positive, got {bptt}")
    if not val_file and not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    run.check_size(lambda: RNNLanguageModel(LMConfig(1, **model_options)))
    gpu = gpu_sizes(run.device, explicit, resume)
    if gpu:
        model_options = {**model_options, **{k: v for k, v in gpu.items()
                                             if k in model_options}}
        run.config = run.config.replace(batch_size=gpu["batch_size"],
                                        lr=gpu.get("lr", run.config.lr))
        bptt = gpu["bptt"]
    definition = run.define({
        **model_options, **to_dict(corpus_options), "bptt": bptt,
        "batch_size": run.config.batch_size,
        "val_file": str(Path(val_file).resolve()) if val_file else None,
        "val_fraction": None if val_file else val_fraction})
    model_options = {k: definition[k] for k in model_options}
    corpus_options = from_dict(CorpusOptions, definition)
    bptt, val_file = definition["bptt"], definition["val_file"]
    val_fraction = definition["val_fraction"]
    data = prepare_lm_data(corpus, corpus_options, run.config.batch_size, bptt, val_file,
                           val_fraction, run.saved_tokenizer(), cache_dir)
    run.check_data(data.digest, "the corpus differs")
    # Said once the corpus is known to be good, so a user's mistake stays one line.
    if gpu:
        run.reporter.message("on a GPU with no size given: " + ", ".join(
            f"{option(k)} {v}" for k, v in gpu.items()))
    if cpu_bf16(run.device, explicit, resume):
        run.config = run.config.replace(precision="bf16")
        run.reporter.message("on a CPU with bfloat16 instructions and no --precision given: "
                             "--precision bf16")
    n_val = len(data.val) - 1
    during = f"{VAL_TOKENS:,} in {VAL_PIECES} runs during training, all at the end" \
        if n_val > VAL_TOKENS else "all at each validation"
    run.reporter.message(
        f"corpus: {data.train.n_targets:,} training tokens, {n_val:,} validation tokens "
        f"({during}), vocabulary {data.tokenizer.describe()}"
        + (" (from cache)" if data.cached else "")
    )
    config = LMConfig(vocab_size=data.tokenizer.vocab_size, **model_options)
    model = run.build(lambda: RNNLanguageModel(config))
    meta = {
        "model_config": to_dict(config),
        "tokenizer": data.tokenizer.to_dict(),
        "data": {"bptt": bptt, "corpus_options": to_dict(corpus_options),
                 "chars_per_token": data.chars_per_token,
                 "files": [str(Path(f).resolve()) for f in resolve_text_files(corpus)]
                 + ([f"validation: {Path(val_file).resolve()}"] if val_file else [])},
    }
    task = LMTask(data.tokenizer, data.chars_per_token, val_tokens=VAL_TOKENS)
    return run.fit(model, task, data.train, data.val, meta,
                   f"{config.layers}×{config.hidden} {config.cell}")


def gpu_sizes(device: torch.device, explicit: Collection[str] | None,
              resume: bool = False) -> dict:
    """The larger model for a CUDA GPU, when the user (on the command line) gave no size, with
    the learning rate it was measured with unless ``--lr`` was given."""
    if device.type != "cuda" or explicit is None or resume or set(explicit) & set(LM_GPU_SIZES):
        return {}
    return {**LM_GPU_SIZES, **({} if "lr" in explicit else {"lr": LM_GPU_LR})}


def cpu_bf16(device: torch.device, explicit: Collection[str] | None,
             resume: bool = False) -> bool:
    """Train in bf16 on a CPU that has it, unless the user chose a precision: oneDNN's bf16
    LSTM gave 1.5× the tokens/s with the same loss per step (README: the LM benchmark)."""
    return (device.type == "cpu" and explicit is not None and not resume
            and "precision" not in explicit and cpu_has_bf16())


def load_lm(
    checkpoint: str | Path, device: str = "auto"
) -> tuple[RNNLanguageModel, Tokenizer, dict]:
    """A trained language model, its tokenizer and the checkpoint's contents; everything is
    checked before anything is built."""
    trained = load_trained(checkpoint, TASK, LMConfig, RNNLanguageModel, device,
                           {"tokenizer": "vocab_size"})
    return trained.model, trained.tokenizers["tokenizer"], trained.data


@dataclass
class LanguageModel:
    """A trained language model with its tokenizer: what ``serve`` samples from."""

    model: RNNLanguageModel
    tokenizer: Tokenizer


def load_language_model(checkpoint: str | Path, device: str = "auto"
                        ) -> tuple[LanguageModel, dict]:
    model, tokenizer, data = load_lm(checkpoint, device)
    return LanguageModel(model, tokenizer), data


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
    no_repeat_ngram: int = 0,
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
    step = ban_tokens(model.step, NEVER)
    first = logits[:, -1].float().index_fill(-1, torch.tensor(NEVER, device=device),
                                             float("-inf"))
    for tokens, _ in generate(step, state, first, length, temperature, top_k, top_p, generator,
                              no_repeat_ngram=no_repeat_ngram):
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
                device: str = "auto", cache_dir: Path | None = None,
                streams: int = 1) -> dict[str, Any]:
    """Score text as the model would read it: each file one stream, its state carried from
    start to end (``streams`` > 1 cuts each file in that many parts read side by side, each
    starting cold: faster, slightly worse)."""
    if streams < 1:
        raise UserError("--streams must be positive")
    model, tokenizer, saved = load_lm(checkpoint, device)
    options = from_checkpoint(checkpoint, "corpus options", lambda: from_dict(
        CorpusOptions, saved["data"]["corpus_options"]))
    corpus = tokenize_files(resolve_text_files(files), {}, tokenizer, options.encoding, cache_dir)
    pieces = [p for tokens in corpus.per_file() if len(tokens) >= 2
              for p in cut_streams(tokens, streams)]
    if not pieces:
        raise UserError("the text is too short to evaluate")
    total, count = score_streams(model, pieces, batch_size)
    n_unk = int(sum(int((p[1:] == UNK_ID).sum()) for p in pieces))
    chars = corpus.n_chars * count / max(1, len(corpus.tokens))
    how = (f"{len(pieces)} stream(s): " + ("each file read from start to end with its state "
                                           "carried" if streams == 1 else
                                           f"each file cut in {streams} parts, each starting cold"))
    return {**lm_metrics(total, count, chars), "tokens": count,
            "unk_rate": n_unk / max(1, count), "scored_as": how}


register(TaskSpec(TASK, "language model", load_language_model, routes="seqgen.serve.lm"))
