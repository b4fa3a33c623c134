"""Captioning commands: train-caption, caption, evaluate-caption."""

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
    Beam,
    CacheDir,
    Cell,
    Checkpoint,
    Device,
    Dropout,
    Embed,
    Hidden,
    Layers,
    Precision,
    command,
    given_options,
    inference_precision,
    out,
    picked,
    report_fit,
    train_config,
    training_options,
)
from seqgen.config import CAPTION_ALPHA, CaptionConfig
from seqgen.config import CAPTION_TRAINING as PRESET

CAPTION_MODEL = ("cell", "layers", "hidden", "embed", "dropout", "attention", "alpha_c", "start")
DEFAULT_ATTENTION = "soft"  # chosen by measurement: see the README's captioning benchmarks
DEFAULT_START = "zero"  # the same: photos unlike the training set's get sentences

CaptionFormat = Annotated[str, typer.Option(
    "--format", help="Caption file layout: auto, coco, karpathy, flickr8k, csv or jsonl.")]
ImagesDir = Annotated[Path | None, typer.Option(
    "--images", help="Folder the caption file's image names are relative to "
    "(default: an images/ folder beside it, else its folder).")]


@command("train-caption")
@training_options(PRESET)
def train_caption_cmd(
    ctx: typer.Context,
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
        "regnet_y_400mf, densenet121.")] = CaptionConfig.encoder,
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
        "--augment/--no-augment", help="Random crops and flips of training images; a flip "
        "swaps 'left' and 'right' in the caption (runs the encoder every epoch).")] = False,
    feature_cache: Annotated[bool, typer.Option(
        "--feature-cache/--no-feature-cache", help="Cache frozen-encoder features on disk.")
    ] = True,
    val_images: Annotated[int, typer.Option(
        "--val-images", help="Validation images captioned for BLEU at each validation.")] = 200,
    attention: Annotated[str, typer.Option(
        "--attention", help="soft: attend over the encoder's grid of regions before each "
        "word (Show, Attend and Tell); none: one pooled image vector (Show and Tell).")
    ] = DEFAULT_ATTENTION,
    alpha_c: Annotated[float, typer.Option(
        "--alpha-c", help="Weight of the doubly stochastic attention regulariser (soft): "
        "every region should be looked at over a caption.")] = CaptionConfig.alpha_c,
    start: Annotated[str, typer.Option(
        "--start", help="soft: the decoder's first state: zero, or computed from the mean "
        "region (image, as in Xu et al.).")] = DEFAULT_START,
    cell: Cell = CaptionConfig.cell,
    layers: Layers = CaptionConfig.layers,
    hidden: Hidden = CaptionConfig.hidden,
    embed: Embed = CaptionConfig.embed,
    dropout: Dropout = CaptionConfig.dropout,
    cache_dir: CacheDir = None,
) -> None:
    """Train a captioner (Show, Attend and Tell, or Show and Tell) on images and captions."""
    from seqgen.tasks.caption import CaptionDataOptions, EncoderOptions, train_caption

    config = train_config(PRESET, "caption", ctx)
    data_options = CaptionDataOptions(fmt, val_fraction, min_freq, augment=augment,
                                      feature_cache=feature_cache, val_images=val_images)
    encoder_options = EncoderOptions(encoder, pretrained,
                                     str(encoder_weights) if encoder_weights else None,
                                     finetune_encoder, encoder_lr)
    result = train_caption(captions, images, picked(ctx, *CAPTION_MODEL), data_options,
                           encoder_options, config, resume=ctx.params["resume"],
                           overwrite=ctx.params["overwrite"], cache_dir=cache_dir,
                           explicit=given_options(ctx))
    report_fit(result)


