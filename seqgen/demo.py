"""``seqgen demo``: train on the built-in shapes world and show what the model learned."""

from __future__ import annotations

import random
import re
from pathlib import Path

from rich.console import Console

from seqgen.config import TrainConfig
from seqgen.data.pairs import PairFile
from seqgen.data.synthetic import (
    COLOURS,
    KINDS,
    RELATIONS,
    Scene,
    english_words,
    random_scene,
    scene_key,
    scenes,
)
from seqgen.models.encoders import SMALL_CNN
from seqgen.tasks.lm import CorpusOptions, load_lm, sample_text, train_lm

_NP = rf"a (?:small |big )?(?:{'|'.join(COLOURS)}) (?:{'|'.join(KINDS)})"
_REL = "|".join(RELATIONS)
ENGLISH_SCENE = re.compile(rf"{_NP}(?: (?:{_REL}) {_NP}(?: that is (?:{_REL}) {_NP})?)?")


def well_formed(line: str) -> bool:
    """Is ``line`` a description the shapes-world grammar can produce?"""
    return ENGLISH_SCENE.fullmatch(line) is not None


# Shares of the demo's training time: the captioner has to learn to see, the others only to
# write, and one minute is plenty for the language model and the translator.
SHARES = {"lm": 3 / 16, "translate": 3 / 16, "caption": 10 / 16}


def run_demo(out_dir: Path, total_budget: float, device: str, seed: int, out: Console,
             err: Console) -> None:
    """Train the three models for ``total_budget`` seconds in all (see ``SHARES``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    time_budget = total_budget * SHARES["lm"]
    corpus = out_dir / "shapes-en.txt"
    corpus.write_text("\n".join(s.english() for s in scenes(4000, seed)) + "\n", encoding="utf-8")
    err.print(f"[bold]Language model[/bold] on {corpus} (4,000 generated scene descriptions, "
              f"{time_budget:.0f}s of training)")
    config = TrainConfig(out_dir=str(out_dir / "lm"), batch_size=32, time_budget=time_budget,
                         lr=4e-3, eval_every=100, device=device, seed=seed, warmup_steps=20)
    model_options = dict(cell="lstm", layers=1, hidden=256, embed=64, dropout=0.0)
    train_lm([str(corpus)], model_options, CorpusOptions(level="char"), config, bptt=64,
             overwrite=True, cache_dir=out_dir / "cache")
    model, tokenizer, _ = load_lm(out_dir / "lm" / "best.pt", device)
    text = "".join(sample_text(model, tokenizer, "", 600, temperature=0.7, seed=seed,
                               device=next(model.parameters()).device))
    lines = [line for line in text.split("\n")[:-1] if line]
    good = sum(well_formed(line) for line in lines)
    out.print("\n[bold]Samples at temperature 0.7:[/bold]")
    for line in lines[:8]:
        out.print(("  ✓ " if well_formed(line) else "  ✗ ") + line, markup=False)
    out.print(f"{good} of {len(lines)} complete sampled lines are well-formed scene descriptions.")
    out.print(f"Try: seqgen sample --checkpoint {out_dir / 'lm' / 'best.pt'} --temp 0.5")
    demo_translation(out_dir, total_budget * SHARES["translate"], device, seed, out, err)
    demo_captioning(out_dir, total_budget * SHARES["caption"], device, seed, out, err)


def shapes_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """English → Spanish descriptions of ``count`` random scenes."""
    return [(s.english(), s.spanish()) for s in scenes(count, seed)]


def split_unseen(pairs: list[tuple[str, str]], n_test: int
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The last ``n_test`` distinct sentences never seen in training, and the training pairs."""
    test: dict[str, str] = {}
    for source, target in reversed(pairs):
        if len(test) >= n_test:
            break
        test.setdefault(source, target)
    return [p for p in pairs if p[0] not in test], list(test.items())


