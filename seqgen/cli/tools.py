"""Commands around the tasks: info (what a checkpoint holds), plot (training curves) and demo
(the shapes world)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from seqgen.cli.common import AsJson, Device, Out, Seed, command, err, out
from seqgen.config import LM_TRAINING, parse_duration
from seqgen.errors import UserError


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
        table.add_row(key, Text(value))  # labels and paths are text, not rich markup
    out.print(table)


@command("plot")
def plot_cmd(
    runs: Annotated[list[Path], typer.Argument(
        help="Run folders (with metrics.jsonl) or metrics files; several are overlaid.")],
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Draw a PNG here (pip install 'seqgen[plots]'); without it, text plots "
        "in the terminal.")] = None,
    against: Annotated[str, typer.Option(
        "--x", help="step, or time (minutes of the run).")] = "step",
    width: Annotated[int, typer.Option("--width", help="Text plots: columns.")] = 64,
) -> None:
    """Training and validation curves of one or more runs: loss, the validation figures
    (perplexity, BLEU, accuracy …) and the learning rate."""
    from seqgen.curves import plot_png, read_run, text_report

    if against not in ("step", "time"):
        raise UserError(f"unknown --x {against!r}: choose step or time")
    if width < 16:
        raise UserError(f"--width must be at least 16, got {width}")
    loaded = [read_run(path) for path in runs]
    x = "elapsed" if against == "time" else "step"
    if out_file is None:
        out.print("\n".join(text_report(loaded, x, width)), markup=False)
        return
    plot_png(loaded, out_file, x)
    err.print(f"curves of {len(loaded)} run{'s' * (len(loaded) != 1)} drawn in {out_file}",
              markup=False)


@command("demo")
def demo_cmd(
    out_dir: Out = Path("checkpoints/demo"),
    time_budget: Annotated[str, typer.Option(
        "--time-budget", help="The most training time of the whole demo (e.g. 4m): each of "
        "its three models stops once it does what the demo shows, or at its share of this "
        "(the captioner's is the largest); time one leaves goes to the next.")] = "4m",
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Train small models on the built-in shapes world and show what they learned."""
    from seqgen.demo import run_demo

    run_demo(out_dir, parse_duration(time_budget) or 240.0, device, seed, out, err)


@command("serve")
def serve_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(
        help="Checkpoints to serve (any tasks); only these can be used by requests.")],
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind: 127.0.0.1 (this machine only) unless you mean to "
        "open it to a network (then a --token is required).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    device: Device = "auto",
    max_upload: Annotated[str, typer.Option(
        "--max-upload", help="Largest image upload, e.g. 10MB or 500KB.")] = "10MB",
    max_body: Annotated[str, typer.Option(
        "--max-body", help="Largest JSON request body, e.g. 1MB.")] = "1MB",
    max_pixels: Annotated[int, typer.Option(
        "--max-pixels", help="Largest image, in pixels, checked before decoding.")
    ] = 40_000_000,
    queue: Annotated[int, typer.Option(
        "--queue", help="Requests that may run or wait for the model; more are answered "
        "503.")] = 16,
    time_limit: Annotated[str, typer.Option(
        "--time-limit", help="Longest a request may take, waiting included (e.g. 60s, "
        "5m); a longer one is stopped and answered 504.")] = "60s",
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="A host name the server answers to besides loopback's (repeat "
        "for several; '*' for any): names others reach this machine by.")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", help="Requests to the API must send 'Authorization: Bearer TOKEN' "
        "(default: $SEQGEN_TOKEN; required off loopback).")] = None,
) -> None:
    """Serve models as a JSON API (/generate, /translate, /caption, /classify, /models,
    /health; docs at /docs) and a small page at / (pip install 'seqgen[serve]')."""
    from seqgen.serve import Limits, parse_size, serve

    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {port}")
    if max_pixels < 1 or queue < 1:
        raise UserError("--max-pixels and --queue must be positive")
    seconds = parse_duration(time_limit)
    if not seconds:
        raise UserError(f"--time-limit must be a positive duration, got {time_limit!r}")
    limits = Limits(max_upload=parse_size(max_upload), max_body=parse_size(max_body),
                    max_pixels=max_pixels, time_limit=seconds, queue=queue)
    serve(checkpoints, host, port, device, limits, allow_host, token,
          announce=lambda text: err.print(text, markup=False))
