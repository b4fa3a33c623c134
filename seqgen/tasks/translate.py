"""Translation: the glue between sentence pairs, the seq2seq model, the trainer and decoding."""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from seqgen.config import (
    TRANSLATE_LEVEL,
    TRANSLATE_VOCAB_SIZE,
    Seq2SeqConfig,
    TrainConfig,
    check_choice,
    from_dict,
    to_dict,
)
from seqgen.data.batching import pad_batch, records_digest, sorted_batches
from seqgen.data.pairs import PairBatches, PairFile, read_parallel_files, read_tsv_pairs
from seqgen.decoding import (
    Hypothesis,
    ban_tokens,
    beam_search,
    check_alpha,
    check_no_repeat,
    sample_search,
)
from seqgen.errors import UserError
from seqgen.metrics import corpus_bleu, corpus_chrf, group_references, perplexity
from seqgen.models.seq2seq import Seq2Seq
from seqgen.plots import pyplot, save_figure
from seqgen.progress import ProgressReporter
from seqgen.runs import Run, load_trained
from seqgen.tasks.registry import TaskSpec, register
from seqgen.tasks.supervised import (
    DECAYS,
    DecodedValidation,
    masked_token_loss,
    teacher_forcing_rate,
    validation_loss,
)
from seqgen.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    Tokenizer,
    build_tokenizer,
    check_tokenizer_options,
)
from seqgen.training import FitResult

TASK = "translate"


@dataclass
class PairOptions:
    """How sentences become tokens (each side gets its own tokenizer); saved in checkpoints."""

    level: str = TRANSLATE_LEVEL
    lowercase: bool = False
    min_freq: int = 2
    max_vocab: int | None = None
    vocab_size: int = TRANSLATE_VOCAB_SIZE
    subword_type: str = "bpe"
    max_len: int = 50
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        check_tokenizer_options(self)
        if not isinstance(self.max_len, int) or self.max_len < 1:
            raise UserError(f"--max-len must be a positive whole number, got {self.max_len!r}")

    def tokenizer_options(self) -> dict:
        return {"lowercase": self.lowercase, "min_freq": self.min_freq,
                "max_vocab": self.max_vocab, "vocab_size": self.vocab_size,
                "subword_type": self.subword_type}


def read_pairs(file: str | Path | None = None, source_file: str | Path | None = None,
               target_file: str | Path | None = None, reverse: bool = False,
               skip_bad_lines: bool = False, encoding: str = "utf-8") -> PairFile:
    """Pairs from a TSV file or from two line-aligned files (exactly one of the two)."""
    if file is not None and (source_file or target_file):
        raise UserError("give either a TSV file or --source-file/--target-file, not both")
    if file is not None:
        return read_tsv_pairs(file, reverse, skip_bad_lines, encoding)
    if not (source_file and target_file):
        raise UserError("give a TSV file of pairs, or both --source-file and --target-file")
    data = read_parallel_files(source_file, target_file, skip_bad_lines, encoding)
    if reverse:
        data.pairs = [(t, s) for s, t in data.pairs]
    return data