def demo_translation(out_dir: Path, time_budget: float, device: str, seed: int, out: Console,
                     err: Console, n_scenes: int = 6000, n_test: int = 300) -> float:
    """Train English → Spanish on shapes-world scenes; exact-match rate on unseen scenes."""
    from seqgen.tasks.translate import PairOptions, load_translator, train_translate

    train, test = split_unseen(shapes_pairs(n_scenes, seed + 1), n_test)
    err.print(f"\n[bold]Translation[/bold] English → Spanish on {len(train):,} shapes-world "
              f"pairs ({time_budget:.0f}s of training)")
    config = TrainConfig(out_dir=str(out_dir / "translate"), batch_size=64,
                         time_budget=time_budget, lr=5e-3, eval_every=200, device=device,
                         seed=seed, warmup_steps=20, select_metric="bleu")
    model_options = dict(cell="gru", layers=1, hidden=128, embed=64, dropout=0.0,
                         attention="luong")
    held = train[-200:]
    train_translate(PairFile(train[:-200]), PairFile(held), model_options,
                    PairOptions(level="word", min_freq=1), config, val_bleu_sentences=200,
                    overwrite=True)
    translator, _ = load_translator(out_dir / "translate" / "best.pt", device)
    outputs = translator.greedy([s for s, _ in test])
    right = sum(o == t for o, (_, t) in zip(outputs, test))
    out.print("\n[bold]Translations of scenes never seen in training:[/bold]")
    for (source, target), output in list(zip(test, outputs))[:6]:
        mark = "  ✓ " if output == target else "  ✗ "
        out.print(f"{mark}{source}\n      → {output}", markup=False)
    rate = right / max(1, len(test))
    out.print(f"{right} of {len(test)} unseen scenes translated exactly ({rate:.1%}).")
    out.print(f"Try: seqgen translate --checkpoint {out_dir / 'translate' / 'best.pt'} "
              '"a big red star above a small blue circle"')
    return rate


def held_out_scenes(count: int, seed: int) -> list[Scene]:
    """``count`` scenes that differ from each other (captions and places)."""
    rng = random.Random(seed)
    held: dict[str, Scene] = {}
    while len(held) < count:
        scene = random_scene(rng)
        held.setdefault(scene_key(scene), scene)
    return list(held.values())


