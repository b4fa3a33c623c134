"""``seqgen experiment``: the long-lag problems of the LSTM paper, one run or a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqgen.cli.common import Hidden, Layers, command, err, out, train_config, training_options
from seqgen.config import EXPERIMENT_TRAINING as PRESET
from seqgen.errors import UserError

NORM_POINTS = 11  # time steps shown of a gradient-norm curve


def _numbers(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} {text!r}: give whole numbers separated by commas") from None
    if not values:
        raise UserError(f"{what} is empty")
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _norm_table(norms: dict[str, list[float]]) -> Table:
    """‖∂L/∂h_t‖ at evenly spaced steps, from the first step to the answer's, one row each."""
    length = len(next(iter(norms.values())))
    points = sorted({round(k * (length - 1) / (NORM_POINTS - 1)) for k in range(NORM_POINTS)})
    table = Table("step t", *(f"‖∂L/∂h_t‖ at {when}" for when in norms), box=None)
    for t in points:
        table.add_row(str(t + 1), *(f"{values[t]:.2e}" for values in norms.values()))
    table.add_row("first/last", *(f"{v[0] / v[-1]:.2e}" if v[-1] else "-"
                                  for v in norms.values()))
    return table


def _plot_norms(results, path: Path) -> None:
    from seqgen.plots import pyplot, save_figure

    plt = pyplot("--plot")
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        for when, values in r.grad_norms.items():
            ax.plot(range(1, len(values) + 1), values, label=f"{r.row}, lag {r.lag}, {when}",
                    linestyle="-" if when == "end" else "--")
    ax.set_yscale("log")
    ax.set_xlabel("time step t (the answer is read after the last)")
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.legend(fontsize="small")
    save_figure(fig, path)


@command("experiment")
@training_options(PRESET)
def experiment_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(
        help="adding (sum of two marked numbers), copy (recall the first symbol) or order "
        "(temporal order of two symbols).")],
    lag: Annotated[int, typer.Option(
        "--lag", help="Sequence length: how far back the answer's inputs lie.")] = 100,
    lags: Annotated[str | None, typer.Option(
        "--lags", help="Several lags, e.g. 10,50,100: prints the table of steps to solve.")
    ] = None,
    cell: Annotated[str, typer.Option(
        "--cell", help="rnn, rnn-relu, gru, lstm, irnn (a ReLU RNN started from the "
        "identity, Le et al. 2015), leaky (leaky units, trained) or esn (an echo state "
        "network: a fixed reservoir, its readout fitted in closed form).")] = "lstm",
    cells: Annotated[str | None, typer.Option(
        "--cells", help="Several cells for the table, e.g. rnn,gru,lstm,irnn.")] = None,
    init: Annotated[str, typer.Option(
        "--init", help="default, or identity: the same as --cell irnn.")] = "default",
    hidden: Hidden = 128,
    layers: Layers = 1,
    leak_rate: Annotated[float, typer.Option(
        "--leak-rate", help="leaky and esn: the units' α in h = (1-α) h + α tanh(…).")
    ] = 0.3,
    units: Annotated[int, typer.Option("--units", help="esn: reservoir units.")] = 500,
    grad_norms: Annotated[bool, typer.Option(
        "--grad-norms", help="Measure ‖∂L/∂h_t‖ at every time step, before and after "
        "training, and print it: the vanishing gradient, seen.")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="With --grad-norms: draw the curves as a PNG (pip install "
        "'seqgen[plots]').")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON lines.")
                       ] = False,
) -> None:
    """Train on a long-time-lag problem until solved: does the cell bridge the lag, and how
    many steps does it take?"""
    from seqgen.tasks.experiment import ROWS, run_table

    if ctx.params["resume"]:
        raise UserError("experiments do not resume: they start over (use --overwrite)")
    if plot is not None and not grad_norms:
        raise UserError("--plot draws the gradient norms: pass --grad-norms too")
    if init not in ("default", "identity"):
        raise UserError(f"unknown --init {init!r}: choose default or identity")
    rows = _names(cells) if cells else [cell]
    if init == "identity":
        if any(r not in ("rnn", "rnn-relu", "irnn") for r in rows):
            raise UserError("--init identity (IRNN) is for plain RNNs: use --cell irnn")
        rows = ["irnn" for _ in rows]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"unknown cell {unknown[0]!r}: choose from {', '.join(ROWS)}")
    rows = list(dict.fromkeys(rows))
    lag_list = list(dict.fromkeys(_numbers(lags, "--lags") if lags else [lag]))
    config = train_config(PRESET, "experiment", ctx)
    if plot is not None:  # before hours of training, not after
        from seqgen.files import check_writable_folder
        from seqgen.plots import pyplot

        pyplot("--plot")
        check_writable_folder(plot.resolve().parent, "--plot")

    def show(result) -> None:
        if as_json:
            sys.stdout.write(json.dumps(result.__dict__) + "\n")
            sys.stdout.flush()
            return
        verdict = "solved" if result.solved else "not solved"
        figure = "" if result.value is None else f", {result.metric} {result.value:.4g}"
        err.print(f"{result.task}, lag {result.lag}, {result.row}: {verdict} at step "
                  f"{result.steps:,} ({result.seconds:.0f} s{figure})", markup=False)
        if result.grad_norms:
            out.print(_norm_table(result.grad_norms))

    if grad_norms and "esn" in rows:
        raise UserError("--grad-norms follows a trained recurrence's gradient: leave out esn")
    results = run_table(name, lag_list, rows, config, hidden, layers,
                        ctx.params["overwrite"], grad_norms, on_result=show,
                        leak_rate=leak_rate, units=units)
    if plot is not None:
        _plot_norms(results, plot)
        err.print(f"gradient norms drawn in {plot}", markup=False)
    if as_json or len(results) == 1:
        return
    table = Table(f"{name}: steps to solve", *(f"lag {x}" for x in lag_list), box=None)
    for row in rows:
        cells_text = []
        for x in lag_list:
            r = next(r for r in results if r.row == row and r.lag == x)
            cells_text.append(f"{r.steps:,} ({r.seconds:.0f} s)" if r.solved
                              else f"no ({r.steps:,} steps)")
        table.add_row(row, *cells_text)
    out.print(table)
