"""Image captioning: the glue between caption files, encoder, decoder (with or without
attention), trainer and decoding."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from seqgen.config import (
    CAPTION_ALPHA,
    CaptionConfig,
    TrainConfig,
    check_choice,
    check_positive,
    from_dict,
    to_dict,
)
from seqgen.data.captions import (
    FORMATS,
    CaptionBatches,
    CaptionHabits,
    ImageCaptions,
    encode_caption,
    mirror_ids,
    normalize_caption,
    read_captions,
    split_images,
)
from seqgen.data.features import FeatureCache, encode_images
from seqgen.data.images import (
    TransformSpec,
    check_images,
    eval_transform,
    train_transform,
    try_load_image,
)
from seqgen.data.novelty import Novelty
from seqgen.data.text import default_cache_dir, writable_folder
from seqgen.decoding import (
    Hypothesis,
    ban_end_after,
    ban_repeat_of_last,
    ban_tokens,
    beam_search,
    check_alpha,
    check_no_repeat,
    check_sampling,
    sample_search,
)
from seqgen.errors import SeqgenWarning, UserError
from seqgen.metrics import corpus_bleu, sentence_flaws
from seqgen.models.building import (
    from_checkpoint,
)
from seqgen.models.captioner import Captioner, attention_penalty, build_captioner
from seqgen.models.encoders import SMALL_CNN, build_encoder, freeze, pool_grid, weights_digest
from seqgen.plots import pyplot, save_figure
from seqgen.progress import ProgressReporter
from seqgen.runs import Run, load_trained
from seqgen.tasks.registry import TaskSpec, register
from seqgen.tasks.supervised import DecodedValidation, masked_token_loss, validation_loss
from seqgen.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from seqgen.training import FitResult

TASK = "caption"
MAX_LEN = 20
NEVER = (PAD_ID, UNK_ID, BOS_ID)  # tokens a caption never holds
# What runs of earlier versions were.
EARLIER_RUNS = {"attention": "none", "alpha_c": 0.0, "start": "image"}
PRELOAD_BYTES = 512 * 2**20  # keep transformed training images in memory up to this


@dataclass
class CaptionDataOptions:
    format: str = "auto"
    val_fraction: float = 0.05
    min_freq: int = 3
    max_len: int = MAX_LEN  # caption words kept for training
    augment: bool = False
    feature_cache: bool = True
    val_images: int = 200  # validation images decoded for BLEU at each validation

    def __post_init__(self) -> None:
        check_choice("format", self.format, FORMATS)
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        check_positive(self, "min_freq", "max_len", "val_images")


@dataclass
class EncoderOptions:
    name: str = "efficientnet-lite0"
    pretrained: bool = True
    weights_file: str | None = None
    finetune: bool = False
    encoder_lr: float | None = None


# ------------------------------------------------------------------ decoding
def decode_images(model: Captioner, images: torch.Tensor, beam: int = 3, n_best: int = 1,
                  temperature: float = 0.0, max_len: int = MAX_LEN, alpha: float = CAPTION_ALPHA,
                  generator: torch.Generator | None = None, batch_size: int = 64,
                  no_repeat_ngram: int | None = None) -> list[list[Hypothesis]]:
    """Captions of images or features: beam search (beam > 1), greedy, or sampling
    (temperature > 0, ``n_best`` samples each). A caption never repeats the word before,
    and never does what the training captions do not (``model.habits``; ``no_repeat_ngram``
    None: the n they never repeat)."""
    device = next(model.parameters()).device
    step = ban_end_after(ban_repeat_of_last(ban_tokens(model.step, NEVER)), EOS_ID,
                         {BOS_ID, *model.habits.no_end_after})
    max_uses = model.habits.max_uses
    if no_repeat_ngram is None:
        no_repeat_ngram = model.habits.no_repeat_ngram
    results: list[list[Hypothesis]] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, images.size(0), batch_size):
            chunk = images[start:start + batch_size].to(device)
            state = model.start(chunk)
            B = chunk.size(0)
            if temperature > 0:
                repeat = max(1, n_best)
                state = model.reorder(state, torch.arange(B, device=device).repeat_interleave(
                    repeat))
                hyps = sample_search(step, state, B * repeat, BOS_ID, EOS_ID, max_len, device,
                                     temperature=temperature, generator=generator,
                                     no_repeat_ngram=no_repeat_ngram, max_uses=max_uses)
                for b in range(B):
                    group = hyps[b * repeat:(b + 1) * repeat]
                    results.append(sorted(group, key=lambda h: (h.finished, h.logprob),
                                          reverse=True))
            elif beam > 1:
                results += beam_search(step, model.reorder, state, B, BOS_ID, EOS_ID, max_len,
                                       beam, alpha, n_best, device, no_repeat_ngram,
                                       max_uses)
            else:
                results += [[h] for h in sample_search(
                    step, state, B, BOS_ID, EOS_ID, max_len, device,
                    no_repeat_ngram=no_repeat_ngram, max_uses=max_uses)]
    model.train(was_training)
    return results


def encoded(model: Captioner, images: torch.Tensor) -> torch.Tensor:
    """Transformed images → the features the decoder reads, computed once for decoding and
    for the novelty check."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        features = model.encoded(images.to(next(model.parameters()).device))
    model.train(was_training)
    return features


