"""``seqgen demo``: train on the built-in shapes world and show what the model learned."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from seqgen.config import TrainConfig
from seqgen.data.pairs import PairFile
from seqgen.data.synthetic import COLOURS, KINDS, RELATIONS, scenes
from seqgen.tasks.lm import CorpusOptions, load_lm, sample_text, train_lm

_NP = rf"a (?:small |big )?(?:{'|'.join(COLOURS)}) (?:{'|'.join(KINDS)})"
_REL = "|".join(RELATIONS)
ENGLISH_SCENE = re.compile(rf"{_NP}(?: (?:{_REL}) {_NP}(?: that is (?:{_REL}) {_NP})?)?")


def well_formed(line: str) -> bool:
    """Is ``line`` a description the shapes-world grammar can produce?"""
    return ENGLISH_SCENE.fullmatch(line) is not None


def run_demo(out_dir: Path, time_budget: float, device: str, seed: int, out: Console,
             err: Console) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
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
    demo_translation(out_dir, time_budget, device, seed, out, err)


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
