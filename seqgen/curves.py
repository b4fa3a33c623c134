"""Training curves from ``metrics.jsonl``: read several runs, and draw them as a PNG or as a
compact text plot that works in any terminal (over ssh too)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from seqgen.errors import UserError

# What a record holds besides its figures; "loss" is drawn with the training loss.
NOT_FIGURES = ("kind", "step", "epoch", "elapsed", "loss")
MARKS = "*o+x#@%&"


@dataclass
class Run:
    name: str
    train: list[dict] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)

    def series(self, kind: str, key: str, x: str) -> list[tuple[float, float]]:
        """(x, value) points of one figure; ``x`` is "step" or "elapsed" (minutes)."""
        rows = self.train if kind == "train" else self.val
        points = []
        for row in rows:
            value, where = row.get(key), row.get(x)
            if isinstance(value, (int, float)) and isinstance(where, (int, float)) \
                    and math.isfinite(value):
                points.append((where / 60 if x == "elapsed" else where, float(value)))
        return points


def read_run(path: str | Path) -> Run:
    """A run folder (its ``metrics.jsonl``) or a metrics file."""
    path = Path(path)
    file = path / "metrics.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{path}: no metrics.jsonl there" if path.is_dir()
                        else f"file not found: {path}")
    name = (path if path.is_dir() else path.parent).name or str(path)
    run = Run(name)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from None
    lines = text.split("\n")  # a last piece without its line feed is still being written
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # still being written, or cut off by a kill
                continue
            raise UserError(f"{file}, line {number}: not a JSON record (is it a seqgen "
                            "metrics.jsonl?)") from None
        if not isinstance(row, dict):
            raise UserError(f"{file}, line {number}: not a JSON object")
        if row.get("kind") == "train":
            run.train.append(row)
        elif row.get("kind") in ("val", "final"):
            run.val.append(row)
    if not run.train and not run.val:
        raise UserError(f"{file} holds no training or validation records yet")
    return run


def panels(runs: list[Run]) -> list[tuple[str, list[tuple[str, str]]]]:
    """What to draw: (panel title, [(kind, key)]) for the figures some run has."""
    have = {(kind, key) for run in runs for kind, rows in (("train", run.train),
                                                            ("val", run.val))
            for row in rows for key in row}
    chosen = [("loss", [(k, "loss") for k in ("train", "val") if (k, "loss") in have])]
    # Every validation figure the runs have, in the order their tasks report them: plot
    # knows no task.
    figures = dict.fromkeys(key for run in runs for row in run.val for key, value in row.items()
                            if key not in NOT_FIGURES and isinstance(value, (int, float)))
    chosen += [(key, [("val", key)]) for key in figures]
    if ("train", "lr") in have:
        chosen.append(("learning rate", [("train", "lr")]))
    return [(title, lines) for title, lines in chosen if lines]


def plot_png(runs: list[Run], path: str | Path, x: str = "step") -> None:
    from seqgen.plots import pyplot, save_figure

    plt = pyplot("seqgen plot --out")
    chosen = panels(runs)
    fig, axes = plt.subplots(len(chosen), 1, figsize=(8, 2.6 * len(chosen)), sharex=True,
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, lines) in zip(axes[:, 0], chosen):
        for r, run in enumerate(runs):
            for kind, key in lines:
                points = run.series(kind, key, x)
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, color=colours[r % len(colours)],
                            linestyle="-" if kind == "train" else "--",
                            marker=None if kind == "train" else "o", markersize=3,
                            label=f"{run.name} ({'training' if kind == 'train' else 'validation'})"
                            if len(lines) > 1 or len(runs) > 1 else None)
        ax.set_ylabel(title)
        if title in ("loss", "ppl", "learning rate"):
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    axes[-1, 0].set_xlabel("minutes" if x == "elapsed" else "step")
    save_figure(fig, path)


def text_plot(points: list[list[tuple[float, float]]], width: int = 64, height: int = 10
              ) -> list[str]:
    """Several series on one character grid, each with its own mark (``MARKS``); y labels
    on the left, the x range below."""
    every = [p for series in points for p in series]
    if not every:
        return []
    x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
    y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
    grid = [[" "] * width for _ in range(height)]
    for s, series in enumerate(points):
        for x, y in series:
            col = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (width - 1))
            row = 0 if y1 == y0 else round((y1 - y) / (y1 - y0) * (height - 1))
            grid[row][col] = MARKS[s % len(MARKS)]
    label = max(len(f"{y0:.4g}"), len(f"{y1:.4g}"))
    lines = []
    for r, cells in enumerate(grid):
        tick = f"{y1:.4g}" if r == 0 else f"{y0:.4g}" if r == height - 1 else ""
        lines.append(f"{tick:>{label}} |{''.join(cells)}")
    lines.append(" " * label + " +" + "-" * width)
    lines.append(" " * label + f"  {x0:.4g}" + f"{x1:.4g}".rjust(width - len(f"{x0:.4g}")))
    return lines


def text_report(runs: list[Run], x: str = "step", width: int = 64) -> list[str]:
    """Every panel as a text plot, with a legend of marks."""
    out = []
    for title, lines in panels(runs):
        series, legend = [], []
        for run in runs:
            for kind, key in lines:
                points = run.series(kind, key, x)
                if points:
                    legend.append(f"{MARKS[len(series) % len(MARKS)]} {run.name} "
                                  f"{'training' if kind == 'train' else 'validation'}")
                    series.append(points)
        if not series:
            continue
        axis = "minutes" if x == "elapsed" else "step"
        out.append(f"{title} against {axis}:  " + "   ".join(legend))
        out += text_plot(series, width)
        out.append("")
    return out