@command("caption")
def caption_cmd(
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).")],
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    beam: Beam = 3,
    n_best: Annotated[int, typer.Option(
        "--n-best", help="Captions per image, with their log-probabilities.")] = 1,
    temp: Annotated[float, typer.Option(
        "--temp", help="Sample at this temperature instead of searching (0: search).")] = 0.0,
    alpha: Alpha = CAPTION_ALPHA,
    max_len: Annotated[int, typer.Option("--max-len", help="Words per caption at most.")] = 20,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for repeatable samples.")
                    ] = None,
    no_repeat_ngram: Annotated[int | None, typer.Option(
        "--no-repeat-ngram", help="No caption repeats one of its n-grams (0: off; default: "
        "the shortest n the training captions almost never repeat).")] = None,
    plot_attention: Annotated[Path | None, typer.Option(
        "--plot-attention", help="Save where the model looked before each word, one panel "
        "per word (attention models; needs matplotlib: pip install 'seqgen[plots]'). With "
        "several images, one file each, named after the image.")] = None,
    as_json: AsJson = False,
    device: Device = "auto",
    precision: Precision = "auto",
) -> None:
    """Caption images with a trained captioner."""
    from seqgen.tasks.caption import caption_files, load_captioner, plot_caption_attention

    model, tokenizer, spec, _ = load_captioner(checkpoint, device)
    with inference_precision(precision, device):
        results, skipped = caption_files(model, tokenizer, spec, images, beam, n_best, temp,
                                         max_len, alpha, seed,
                                         no_repeat_ngram=no_repeat_ngram)
        for r in results if plot_attention is not None else []:
            target = plot_attention if len(images) == 1 else plot_attention.with_name(
                f"{plot_attention.stem}-{Path(r.image).stem}{plot_attention.suffix}")
            plot_caption_attention(model, tokenizer, spec, Path(r.image),
                                   tokenizer.encode(r.captions[0][0]), target)
            sys.stderr.write(f"attention of {r.image} saved to {target}\n")
    if as_json:
        out.print(json.dumps([{"image": r.image, "captions": [
            {"caption": text, "logprob": round(lp, 4), "ended": ended}
            for (text, lp), ended in zip(r.captions, r.ended)],
            **({"novelty": r.novelty} if r.novelty else {})}
            for r in results], ensure_ascii=False), markup=False)
    else:
        for r in results:
            prefix = f"{r.image}: " if len(images) > 1 else ""
            if n_best == 1:
                out.print(prefix + r.captions[0][0], markup=False)
            else:
                out.print(r.image, markup=False)
                for text, lp in r.captions:
                    out.print(f"  {lp:8.3f}  {text}", markup=False)
    for r in results:
        if r.novelty and r.novelty["unfamiliar"]:
            sys.stderr.write(f"note: {r.image} is farther from the training images than every "
                             f"validation image (distance {r.novelty['distance']:.3f}, the "
                             f"farthest {model.novelty.threshold:.3f}): its caption may not "
                             "fit it\n")
    for path, why in skipped:
        sys.stderr.write(f"skipped {path}: {why}\n")


@command("evaluate-caption")
def evaluate_caption_cmd(
    captions: Annotated[Path, typer.Argument(help="Caption file with the reference captions.")],
    images: ImagesDir = None,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    fmt: CaptionFormat = "auto",
    split: Annotated[str, typer.Option(
        "--split", help="Images to score: auto (test, else val, else all), train, val, test "
        "or all.")] = "auto",
    beam: Beam = 3,
    limit: Annotated[int | None, typer.Option("--limit", help="Score the first N images.")
                     ] = None,
    examples: Annotated[int, typer.Option("--examples", help="Example captions to show.")] = 5,
    as_json: AsJson = False,
    device: Device = "auto",
    precision: Precision = "auto",
) -> None:
    """BLEU-1..4 of a captioner's captions against all reference captions of each image."""
    from seqgen.tasks.caption import evaluate_captions

    with inference_precision(precision, device):
        metrics = evaluate_captions(checkpoint, captions, images, fmt, split, beam, limit,
                                    device, examples)
    if as_json:
        out.print(json.dumps(metrics, ensure_ascii=False), markup=False)
        return
    table = Table(show_header=False, box=None)
    for n in (1, 2, 3, 4):
        table.add_row(f"BLEU-{n}", f"{metrics[f'bleu{n}']:.2f}")
    table.add_row("distinct captions", f"{metrics['distinct']:.0%}")
    table.add_row("complete sentences", f"{metrics['complete']:.0%}")
    table.add_row("images", f"{metrics['images']:,} ({metrics['split']} split)")
    if metrics["skipped"]:
        table.add_row("unreadable images", str(metrics["skipped"]))
    out.print(table)
    for ex in metrics["examples"]:
        out.print(f"{ex['image']}: {ex['caption']}", markup=False)
        for ref in ex["references"]:
            out.print(f"    ref: {ref}", markup=False)