def bleu_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    return {f"bleu{n}": corpus_bleu(hypotheses, references, n, tokenize="none")
            for n in (1, 2, 3, 4)}


# ------------------------------------------------------------------ task
class CaptionTask:
    """Word cross-entropy under teacher forcing (plus, with attention, the doubly stochastic
    regulariser weighted by ``alpha_c``); validated by BLEU of greedy captions."""

    def __init__(self, tokenizer: Tokenizer, max_len: int = MAX_LEN, n_preview: int = 3,
                 alpha_c: float = 0.0):
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.n_preview = n_preview
        self.alpha_c = alpha_c
        self.val: DecodedValidation | None = None

    @staticmethod
    def teacher_forced(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images, inputs, targets = batch
        return model(images, inputs), targets

    def loss(self, model, batch, carry):
        if not self.alpha_c:
            logits, targets = self.teacher_forced(model, batch)
            return masked_token_loss(logits, targets), None
        images, inputs, targets = batch
        logits, weights = model(images, inputs, return_attention=True)
        penalty = attention_penalty(weights, targets != PAD_ID)
        return masked_token_loss(logits, targets) + self.alpha_c * penalty, None

    def count_targets(self, batch) -> int:
        return int((batch[2] != PAD_ID).sum())

    def evaluate(self, model, data: DecodedValidation, final: bool = False
                 ) -> dict[str, float]:
        self.val = data
        loss = validation_loss(model, data.batches, self.teacher_forced)
        chosen = list(data.chosen(final))
        hyps = decode_images(model, data.inputs[chosen], beam=1, max_len=self.max_len)
        texts = [self.tokenizer.decode(h[0].tokens) for h in hyps]
        scores = bleu_scores(texts, [data.references[i] for i in chosen])
        return {"loss": loss, "bleu1": scores["bleu1"], "bleu4": scores["bleu4"]}

    def preview(self, model) -> list[str]:
        if self.val is None:
            return []
        n = min(self.n_preview, len(self.val.names))
        hyps = decode_images(model, self.val.inputs[:n], beam=1, max_len=self.max_len)
        return [f"  {self.val.names[i]}: {self.tokenizer.decode(hyps[i][0].tokens)}  "
                f"(ref: {self.val.references[i][0]})" for i in range(n)]


# ------------------------------------------------------------------ training
def _pairs(entries: Sequence[ImageCaptions], tokenizer: Tokenizer) -> list[tuple[int, list[int]]]:
    return [(i, encode_caption(tokenizer, c)) for i, e in enumerate(entries) for c in e.captions]


def _readable(entries: list[ImageCaptions], images_dir: Path) -> tuple[list[ImageCaptions],
                                                                       list[str]]:
    checked = check_images(images_dir, [e.image for e in entries])
    bad = set(checked.skipped)
    return [e for e in entries if e.image not in bad], checked.skipped


def default_images_dir(caption_file: Path) -> Path:
    """``--images`` default: an ``images`` folder beside the caption file, else its folder."""
    beside = caption_file.parent / "images"
    return beside if beside.is_dir() else caption_file.parent


def prepare_encoder(options: EncoderOptions, feature_dim: int = 256, seed: int = 0):
    """The image encoder, what it is, and whether it trains; random weights follow ``seed``."""
    torch.manual_seed(seed)
    encoder, info = build_encoder(options.name, options.pretrained,
                                  Path(options.weights_file) if options.weights_file else None,
                                  feature_dim)
    trainable = options.finetune or not info.pretrained and options.name == SMALL_CNN
    if not trainable:
        freeze(encoder)
    return encoder, info, trainable


def train_caption(
    caption_file: str | Path,
    images_dir: str | Path | None,
    model_options: dict,
    data_options: CaptionDataOptions,
    encoder_options: EncoderOptions,
    train_config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    cache_dir: Path | None = None,
    reporter: ProgressReporter | None = None,
    explicit: Collection[str] | None = None,
) -> FitResult:
    """Train a captioner. With ``resume``, the run in ``train_config.out_dir`` continues with
    the options that define it (see ``seqgen.runs.Run``)."""
    run = Run(TASK, train_config, resume, overwrite, explicit, reporter)
    caption_file = Path(caption_file)
    images_dir = Path(images_dir) if images_dir else default_images_dir(caption_file)
    definition = run.define({
        **model_options, **_encoder_run(encoder_options),
        **{k: v for k, v in to_dict(data_options).items() if k != "feature_cache"},
        "batch_size": run.config.batch_size, "seed": run.config.seed})
    # Runs of earlier versions knew only Show and Tell.
    model_options = {k: definition.get(k, EARLIER_RUNS.get(k)) for k in model_options}
    encoder_options = EncoderOptions(definition["encoder"], definition["pretrained"],
                                     definition["encoder_weights"],
                                     definition["finetune_encoder"], definition["encoder_lr"])
    data_options = from_dict(CaptionDataOptions,
                             {**definition, "feature_cache": data_options.feature_cache})
    config = run.config
    run.check_size(lambda: build_captioner(CaptionConfig(1, 1, grid_dim=1, **model_options)))
    # The caption file and the encoder first: a bad file, a missing extra or unavailable
    # weights is told before any work on images.
    entries, fmt = read_captions(caption_file, data_options.format)
    feature_dim = int(model_options.get("feature_dim") or 256)
    encoder, info, trainable = prepare_encoder(encoder_options, feature_dim, config.seed)
    entries, skipped = _readable(entries, images_dir)
    if not entries:
        raise UserError(f"no readable image in {images_dir} for the captions in {caption_file}")
    run.check_data(entries_digest(entries), "the captions differ")
    train_entries, val_entries, how = split_images(entries, data_options.val_fraction,
                                                   config.seed)
    val_entries = val_entries[:data_options.val_images]
    use_features = not trainable and not data_options.augment
    if use_features:
        cache = feature_cache(cache_dir, encoder, info) if data_options.feature_cache else None
        started = time.perf_counter()
        soft = model_options.get("attention", "none") == "soft"
        train_images, val_images, bad, hits = _features(
            encoder, info, [images_dir / e.image for e in train_entries],
            [images_dir / e.image for e in val_entries], run.device, cache, regions=soft)
        d, h, w = info.grid_shape
        what = f"{h}×{w} regions of {d}" if soft else f"{info.feature_dim} pooled from its grid"
        run.reporter.message(f"features: {info.name}, {what} per image, "
                             f"{hits} of {len(train_entries) + len(val_entries)} from the "
                             f"cache, {time.perf_counter() - started:.1f}s")
    else:
        train_images, val_images, bad = _pictures(
            [images_dir / e.image for e in train_entries],
            [images_dir / e.image for e in val_entries], eval_transform(info.spec),
            keep=not data_options.augment)
    # Images that passed the quick check but do not decode (a truncated JPEG) are skipped too.
    skipped += [e.image for e in train_entries + val_entries if images_dir / e.image in bad]
    train_entries = [e for e in train_entries if images_dir / e.image not in bad]
    val_entries = [e for e in val_entries if images_dir / e.image not in bad]
    if not train_entries or not val_entries:
        raise UserError(f"too few readable images in {images_dir} to train and validate "
                        f"({len(skipped)} could not be read)")
    tokenizer = run.saved_tokenizer()
    if tokenizer is None:
        tokenizer = _caption_tokenizer([c for e in train_entries for c in e.captions],
                                       data_options.min_freq)
    n_captions = sum(len(e.captions) for e in train_entries)
    run.reporter.message(
        f"captions: {fmt} layout, {len(train_entries)} training images ({n_captions} captions), "
        f"{len(val_entries)} validation images ({how}), vocabulary {tokenizer.describe()}"
        + (f"; skipped {len(skipped)} unreadable images" if skipped else ""))
    train_tf = train_transform(info.spec, data_options.augment)

    max_len = data_options.max_len
    train_data = CaptionBatches(train_images, _pairs(train_entries, tokenizer),
                                config.batch_size, seed=config.seed, transform=train_tf,
                                max_len=max_len, mirror=mirror_ids(tokenizer))
    val = validation_data(val_images, [e.captions for e in val_entries],
                          [e.image for e in val_entries], tokenizer, max_len)
    data_meta = {"format": fmt, "options": to_dict(data_options),
                 "encoder_options": to_dict(encoder_options), "max_len": max_len,
                 "files": [str(caption_file.resolve()), f"images: {images_dir.resolve()}"]}
    # With a frozen encoder the features are final: the reference of how unfamiliar a photo is.
    novelty = Novelty.fit(train_images, val_images) if use_features else None
    return fit_captioner(run, encoder, info, trainable, encoder_options.encoder_lr, tokenizer,
                         train_data, val, model_options, data_meta,
                         [c for e in train_entries for c in e.captions],
                         "cached features" if use_features else "", novelty)


def feature_cache(cache_dir: Path | None, encoder, info) -> FeatureCache | None:
    """The on-disk cache of this encoder's grids: keyed by a digest of its actual weights (a
    randomly initialised frozen encoder differs from run to run), its transform and its grid
    shape; None, with a warning, when the folder cannot be written."""
    root = Path(cache_dir or default_cache_dir())
    if not writable_folder(root / "features"):
        warnings.warn(f"the cache folder {root} is not writable: encoding images without a "
                      "cache (pass --cache-dir to choose another)", SeqgenWarning, stacklevel=2)
        return None
    return FeatureCache(root, f"{info.name}|{weights_digest(encoder)}|{info.spec.to_dict()}|"
                              f"grid {info.grid_shape}")


def _features(encoder, info, train: list[Path], val: list[Path], device, cache,
              regions: bool):
    """Frozen-encoder features of the training and validation images: regions (N, L, D),
    float16, for soft attention, else pooled features (N, F), pooled from the same cached
    grids; with the paths of those that would not decode, and how many came from the cache."""
    encoder.to(device)
    grids, failed, hits = encode_images(encoder, train + val, eval_transform(info.spec), device,
                                        info.grid_shape, cache=cache)
    if regions:
        feats = grids.flatten(2).transpose(1, 2)
    else:
        with torch.no_grad():
            feats = torch.cat([pool_grid(encoder, chunk.to(device).float()).cpu()
                               for chunk in grids.split(256)]) if len(grids) else grids
    encoder.cpu()
    failed_rows = set(failed)
    train_rows = [i for i in range(len(train)) if i not in failed_rows]
    val_rows = [i for i in range(len(train), len(train) + len(val)) if i not in failed_rows]
    # A slice stays a view of the memory-mapped grids; a list of rows would copy them all.
    train_feats = feats[:len(train)] if len(train_rows) == len(train) else feats[train_rows]
    return train_feats, feats[val_rows], {(train + val)[i] for i in failed}, hits


def _pictures(train: list[Path], val: list[Path], transform, keep: bool):
    """Validation images decoded and transformed; training images too while they fit in
    ``PRELOAD_BYTES`` and ``keep`` (no augmentation), else their paths once each has been seen
    to decode. With the paths of those that would not."""
    bad: set[Path] = set()

    def decoded(paths: list[Path], stack: bool):
        tensors, good = [], []
        for path in paths:
            image, _ = try_load_image(path)
            if image is None:
                bad.add(path)
                continue
            good.append(path)
            if stack:
                tensors.append(transform(image))
        return torch.stack(tensors) if stack and tensors else good

    val_images = decoded(val, stack=True)
    size = val_images[0].numel() * 4 if isinstance(val_images, torch.Tensor) else 0
    train_images = decoded(train, stack=keep and size * len(train) <= PRELOAD_BYTES)
    return train_images, val_images, bad


def _encoder_run(options: EncoderOptions) -> dict:
    """Encoder options under their command-line names, as a run records them."""
    return {"encoder": options.name, "pretrained": options.pretrained,
            "encoder_weights": options.weights_file, "finetune_encoder": options.finetune,
            "encoder_lr": options.encoder_lr}


def entries_digest(entries: Sequence[ImageCaptions]) -> str:
    """What a caption file holds, to tell on --resume whether it changed."""
    digest = hashlib.blake2b(digest_size=16)
    for entry in entries:
        digest.update(json.dumps([entry.image, entry.captions, entry.split]).encode())
    return digest.hexdigest()


def validation_data(images: torch.Tensor, captions: Sequence[Sequence[str]],
                    names: list[str], tokenizer: Tokenizer, max_len: int = MAX_LEN
                    ) -> DecodedValidation:
    """Validation images (or features) with all their reference captions; every image is
    decoded at each validation."""
    pairs = [(i, encode_caption(tokenizer, c)) for i, refs in enumerate(captions) for c in refs]
    return DecodedValidation(CaptionBatches(images, pairs, 256, shuffle=False, max_len=max_len),
                             images, [[normalize_caption(c) for c in refs] for refs in captions],
                             names, list(range(len(captions))))


def fit_captioner(run: Run, encoder, info, trainable: bool, encoder_lr: float | None,
                  tokenizer: Tokenizer, train_data, val: DecodedValidation, model_options: dict,
                  data_meta: dict, captions: Sequence[str], note: str = "",
                  novelty: Novelty | None = None) -> FitResult:
    """Build the captioner (``--attention``) around ``encoder`` and train it as ``run`` on any
    batch source (caption files, or scenes drawn on the fly); ``captions`` (training text)
    tell which words never end one."""
    c = run.config
    config = from_dict(CaptionConfig, {
        **model_options, "vocab_size": tokenizer.vocab_size, "feature_dim": info.feature_dim,
        "encoder": info.name, "finetune_encoder": trainable, "grid_dim": info.grid_shape[0],
        "encoder_lr": encoder_lr or (c.lr / 10 if info.pretrained else c.lr)})
    model = run.build(lambda: build_captioner(config, encoder))
    model.habits = CaptionHabits.learn(tokenizer, captions)
    model.novelty = novelty
    n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("encoder."))
    meta = {
        "model_config": to_dict(config),
        "tokenizer": tokenizer.to_dict(),
        "data": {"transform": info.spec.to_dict(), "encoder_weights": info.weights_id,
                 **data_meta},
        "caption": {"habits": model.habits.to_dict(),
                    "novelty": novelty.to_dict() if novelty else None},
    }
    task = CaptionTask(tokenizer, MAX_LEN,
                       alpha_c=config.alpha_c if config.attention == "soft" else 0.0)
    task.val = val
    describe = (f"{info.name} encoder ({'trained' if trainable else 'frozen'}"
                f"{', ' + note if note else ''}), {config.layers}×{config.hidden} "
                f"{config.cell} decoder"
                + (f" with soft attention over {info.grid_shape[1]}×{info.grid_shape[2]} "
                   "regions" if config.attention == "soft" else ""))
    return run.fit(model, task, train_data, val, meta, describe, n_params,
                   "decoder parameters")