def write_scene_images(folder: Path, shown: list[Scene], size: int = 64
                       ) -> list[tuple[Path, str]]:
    """Save scenes as PNG files (to caption them like any photo); returns (file, caption)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, scene in enumerate(shown):
        path = folder / f"unseen{i:04d}.png"
        scene.render(size).save(path)
        files.append((path, scene.english()))
    return files


def train_shapes_captioner(out_dir: Path, config: TrainConfig, unseen: list[Scene],
                           n_val: int = 200, batches_per_epoch: int = 1000,
                           attention: str = "soft") -> None:
    """Train the small-CNN captioner on scenes drawn fresh for every batch; neither the
    validation scenes nor ``unseen`` are ever drawn."""
    from seqgen.data.captions import build_caption_tokenizer
    from seqgen.data.scene_batches import FreshSceneBatches, scene_images
    from seqgen.runs import Run
    from seqgen.tasks.caption import (
        TASK,
        EncoderOptions,
        fit_captioner,
        prepare_encoder,
        validation_data,
    )

    options = caption_model_options(attention)
    run = Run(TASK, config.replace(out_dir=str(out_dir)), overwrite=True)
    run.define({"data": "shapes world", **options, "batch_size": config.batch_size,
                "seed": config.seed})
    encoder, info, trainable = prepare_encoder(EncoderOptions(SMALL_CNN, pretrained=False),
                                               options["feature_dim"], config.seed)
    tokenizer = build_caption_tokenizer([" ".join(english_words())])
    unseen_keys = {scene_key(s) for s in unseen}
    val = [s for s in held_out_scenes(n_val + len(unseen), config.seed + 7)
           if scene_key(s) not in unseen_keys][:n_val]
    exclude = frozenset(unseen_keys | {scene_key(s) for s in val})
    train = FreshSceneBatches(tokenizer, info.spec, config.batch_size, batches_per_epoch,
                              config.seed, exclude)
    val_data = validation_data(scene_images(val, info.spec), [[s.english()] for s in val],
                               [f"val{i:04d}" for i in range(len(val))], tokenizer)
    run.reporter.message(f"scenes: {config.batch_size} new ones per batch, "
                         f"{len(val)} validation and {len(unseen)} test scenes never drawn")
    fit_captioner(run, encoder, info, trainable, None, tokenizer, train, val_data, options,
                  {"format": "shapes-world", "max_len": 20}, "scenes drawn on the fly")


def shapes_exact_match(checkpoint: Path, unseen: list[tuple[Path, str]], device: str = "auto",
                       beam: int = 3) -> tuple[float, list[tuple[str, str, str]]]:
    """Share of unseen scenes captioned exactly right, and (file, caption, truth) rows."""
    from seqgen.tasks.caption import caption_files, load_captioner

    model, tokenizer, spec, _ = load_captioner(checkpoint, device)
    results, _ = caption_files(model, tokenizer, spec, [p for p, _ in unseen], beam)
    truth = {str(p): c for p, c in unseen}
    rows = [(r.image, r.captions[0][0], truth[r.image]) for r in results]
    exact = sum(c == t for _, c, t in rows) / max(1, len(rows))
    return exact, rows


def caption_model_options(attention: str = "soft") -> dict:
    return dict(cell="lstm", layers=1, hidden=128, embed=64, dropout=0.0, feature_dim=256,
                attention=attention)


def shapes_caption_config(out_dir: Path, time_budget: float, device: str, seed: int,
                          quiet: bool = False) -> TrainConfig:
    return TrainConfig(out_dir=str(out_dir), batch_size=32, time_budget=time_budget, lr=3e-3,
                       eval_every=250, device=device, seed=seed, warmup_steps=50,
                       select_metric="bleu4", clip=5.0, quiet=quiet)


def demo_captioning(out_dir: Path, time_budget: float, device: str, seed: int, out: Console,
                    err: Console, n_unseen: int = 100) -> float:
    """Train the small CNN captioner on rendered scenes; caption scenes it never saw."""
    unseen_scenes = held_out_scenes(n_unseen, seed + 2)
    unseen = write_scene_images(out_dir / "shapes" / "unseen", unseen_scenes)
    err.print(f"\n[bold]Captioner[/bold] (small CNN from scratch, soft attention over its 4×4 "
              f"grid) on shapes-world scenes drawn on the fly ({time_budget:.0f}s of training)")
    train_shapes_captioner(out_dir / "caption",
                           shapes_caption_config(out_dir / "caption", time_budget, device, seed),
                           unseen_scenes)
    checkpoint = out_dir / "caption" / "best.pt"
    exact, rows = shapes_exact_match(checkpoint, unseen, device)
    out.print("\n[bold]Captions of scenes the captioner never saw (beam 3):[/bold]")
    for image, caption, truth in rows[:6]:
        mark = "  ✓ " if caption == truth else "  ✗ "
        out.print(f"{mark}{Path(image).name}: {caption}"
                  + ("" if caption == truth else f"   (truth: {truth})"), markup=False)
    out.print(f"{exact:.0%} of {len(rows)} unseen scenes captioned exactly.")
    show_attention(checkpoint, Path(rows[0][0]), rows[0][1], device, out)
    out.print(f"Try: seqgen caption {rows[0][0]} -c {checkpoint} --plot-attention "
              "attention.png")
    return exact


SHADES = " .:-=+*#%@"


def attention_text(maps, words: list[str]) -> list[str]:
    """Attention maps (words, h, w) as rows of text: one small grid per word, darker where
    the model looked more."""
    grids = []
    for weights in maps:
        scaled = (weights / max(float(weights.max()), 1e-9)).tolist()
        grids.append(["".join(SHADES[min(len(SHADES) - 1, int(v * len(SHADES)))] * 2
                              for v in row) for row in scaled])
    width = max(2 * maps.size(2), *(len(w) for w in words)) + 2
    lines = ["".join(w.ljust(width) for w in words)]
    for r in range(maps.size(1)):
        lines.append("".join(("|" + g[r] + "|").ljust(width) for g in grids))
    return lines


def show_attention(checkpoint: Path, image: Path, caption: str, device: str,
                   out: Console) -> None:
    """Print where the captioner looked before each word of one caption."""
    from seqgen.data.images import eval_transform, load_image
    from seqgen.tasks.caption import caption_attention, load_captioner

    model, tokenizer, spec, _ = load_captioner(checkpoint, device)
    tokens = tokenizer.encode(caption)
    maps = caption_attention(model, eval_transform(spec)(load_image(image)), tokens)
    words = caption.split()
    out.print(f"\n[bold]Where it looked[/bold] before each word of {image.name} "
              f"(4×4 regions of the picture; denser = more attention):")
    for start in range(0, len(words), 6):
        for line in attention_text(maps[start:start + 6], words[start:start + 6]):
            out.print("  " + line, markup=False)
