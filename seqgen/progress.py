"""Training progress for people: a live rich bar on a terminal, plain lines in logs and CI."""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from seqgen.distributed import is_main_process

PLAIN_EVERY = 15.0  # seconds between progress lines when the output is not a terminal


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


class ProgressReporter:
    """Shows the trainer's numbers; the trainer calls it and never prints by itself."""

    def __init__(self, console: Console | None = None, quiet: bool = False):
        self.console = console or Console(stderr=True)
        self.quiet = quiet or not is_main_process()
        self.live = self.console.is_terminal and not self.quiet
        self._progress: Progress | None = None
        self._task = None
        self._printed_at: float | None = None

    def __enter__(self) -> ProgressReporter:
        if self.live:
            self._progress = Progress(
                BarColumn(bar_width=24), TextColumn("{task.description}"),
                console=self.console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=1.0)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, fraction: float | None, fields: dict[str, str]) -> None:
        text = " | ".join(f"{k} {v}" if k else v for k, v in fields.items())
        if self._progress is not None:
            self._progress.update(self._task, completed=min(1.0, fraction or 0.0),
                                  description=text)
        elif not self.quiet:
            # Not a terminal (a log file, CI): a plain line every PLAIN_EVERY seconds.
            now = time.monotonic()
            if self._printed_at is None or now - self._printed_at >= PLAIN_EVERY:
                self.console.print(text, markup=False, highlight=False, soft_wrap=True)
                self._printed_at = now

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