def _caption_tokenizer(captions: Sequence[str], min_freq: int):
    from seqgen.data.captions import build_caption_tokenizer

    tokenizer = build_caption_tokenizer(captions, min_freq)
    if tokenizer.vocab_size <= 4:
        raise UserError("no caption word is frequent enough: lower --min-freq")
    return tokenizer


# ------------------------------------------------------------------ using a trained model
def load_captioner(checkpoint: str | Path, device: str = "auto"
                   ) -> tuple[Captioner, Tokenizer, TransformSpec, dict]:
    """A trained captioner, its tokenizer, its image transform and the checkpoint's contents;
    everything is checked before anything is built."""

    def make(config: CaptionConfig) -> Captioner:
        encoder, _ = build_encoder(config.encoder, pretrained=False,
                                   feature_dim=config.feature_dim)
        return build_captioner(config, encoder)

    trained = load_trained(checkpoint, TASK, CaptionConfig, make, device,
                           {"tokenizer": "vocab_size"})
    spec = from_checkpoint(checkpoint, "image transform", lambda: TransformSpec.from_dict(
        trained.data["data"]["transform"]))
    learned = trained.data.get("caption") or {}  # runs of earlier versions have none
    trained.model.habits = CaptionHabits.from_dict(learned.get("habits", {}))
    if learned.get("novelty"):
        trained.model.novelty = Novelty.from_dict(learned["novelty"])
    return trained.model, trained.tokenizers["tokenizer"], spec, trained.data


