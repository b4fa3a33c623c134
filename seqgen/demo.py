"""``seqgen demo``: train on the built-in shapes world and show what the model learned."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from seqgen.config import TrainConfig
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
