"""What every command shares: the app, error handling, option aliases, training options.

Defaults are not written here: each one is read from the task's preset in ``seqgen.config``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from seqgen.config import DEFAULT_EPOCHS, TrainConfig, parse_duration
from seqgen.distributed import is_main_process
from seqgen.errors import SeqgenWarning, UserError


def _version(value: bool) -> None:
    if value:
        try:
            number = version("seqgen")
        except PackageNotFoundError:
            from seqgen import __version__ as number
        sys.stdout.write(f"seqgen {number}\n")
        raise typer.Exit()


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: "[plots]" and flags print as written
    help="Train and run classic recurrent sequence models.",
)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
        ] = False) -> None:
    """Train and run classic recurrent sequence models."""


# Piped output is never hard-wrapped: a long path stays on one line.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, SeqgenWarning):
        sys.stderr.write(f"warning: {message}\n")
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def command(name: str, group: typer.Typer | None = None, **kwargs):
    """Register a command (on the app, or on a ``group`` of subcommands) whose UserErrors
    become one line on stderr and exit code 2, and whose warnings are one ``warning:`` line
    each."""

    def register(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            with warnings.catch_warnings():
                warnings.simplefilter("always", SeqgenWarning)
                warnings.showwarning = _warn_line
                try:
                    return fn(*args, **kw)
                except UserError as exc:
                    sys.stderr.write(f"error: {exc}\n")
                    raise typer.Exit(2) from None
                except KeyboardInterrupt:
                    sys.stderr.write("interrupted\n")
                    raise typer.Exit(130) from None

        (group or app).command(name, **kwargs)(wrapper)
        return fn

    return register


# Options shared by every training command (one definition; each command's default comes
# from its task's preset).
Out = Annotated[Path, typer.Option("--out", help="Folder for best.pt, last.pt, metrics.jsonl.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Sequences per batch.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Stop after this many epochs.")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps.")]
TimeBudget = Annotated[str | None, typer.Option(
    "--time-budget", help="Stop after this much training time, e.g. 90s, 10m, 2h.")]
Optimizer = Annotated[str, typer.Option("--optimizer", help="adamw or sgd.")]
Lr = Annotated[float, typer.Option("--lr", help="Peak learning rate (on --resume: the new peak "
                                               "from the resumed step on).")]
WeightDecay = Annotated[float, typer.Option("--weight-decay", help="Decoupled weight decay.")]
Momentum = Annotated[float, typer.Option("--momentum", help="SGD momentum.")]
Schedule = Annotated[str, typer.Option(
    "--schedule", help="cosine (over the budget), plateau (halve when validation stalls) "
    "or constant.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Linear warm-up steps.")]
Clip = Annotated[float, typer.Option("--clip", help="Clip the gradient norm (0: off).")]
Ema = Annotated[float, typer.Option(
    "--ema", help="Validate and keep a moving average of the weights with this decay per "
    "step (e.g. 0.999; 0: the weights as trained).")]
EvalEvery = Annotated[int | None, typer.Option(
    "--eval-every", help="Validate every N steps and at each epoch end (default: as often as "
    "takes about 3% of the training time).")]
Patience = Annotated[int | None, typer.Option(
    "--patience", help="Stop after N validations without improvement.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
Precision = Annotated[str, typer.Option(
    "--precision", help="auto (float32; TF32 matmuls on CUDA; train-lm: bf16 on a CPU with "
    "bfloat16 instructions), fp32, bf16 or fp16; the recurrence runs in float32, but for an "
    "LSTM on the CPU in bf16.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (runs repeat exactly on CPU).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an earlier run's checkpoints in --out.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing while training.")]
CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Where tokenised corpora and features are cached (default "
    "~/.cache/seqgen).")]
Cell = Annotated[str, typer.Option("--cell", help="lstm, gru, rnn or rnn-relu.")]
Layers = Annotated[int, typer.Option("--layers", help="Stacked recurrent layers.")]
Hidden = Annotated[int, typer.Option("--hidden", help="Hidden units per layer.")]
Embed = Annotated[int, typer.Option("--embed", help="Embedding size.")]
Dropout = Annotated[float, typer.Option("--dropout", help="Dropout probability.")]
# Tokenizer options (train-lm, train-translate, train-classify; each side of a pair has its own).
Level = Annotated[str, typer.Option("--level", help="char, word or subword.")]
Lowercase = Annotated[bool, typer.Option("--lowercase", help="Word level: lowercase the text.")]
MinFreq = Annotated[int, typer.Option(
    "--min-freq", help="Word level: words seen fewer times become <unk>.")]
MaxVocab = Annotated[int | None, typer.Option(
    "--max-vocab", help="Word level: keep the N most frequent words.")]
VocabSize = Annotated[int, typer.Option(
    "--vocab-size", help="Subword level: sentencepiece vocabulary size (at most: a small "
    "text gets fewer pieces).")]
SubwordType = Annotated[str, typer.Option("--subword-type", help="Subword level: bpe or unigram.")]
Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")]
Encoding = Annotated[str, typer.Option("--encoding", help="Text encoding.")]
Beam = Annotated[int, typer.Option("--beam", help="Beam size; 1 is greedy search.")]
Alpha = Annotated[float, typer.Option(
    "--alpha", help="Beam length penalty ((5+len)/6)^alpha; 0 is none.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NoRepeatNgram = Annotated[int, typer.Option(
    "--no-repeat-ngram", help="Never repeat an n-gram of this length within one output "
    "(0: allow repeats).")]


def training_options(preset: TrainConfig):
    """Give a training command the options every task shares, with defaults from the task's
    preset. The command does not declare them: it reads them from ``ctx.params`` (through
    ``train_config``), so each option is written once for all tasks."""
    shared = [
        ("out_dir", Out, Path(preset.out_dir)), ("batch_size", BatchSize, preset.batch_size),
        ("epochs", Epochs, None), ("max_steps", MaxSteps, None),
        ("time_budget", TimeBudget, None), ("optimizer", Optimizer, preset.optimizer),
        ("lr", Lr, preset.lr), ("weight_decay", WeightDecay, preset.weight_decay),
        ("momentum", Momentum, preset.momentum), ("schedule", Schedule, preset.schedule),
        ("warmup", Warmup, preset.warmup_steps), ("clip", Clip, preset.clip),
        ("ema", Ema, preset.ema),
        ("eval_every", EvalEvery, preset.eval_every), ("patience", Patience, None),
        ("device", Device, preset.device), ("precision", Precision, preset.precision),
        ("seed", Seed, preset.seed), ("resume", Resume, False),
        ("overwrite", Overwrite, False), ("quiet", Quiet, False),
    ]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                               annotation=annotation) for name, annotation, default in shared]

    def decorate(fn):
        own = inspect.signature(fn, eval_str=True)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for parameter in added:
                kwargs.pop(parameter.name, None)
            return fn(*args, **kwargs)

        wrapper.__signature__ = own.replace(parameters=[*own.parameters.values(), *added])
        return wrapper

    return decorate


# Command-line parameters whose config field has another name.
_FIELD = {"warmup": "warmup_steps", "fmt": "format"}
TRAIN_OPTIONS = ("out_dir", "batch_size", "epochs", "max_steps", "optimizer", "lr",
                 "weight_decay", "momentum", "schedule", "warmup", "clip", "ema", "eval_every",
                 "patience", "device", "precision", "seed", "quiet")


def given_options(ctx: typer.Context) -> set[str]:
    """The options the user typed (not defaults), by config field name: on --resume, these
    are checked against the run, and the others are taken from it."""
    return {_FIELD.get(name, name) for name in ctx.params
            if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}


def picked(ctx: typer.Context, *names: str) -> dict[str, Any]:
    """Some of a command's parameters, by config field name."""
    return {_FIELD.get(n, n): ctx.params[n] for n in names}