@dataclass
class CaptionModel:
    """A trained captioner with its tokenizer and image transform: what ``serve`` runs."""

    model: Captioner
    tokenizer: Tokenizer
    spec: TransformSpec


def load_caption_model(checkpoint: str | Path, device: str = "auto"
                       ) -> tuple[CaptionModel, dict]:
    model, tokenizer, spec, data = load_captioner(checkpoint, device)
    return CaptionModel(model, tokenizer, spec), data


@dataclass
class Captioned:
    image: str
    captions: list[tuple[str, float]]  # text, log-probability; best first
    ended: list[bool]  # each caption ended with the end token (not cut at --max-len)
    novelty: dict | None = None  # how far from the training images (``Novelty.describe``)


def caption_files(model: Captioner, tokenizer: Tokenizer, spec: TransformSpec,
                  paths: Sequence[Path], beam: int = 3, n_best: int = 1,
                  temperature: float = 0.0, max_len: int = MAX_LEN, alpha: float = CAPTION_ALPHA,
                  seed: int | None = None, batch_size: int = 16,
                  no_repeat_ngram: int | None = None,
                  ) -> tuple[list[Captioned], list[tuple[str, str]]]:
    """Caption image files; returns the captions, and the files that could not be read with
    the reason."""
    if beam < 1 or n_best < 1 or max_len < 1:
        raise UserError("--beam, --n-best and --max-len must be positive")
    check_sampling(temperature)
    check_alpha(alpha)
    if no_repeat_ngram is not None:
        check_no_repeat(no_repeat_ngram)
    if temperature == 0 and n_best > beam:
        raise UserError(f"--n-best {n_best} needs --beam {n_best} or more (or sampling, --temp)")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    transform = eval_transform(spec)
    results, skipped = [], []
    for start in range(0, len(paths), batch_size):
        names, tensors = [], []
        for path in paths[start:start + batch_size]:
            image, why = try_load_image(path)
            if image is None:
                skipped.append((str(path), why))
                continue
            names.append(str(path))
            tensors.append(transform(image))
        if not tensors:
            continue
        features = encoded(model, torch.stack(tensors))
        hyps = decode_images(model, features, beam, n_best, temperature, max_len,
                             alpha, generator, no_repeat_ngram=no_repeat_ngram)
        novelty = ([model.novelty.describe(float(d)) for d in model.novelty.distances(features)]
                   if model.novelty else [None] * len(names))
        for name, group, far in zip(names, hyps, novelty):
            results.append(Captioned(name, [(tokenizer.decode(h.tokens), h.logprob)
                                            for h in group], [h.finished for h in group], far))
    if not results:
        reasons = "; ".join(f"{path}: {why}" for path, why in skipped[:3])
        raise UserError(f"no readable image among the {len(paths)} given ({reasons})")
    return results, skipped