def split_by_source(pairs: list[tuple[str, str]], fraction: float, seed: int
                    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Hold out a share of the distinct sources, with all their translations."""
    if not 0 < fraction < 1:
        raise UserError("--val-fraction must be between 0 and 1")
    sources = sorted({s for s, _ in pairs})
    random.Random(seed).shuffle(sources)
    held = set(sources[: max(1, round(len(sources) * fraction))])
    return [p for p in pairs if p[0] not in held], [p for p in pairs if p[0] in held]


@dataclass
class TranslateData:
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    train: PairBatches
    val: DecodedValidation  # inputs: every distinct source; sample: a fixed random share
    dropped: int = 0  # training pairs over --max-len


def encode_pairs(pairs, src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int | None = None):
    sources, targets, dropped = [], [], 0
    for s, t in pairs:
        si, ti = src_tok.encode(s), tgt_tok.encode(t)
        if max_len and (len(si) > max_len or len(ti) > max_len):
            dropped += 1
            continue
        sources.append(si)
        targets.append(ti)
    return sources, targets, dropped


def prepare_translate_data(
    train_pairs: list[tuple[str, str]],
    val_pairs: list[tuple[str, str]],
    options: PairOptions,
    batch_size: int,
    seed: int = 0,
    val_bleu_sentences: int = 500,
    tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
) -> TranslateData:
    if not train_pairs:
        raise UserError("no training pairs")
    if not val_pairs:
        raise UserError("no validation pairs: use more data, a larger --val-fraction or a "
                        "--val-file")
    if tokenizers is None:
        opts = options.tokenizer_options()
        src_tok = build_tokenizer(options.level, (s for s, _ in train_pairs), **opts)
        tgt_tok = build_tokenizer(options.level, (t for _, t in train_pairs), **opts)
    else:
        src_tok, tgt_tok = tokenizers
    sources, targets, dropped = encode_pairs(train_pairs, src_tok, tgt_tok, options.max_len)
    if not sources:
        raise UserError(f"every training pair is longer than --max-len {options.max_len}")
    vs, vt, _ = encode_pairs(val_pairs, src_tok, tgt_tok)
    val_sources, val_refs = group_references(val_pairs)
    # A random sample, not the first sentences: a sorted file would give only the shortest.
    n = min(len(val_sources), max(1, val_bleu_sentences))
    sample = sorted(random.Random(seed).sample(range(len(val_sources)), n))
    return TranslateData(
        src_tok, tgt_tok, PairBatches(sources, targets, batch_size, seed),
        DecodedValidation(PairBatches(vs, vt, batch_size, shuffle=False), val_sources, val_refs,
                          val_sources, sample),
        dropped,
    )


# ------------------------------------------------------------------- decoding
NEVER = (PAD_ID, BOS_ID, UNK_ID)  # tokens a translation never outputs


@dataclass
class Translation:
    text: str
    score: float  # what the search ranked by (length-normalised with --alpha)
    logprob: float
    tokens: list[int]


def check_search(beam: int, n_best: int, max_len_ratio: float, batch_size: int = 1,
                 alpha: float = 0.0) -> None:
    if beam < 1 or n_best < 1 or batch_size < 1:
        raise UserError("--beam, --n-best and --batch-size must be positive")
    if n_best > beam:
        raise UserError(f"--n-best {n_best} needs --beam of at least {n_best}")
    if not (math.isfinite(max_len_ratio) and max_len_ratio > 0):
        raise UserError("--max-len-ratio must be a positive number")
    check_alpha(alpha)


class Translator:
    """A trained model and its two tokenizers, ready to translate batches of sentences."""

    def __init__(self, model: Seq2Seq, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer):
        self.model, self.src_tokenizer, self.tgt_tokenizer = model, src_tokenizer, tgt_tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def translate(self, sentences: Sequence[str], beam: int = 1, alpha: float = 0.0,
                  n_best: int = 1, max_len_ratio: float = 2.0, batch_size: int = 64,
                  no_repeat_ngram: int = 0) -> list[list[Translation]]:
        """The ``n_best`` translations of each sentence, best first (greedy when beam is 1)."""
        check_search(beam, n_best, max_len_ratio, batch_size, alpha)
        check_no_repeat(no_repeat_ngram)
        was_training = self.model.training
        self.model.eval()
        encoded = [self.src_tokenizer.encode(s) for s in sentences]
        results: list[list[Translation]] = [[] for _ in sentences]
        for index in sorted_batches([len(e) for e in encoded], batch_size):
            hyps = self.translate_ids([encoded[i] for i in index], beam, alpha, n_best,
                                      max_len_ratio, no_repeat_ngram)
            for i, h in zip(index, hyps):
                results[i] = [Translation(self.tgt_tokenizer.decode(x.tokens), x.score,
                                          x.logprob, x.tokens) for x in h]
        self.model.train(was_training)
        return results

    def translate_ids(self, sources: list[list[int]], beam: int = 1, alpha: float = 0.0,
                      n_best: int = 1, max_len_ratio: float = 2.0, no_repeat_ngram: int = 0
                      ) -> list[list[Hypothesis]]:
        device = self.device
        src, lens = pad_batch(sources, eos=True)
        src = src.to(device)
        state = self.model.start(src, lens)
        limits = (lens.float() * max_len_ratio).ceil().long() + 2
        step = ban_tokens(self.model.step, NEVER)
        if beam == 1:
            hyps = sample_search(step, state, len(sources), BOS_ID, EOS_ID, limits, device,
                                 no_repeat_ngram=no_repeat_ngram)
            return [[h] for h in hyps]
        return beam_search(step, self.model.reorder, state, len(sources), BOS_ID, EOS_ID,
                           limits, beam, alpha, n_best, device, no_repeat_ngram)

    def plot_attention(self, sentence: str, translation: Translation, path: str | Path) -> None:
        """Save a heat map of the attention while producing ``translation`` (needs matplotlib)."""
        plt = pyplot()
        src_ids = self.src_tokenizer.encode(sentence)
        src, lens = pad_batch([src_ids], eos=True)
        tgt, _ = pad_batch([translation.tokens], bos=True, eos=True)
        weights = self.model.attention_weights(src.to(self.device), lens,
                                               tgt[:, :-1].to(self.device))[0].float().cpu()
        src_labels = [self.src_tokenizer.itos[i] for i in src_ids] + ["<eos>"]
        tgt_labels = [self.tgt_tokenizer.itos[i] for i in translation.tokens] + ["<eos>"]
        fig, ax = plt.subplots(figsize=(1 + 0.45 * len(src_labels), 1 + 0.4 * len(tgt_labels)))
        ax.imshow(weights.numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(src_labels)), src_labels, rotation=60, ha="right")
        ax.set_yticks(range(len(tgt_labels)), tgt_labels)
        ax.set_xlabel("source")
        ax.set_ylabel("translation")
        save_figure(fig, path)

    def greedy(self, sentences: Sequence[str], batch_size: int = 100) -> list[str]:
        return [r[0].text for r in self.translate(sentences, batch_size=batch_size)]


# ------------------------------------------------------------------- training
class TranslateTask:
    """Teacher-forced token cross-entropy; validation adds BLEU from real greedy decoding."""

    def __init__(self, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer,
                 teacher_forcing: float = 1.0, label_smoothing: float = 0.0,
                 preview_sources: Sequence[str] = (), teacher_forcing_decay: str = "none"):
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.teacher_forcing = teacher_forcing
        self.teacher_forcing_decay = teacher_forcing_decay
        self.label_smoothing = label_smoothing
        self.preview_sources = list(preview_sources)
        self.progress = 0.0

    def set_progress(self, fraction: float) -> None:
        """Called by the trainer before each step: scheduled sampling follows it."""
        self.progress = fraction

    def teacher_forced(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the target's real tokens (no padding) and those tokens; scheduled
        sampling in training."""
        src, src_lens, tgt = batch
        tf = teacher_forcing_rate(self.teacher_forcing, self.teacher_forcing_decay,
                                  self.progress) if model.training else 1.0
        targets = tgt[:, 1:]
        keep = targets != PAD_ID
        return model(src, src_lens, tgt[:, :-1], tf, keep), targets[keep]

    def loss(self, model, batch, carry):
        logits, targets = self.teacher_forced(model, batch)
        return masked_token_loss(logits, targets, self.label_smoothing), None

    def count_targets(self, batch) -> int:
        return int((batch[2][:, 1:] != PAD_ID).sum())

    @torch.no_grad()
    def evaluate(self, model, data: DecodedValidation, final: bool = False
                 ) -> dict[str, float]:
        loss = validation_loss(model, data.batches, self.teacher_forced)
        chosen = data.chosen(final)
        translator = Translator(model, self.src_tokenizer, self.tgt_tokenizer)
        hyps = translator.greedy([data.inputs[i] for i in chosen])
        bleu = corpus_bleu(hyps, [data.references[i] for i in chosen],
                           lowercase=self.tgt_tokenizer.lowercases)
        return {"loss": loss, "ppl": perplexity(loss), "bleu": bleu}

    def preview(self, model) -> list[str]:
        if not self.preview_sources:
            return []
        with torch.no_grad():
            hyps = Translator(model, self.src_tokenizer, self.tgt_tokenizer).greedy(
                self.preview_sources)
        return [f"  {s}  →  {h}" for s, h in zip(self.preview_sources, hyps)]


def pairs_digest(pairs: Sequence[tuple[str, str]]) -> str:
    return records_digest(f"{source}\t{target}\n" for source, target in pairs)


def train_translate(
    train_pairs: PairFile,
    val_pairs: PairFile | None,
    model_options: dict,
    pair_options: PairOptions,
    train_config: TrainConfig,
    val_fraction: float = 0.05,
    val_bleu_sentences: int = 500,
    teacher_forcing: float = 1.0,
    label_smoothing: float = 0.0,
    resume: bool = False,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
    explicit: Collection[str] | None = None,
    teacher_forcing_decay: str = "none",
) -> FitResult:
    """Train a translator. With ``resume``, the run in ``train_config.out_dir`` continues
    with the options that define it (see ``seqgen.runs.Run``)."""
    run = Run(TASK, train_config, resume, overwrite, explicit, reporter)
    if not 0 <= teacher_forcing <= 1:
        raise UserError("--teacher-forcing must be in [0, 1]")
    check_choice("teacher_forcing_decay", teacher_forcing_decay, DECAYS)
    if val_pairs is None and not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if val_bleu_sentences < 1:
        raise UserError("--val-bleu-sentences must be positive")
    if teacher_forcing_decay != "none" and teacher_forcing == 1:
        raise UserError("--teacher-forcing-decay needs --teacher-forcing below 1: the rate it "
                        "decays to")
    if not 0 <= label_smoothing < 1:
        raise UserError("--label-smoothing must be in [0, 1)")
    run.check_size(lambda: Seq2Seq(Seq2SeqConfig(1, 1, **model_options)))
    definition = run.define({
        **model_options, **to_dict(pair_options), "batch_size": run.config.batch_size,
        "seed": run.config.seed, "val_fraction": None if val_pairs else val_fraction,
        "val_bleu_sentences": val_bleu_sentences, "teacher_forcing": teacher_forcing,
        "teacher_forcing_decay": teacher_forcing_decay, "label_smoothing": label_smoothing})
    model_options = {k: definition[k] for k in model_options}
    pair_options = from_dict(PairOptions, definition)
    val_fraction, val_bleu_sentences = definition["val_fraction"], \
        definition["val_bleu_sentences"]
    teacher_forcing, label_smoothing = definition["teacher_forcing"], \
        definition["label_smoothing"]
    teacher_forcing_decay = definition["teacher_forcing_decay"]
    run.check_data({"train": pairs_digest(train_pairs.pairs),
                    "val": pairs_digest(val_pairs.pairs) if val_pairs else None},
                   "the sentence pairs differ")
    tokenizers = None
    if run.saved:
        tokenizers = (run.saved_tokenizer("src_tokenizer"), run.saved_tokenizer("tgt_tokenizer"))
    config = run.config
    pairs = train_pairs.pairs
    if val_pairs is None:
        pairs, held = split_by_source(pairs, val_fraction, config.seed)
    else:
        held = val_pairs.pairs
    skipped = train_pairs.skipped + (val_pairs.skipped if val_pairs else 0)
    if skipped:
        run.reporter.message(f"skipped {skipped} bad line{'s' * (skipped != 1)}")
    data = prepare_translate_data(pairs, held, pair_options, config.batch_size, config.seed,
                                  val_bleu_sentences, tokenizers)
    run.reporter.message(
        f"pairs: {len(data.train.sources):,} for training"
        + (f" ({data.dropped:,} over --max-len {pair_options.max_len} dropped)"
           if data.dropped else "")
        + f", {len(held):,} for validation ({len(data.val.sample):,} of its "
        f"{len(data.val.inputs):,} sources decoded for BLEU during training, all at the end); "
        f"source vocabulary {data.src_tokenizer.describe()}, target vocabulary "
        f"{data.tgt_tokenizer.describe()}"
    )
    model_config = Seq2SeqConfig(src_vocab=data.src_tokenizer.vocab_size,
                                 tgt_vocab=data.tgt_tokenizer.vocab_size, **model_options)
    model = run.build(lambda: Seq2Seq(model_config))
    meta = {
        "model_config": to_dict(model_config),
        "src_tokenizer": data.src_tokenizer.to_dict(),
        "tgt_tokenizer": data.tgt_tokenizer.to_dict(),
        "data": {"pair_options": to_dict(pair_options), "teacher_forcing": teacher_forcing,
                 "label_smoothing": label_smoothing,
                 "files": [p.source for p in (train_pairs, val_pairs) if p and p.source]},
    }
    task = TranslateTask(data.src_tokenizer, data.tgt_tokenizer, teacher_forcing,
                         label_smoothing, [data.val.inputs[i] for i in data.val.sample[:3]],
                         teacher_forcing_decay)
    c = model_config
    return run.fit(model, task, data.train, data.val, meta,
                   f"{c.layers}×{c.hidden} {'bi-' if c.bidirectional else ''}{c.cell} encoder, "
                   f"{c.attention} attention{', input feeding' if c.input_feeding else ''}")


def load_translator(checkpoint: str | Path, device: str = "auto") -> tuple[Translator, dict]:
    """A trained translator and the checkpoint's contents; everything is checked before
    anything is built."""
    trained = load_trained(checkpoint, TASK, Seq2SeqConfig, Seq2Seq, device,
                           {"src_tokenizer": "src_vocab", "tgt_tokenizer": "tgt_vocab"},
                           legacy_config, legacy_state)
    return Translator(trained.model, trained.tokenizers["src_tokenizer"],
                      trained.tokenizers["tgt_tokenizer"]), trained.data


def legacy_config(config: dict) -> dict:
    """Checkpoints of earlier versions called the concat score "bahdanau"."""
    if isinstance(config, dict) and config.get("attention") == "bahdanau":
        return {**config, "attention": "concat"}
    return config


_LEGACY_NAMES = {"attn_key.": "attention.key.", "attn_query.": "attention.query.",
                 "attn_v.": "attention.v."}


def legacy_state(state):
    """Weights of earlier versions, whose attention layers sat on the model itself."""
    if not isinstance(state, dict):
        return state
    renamed = {}
    for name, tensor in state.items():
        old = next((o for o in _LEGACY_NAMES if name.startswith(o)), None)
        renamed[_LEGACY_NAMES[old] + name[len(old):] if old else name] = tensor
    return renamed


def evaluate_translations(translator: Translator, pairs: list[tuple[str, str]], beam: int = 5,
                          alpha: float = 0.6, max_len_ratio: float = 2.0, batch_size: int = 64,
                          n_examples: int = 5) -> dict:
    """BLEU (in the case the model writes: lowercased when its target side is), lowercased
    BLEU and chrF against all references of each distinct source."""
    if not pairs:
        raise UserError("no pairs to evaluate")
    sources, references = group_references(pairs)
    hyps = [r[0].text for r in translator.translate(sources, beam, alpha, 1, max_len_ratio,
                                                    batch_size)]
    return {
        "bleu": corpus_bleu(hyps, references, lowercase=translator.tgt_tokenizer.lowercases),
        "bleu_lowercase": corpus_bleu(hyps, references, lowercase=True),
        "chrf": corpus_chrf(hyps, references),
        "sentences": len(sources),
        "references": len(pairs),
        "examples": [{"source": s, "reference": r[0], "output": h}
                     for s, r, h in list(zip(sources, references, hyps))[:n_examples]],
    }


register(TaskSpec(TASK, "translator", load_translator, routes="seqgen.serve.translate"))