def train_config(preset: TrainConfig, task: str, ctx: typer.Context) -> TrainConfig:
    """The task's preset with the command's training options on top."""
    values = picked(ctx, *TRAIN_OPTIONS)
    values["out_dir"] = str(values["out_dir"])
    budget = parse_duration(ctx.params["time_budget"])
    if values["epochs"] is None and values["max_steps"] is None and budget is None:
        values["epochs"] = DEFAULT_EPOCHS[task]
    return preset.replace(time_budget=budget, **values)


def report_fit(result) -> None:
    if result.reason == "diverged":
        sys.stderr.write(
            f"error: training stopped at step {result.step}: the gradients stopped being finite "
            f"(NaN/inf). The last good checkpoints in {result.out_dir} are kept; try a lower "
            "--lr or --clip.\n"
        )
        raise typer.Exit(1)
    if not is_main_process():
        return
    if result.reason == "fitted":
        shown = "" if result.best is None else f"; validation {result.best:.4g}"
        err.print(f"fitted (nothing to train by gradient steps){shown}; checkpoints in "
                  f"{result.out_dir}", markup=False)
        return
    best = "" if result.best is None else f"; best validation {result.best:.4f}"
    skipped = (f"; {result.skipped_steps} step(s) skipped for non-finite gradients"
               if result.skipped_steps else "")
    err.print(f"stopped ({result.reason}) at step {result.step}{best}{skipped}; checkpoints "
              f"in {result.out_dir}", markup=False)
    if result.reason == "interrupted":
        err.print("continue with the same command and --resume", markup=False)
        raise typer.Exit(130)


@contextlib.contextmanager
def inference_precision(name: str, device: str):
    """Run a command's model calls in the chosen precision (``--precision``)."""
    from seqgen.precision import Precision
    from seqgen.training import resolve_device

    with Precision.resolve(name, resolve_device(device)).autocast():
        yield