def evaluate_captions(checkpoint: str | Path, caption_file: str | Path,
                      images_dir: str | Path | None, fmt: str = "auto", split: str = "auto",
                      beam: int = 3, limit: int | None = None, device: str = "auto",
                      n_examples: int = 5) -> dict:
    """BLEU-1..4 of the model's captions against all references of each image."""
    model, tokenizer, spec, _ = load_captioner(checkpoint, device)
    caption_file = Path(caption_file)
    images_dir = Path(images_dir) if images_dir else default_images_dir(caption_file)
    entries, fmt = read_captions(caption_file, fmt)
    splits = {e.split for e in entries if e.split}
    if split == "auto":
        split = "test" if "test" in splits else "val" if "val" in splits else "all"
    if split != "all":
        if split not in splits:
            raise UserError(f"{caption_file} has no {split!r} split "
                            f"(it has: {', '.join(sorted(splits)) or 'no split field'})")
        entries = [e for e in entries if e.split == split]
    if limit:
        entries = entries[:limit]
    results, skipped = caption_files(model, tokenizer, spec,
                                     [images_dir / e.image for e in entries], beam)
    by_path = {r.image: r for r in results}
    hyps, refs, examples, ended = [], [], [], []
    for e in entries:
        r = by_path.get(str(images_dir / e.image))
        if r is None:
            continue
        hyps.append(normalize_caption(r.captions[0][0]))
        ended.append(r.ended[0])
        refs.append([normalize_caption(c) for c in e.captions])
        if len(examples) < n_examples:
            examples.append({"image": e.image, "caption": r.captions[0][0],
                             "references": e.captions[:3]})
    # Stock sentences: a captioner that says the same thing of many photos scores fewer here.
    distinct = len(set(hyps)) / max(1, len(hyps))
    complete = sum(not sentence_flaws(h, e) for h, e in zip(hyps, ended)) / max(1, len(hyps))
    return {**bleu_scores(hyps, refs), "distinct": distinct, "complete": complete,
            "images": len(hyps),
            "skipped": len(skipped), "split": split, "examples": examples}


