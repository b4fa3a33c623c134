"""Commands around the tasks: info (what a checkpoint holds) and demo (the shapes world)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqgen.cli.common import AsJson, Device, Out, Seed, command, err, out
from seqgen.config import LM_TRAINING, parse_duration


@command("info")
def info_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint file.")] = Path(
        LM_TRAINING.out_dir) / "best.pt",
    as_json: AsJson = False,
) -> None:
    """Show what a checkpoint holds: task, model, tokenizer, training progress, metrics."""
    from seqgen.inspect import describe_checkpoint, summarize

    if as_json:
        import json

        out.print(json.dumps(summarize(checkpoint), ensure_ascii=False), markup=False)
        return
    table = Table(show_header=False, box=None)
    for key, value in describe_checkpoint(checkpoint):
        table.add_row(key, value)
    out.print(table)


@command("demo")
def demo_cmd(
    out_dir: Out = Path("checkpoints/demo"),
    time_budget: Annotated[str, typer.Option(
        "--time-budget", help="Training time of the whole demo (e.g. 4m), shared by its "
        "three models: the captioner gets most of it.")] = "4m",
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Train small models on the built-in shapes world and show what they learned."""
    from seqgen.demo import run_demo

    run_demo(out_dir, parse_duration(time_budget) or 240.0, device, seed, out, err)
