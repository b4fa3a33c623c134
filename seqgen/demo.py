"""``seqgen demo``: train on the built-in shapes world and show what the model learned."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
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
from seqgen.training import FitResult

_NP = rf"a (?:small |big )?(?:{'|'.join(COLOURS)}) (?:{'|'.join(KINDS)})"
_REL = "|".join(RELATIONS)
ENGLISH_SCENE = re.compile(rf"{_NP}(?: (?:{_REL}) {_NP}(?: that is (?:{_REL}) {_NP})?)?")


def well_formed(line: str) -> bool:
    """Is ``line`` a description the shapes-world grammar can produce?"""
    return ENGLISH_SCENE.fullmatch(line) is not None


# Each part trains until validation reaches its target (the model does what the demo shows)
# or its time cap, whichever comes first; time a part leaves unused goes to the parts after
# it. The caps share the demo's training time 3:3:10: the captioner has to learn to see, the
# others only to write.
@dataclass(frozen=True)
class Part:
    share: float
    metric: str  # the validation figure that decides (the part's --select)
    target: float
    what: str  # how the figure is called for the user


PARTS = {
    # 0.233 nats/char is about the floor of the shapes grammar; at 0.24, 95% of sampled lines
    # were well formed (five samples of 600 characters at temperature 0.7)
    "lm": Part(3, "loss", 0.238, "validation loss (nats/char) ≤"),
    "translate": Part(3, "bleu", 99.9, "validation BLEU ≥"),
    "caption": Part(10, "bleu4", 99.0, "validation BLEU-4 ≥"),
}


def stop_line(result: FitResult, part: Part, cap: float) -> str:
    """Which stopped a part: its quality target or its time cap."""
    figure = (result.best_metrics or {}).get(part.metric)
    shown = f"{figure:.3g}" if figure is not None else "?"
    if result.reason == "target":
        return (f"stopped: reached its target ({part.what} {part.target:g}: {shown}) after "
                f"{result.seconds:.0f} s, {result.step:,} steps")
    return (f"stopped: its time cap of {cap:.0f} s ({result.step:,} steps; best "
            f"{part.what.rsplit(' ', 1)[0]} {shown}, short of its target {part.target:g})")


def busy_cores(seconds: float = 0.5) -> float | None:
    """How many CPU cores other programs keep busy now (from /proc/stat over ``seconds``;
    None where there is no /proc/stat)."""
    import time

    def counts() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = counts()
        time.sleep(seconds)
        busy1, total1 = counts()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


def fewer_threads_when_busy(device: str, err: Console) -> None:
    """On a CPU that other programs keep busy, PyTorch's threads spin against them: measured
    on 2 cores with one taken, the translator ran 131 steps in 20 s with 2 threads and 367
    with 1 (404 and 321 on an idle machine). So the demo leaves the busy cores alone."""
    import torch

    from seqgen.training import resolve_device

    threads = torch.get_num_threads()
    taken = busy_cores() if resolve_device(device).type == "cpu" and threads > 1 else None
    if taken is None or taken < 0.5:
        return
    fewer = max(1, min(threads, (os.cpu_count() or threads) - round(taken)))
    if fewer < threads:
        torch.set_num_threads(fewer)
        err.print(f"other programs keep {taken:.1f} CPU cores busy: training with {fewer} "
                  f"thread{'s' * (fewer != 1)}, not {threads}")


def run_demo(out_dir: Path, total_budget: float, device: str, seed: int, out: Console,
             err: Console) -> None:
    """Train the three models in ``total_budget`` seconds at most (see ``PARTS``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fewer_threads_when_busy(device, err)
    left = total_budget
    steps = [("lm", demo_language_model), ("translate", demo_translation),
             ("caption", demo_captioning)]
    for i, (name, part) in enumerate(steps):
        cap = left * PARTS[name].share / sum(PARTS[n].share for n, _ in steps[i:])
        _, used = part(out_dir, cap, device, seed, out, err)
        left = max(0.0, left - used)


def demo_language_model(out_dir: Path, time_cap: float, device: str, seed: int,
                        out: Console, err: Console) -> tuple[float, float]:
    """A character LSTM on scene descriptions; the share of well-formed sampled lines."""
    corpus = out_dir / "shapes-en.txt"
    corpus.write_text("\n".join(s.english() for s in scenes(4000, seed)) + "\n", encoding="utf-8")
    err.print(f"[bold]Language model[/bold] on {corpus} (4,000 generated scene descriptions, "
              f"at most {time_cap:.0f}s of training)")
    part = PARTS["lm"]
    config = TrainConfig(out_dir=str(out_dir / "lm"), batch_size=32, time_budget=time_cap,
                         lr=4e-3, eval_every=50, device=device, seed=seed, warmup_steps=20,
                         select_metric=part.metric, stop_at=part.target)
    model_options = dict(cell="lstm", layers=1, hidden=256, embed=64, dropout=0.0)
    result = train_lm([str(corpus)], model_options, CorpusOptions(level="char"), config,
                      bptt=64, overwrite=True, cache_dir=out_dir / "cache")
    err.print(stop_line(result, part, time_cap))
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
    return good / max(1, len(lines)), result.seconds


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


def demo_translation(out_dir: Path, time_cap: float, device: str, seed: int, out: Console,
                     err: Console, n_scenes: int = 6000, n_test: int = 300
                     ) -> tuple[float, float]:
    """Train English → Spanish on shapes-world scenes; the exact-match rate on unseen scenes,
    and the training seconds."""
    from seqgen.tasks.translate import PairOptions, load_translator, train_translate

    train, test = split_unseen(shapes_pairs(n_scenes, seed + 1), n_test)
    err.print(f"\n[bold]Translation[/bold] English → Spanish on {len(train):,} shapes-world "
              f"pairs (at most {time_cap:.0f}s of training)")
    part = PARTS["translate"]
    config = TrainConfig(out_dir=str(out_dir / "translate"), batch_size=64,
                         time_budget=time_cap, lr=5e-3, eval_every=200, device=device,
                         seed=seed, warmup_steps=20, select_metric=part.metric,
                         stop_at=part.target)
    model_options = dict(cell="gru", layers=1, hidden=128, embed=64, dropout=0.0,
                         attention="luong")
    held = train[-200:]
    result = train_translate(PairFile(train[:-200]), PairFile(held), model_options,
                             PairOptions(level="word", min_freq=1), config,
                             val_bleu_sentences=200, overwrite=True)
    err.print(stop_line(result, part, time_cap))
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
    return rate, result.seconds


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
                           attention: str = "soft") -> FitResult:
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
    # Sentences drawn apart from training, for the words a caption never ends on.
    sentences = [s.english() for s in held_out_scenes(1000, config.seed + 11)]
    return fit_captioner(run, encoder, info, trainable, None, tokenizer, train, val_data,
                         options, {"format": "shapes-world", "max_len": 20}, sentences,
                         "scenes drawn on the fly")


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


def demo_captioning(out_dir: Path, time_cap: float, device: str, seed: int, out: Console,
                    err: Console, n_unseen: int = 100) -> tuple[float, float]:
    """Train the small CNN captioner on rendered scenes; the share of scenes it never saw
    that it captions exactly, and the training seconds."""
    unseen_scenes = held_out_scenes(n_unseen, seed + 2)
    unseen = write_scene_images(out_dir / "shapes" / "unseen", unseen_scenes)
    err.print(f"\n[bold]Captioner[/bold] (small CNN from scratch, soft attention over its 4×4 "
              f"grid) on shapes-world scenes drawn on the fly (at most {time_cap:.0f}s of "
              "training)")
    part = PARTS["caption"]
    config = shapes_caption_config(out_dir / "caption", time_cap, device, seed).replace(
        select_metric=part.metric, stop_at=part.target)
    result = train_shapes_captioner(out_dir / "caption", config, unseen_scenes)
    err.print(stop_line(result, part, time_cap))
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
    return exact, result.seconds


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