# ------------------------------------------------------------------ attention maps
@torch.no_grad()
def caption_attention(model: Captioner, image: torch.Tensor, tokens: Sequence[int]
                      ) -> torch.Tensor:
    """Where the model looked before each word of a caption of one transformed image:
    (words, grid height, grid width), each map summing to 1."""
    if model.config.attention != "soft":
        raise UserError("this captioner has no attention to show (trained with "
                        "--attention none)")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    inputs = torch.tensor([[BOS_ID, *tokens[:-1]]] if tokens else [[BOS_ID]], device=device)
    _, weights = model(image.unsqueeze(0).to(device), inputs, return_attention=True)
    model.train(was_training)
    regions = weights.size(-1)
    side = int(round(regions ** 0.5))
    return weights[0].float().cpu().view(len(inputs[0]), side, regions // side)


def plot_caption_attention(model: Captioner, tokenizer: Tokenizer, spec: TransformSpec,
                           image_path: Path, caption_tokens: Sequence[int], out: Path) -> int:
    """Save one panel per word: the photo as the model saw it, under the attention map that
    came before the word, upsampled (as in the figures of Xu et al.); returns how many panels
    the figure has. Needs matplotlib."""
    plt = pyplot()
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    picture, why = try_load_image(image_path)
    if picture is None:
        raise UserError(f"cannot read {image_path}: {why}")
    words = [tokenizer.itos[t] for t in caption_tokens]
    if not words:
        raise UserError(f"{image_path}: the caption is empty, so there is no attention to show")
    maps = caption_attention(model, eval_transform(spec)(picture), list(caption_tokens))
    seen = T.CenterCrop(spec.crop)(T.Resize(spec.resize, antialias=True)(picture))
    cols = min(5, len(words))
    rows = -(-len(words) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax, word, weights in zip(axes.flat, words, maps):
        scaled = (weights / max(float(weights.max()), 1e-9)).numpy()
        overlay = Image.fromarray(np.uint8(scaled * 255)).resize(seen.size, Image.BILINEAR)
        ax.imshow(seen)
        ax.imshow(np.asarray(overlay), cmap="gray", alpha=0.6, vmin=0, vmax=255)
        ax.set_title(word)
        ax.axis("off")
    for ax in list(axes.flat)[len(words):]:
        fig.delaxes(ax)
    save_figure(fig, out)
    return len(fig.axes)


register(TaskSpec(TASK, "captioner", load_caption_model, routes="seqgen.serve.caption"))
