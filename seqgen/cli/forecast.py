"""Forecasting commands: train-forecast, forecast, evaluate-forecast."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqgen.cli.common import (
    AsJson,
    Checkpoint,
    Device,
    Dropout,
    Encoding,
    Hidden,
    Layers,
    command,
    err,
    given_options,
    out,
    picked,
    report_fit,
    train_config,
    training_options,
)
from seqgen.config import FORECAST_TRAINING as PRESET
from seqgen.config import ForecastConfig
from seqgen.errors import UserError

FORECAST_MODEL = ("model", "decoder", "layers", "hidden", "dropout", "conv", "kernel",
                  "stacks", "channels", "highway", "leak_rate", "units", "spectral_radius",
                  "input_scaling", "density", "bias_scaling", "washout")
SELECTABLE = ("mase", "mae", "rmse", "smape", "owa", "mse", "nrmse")

DataPath = Annotated[Path | None, typer.Argument(
    help="Series: a CSV/TSV with a date column, a long unique_id,ds,y file, the M4 wide "
    "layout, or one number per line.")]
Format = Annotated[str, typer.Option(
    "--format", help="auto, csv, long, m4 or lines.")]
Target = Annotated[str | None, typer.Option(
    "--target", help="The column(s) to forecast, e.g. OT or a,b (each is a series).")]
DateColumn = Annotated[str | None, typer.Option(
    "--date-column", help="The date column (default: found by name or by its values).")]
Covariates = Annotated[str | None, typer.Option(
    "--covariates", help="Columns read as inputs beside the target (numbers, or a few "
    "categories, one-hot), e.g. bus,day_type; or all.")]
Fill = Annotated[str, typer.Option(
    "--fill", help="Empty cells and missing time steps: none (refuse), ffill, interpolate "
    "or zero.")]


def _series_options(fmt, target, date_column, covariates, fill, encoding):
    from seqgen.data.series import SeriesOptions, comma_list

    return SeriesOptions(fmt, comma_list(target), date_column, comma_list(covariates), fill,
                         encoding)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{what} {text!r}: give a number (or auto)") from None


def _numbers(text: str | None, what: str, kind=int) -> tuple:
    if not text:
        return ()
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{what} {text!r}: give numbers separated by commas") from None


@command("train-forecast")
@training_options(PRESET)
def train_forecast_cmd(
    ctx: typer.Context,
    data: DataPath = None,
    horizon: Annotated[int, typer.Option("--horizon", help="Steps to forecast.")] = 1,
    input_size: Annotated[int, typer.Option(
        "--input-size", help="Past steps the model reads.")] = 24,
    model: Annotated[str, typer.Option(
        "--model", help="lstm, gru, rnn, leaky (leaky units, trained), wavenet, linear, esn "
        "(an echo state network), or a baseline: naive, seasonal-naive, naive2.")
    ] = ForecastConfig.model,
    decoder: Annotated[str, typer.Option(
        "--decoder", help="Recurrent models: direct (the last state → the whole horizon), "
        "seq2seq (a decoder writes it step by step) or recursive (one step, fed back).")
    ] = ForecastConfig.decoder,
    layers: Layers = ForecastConfig.layers,
    hidden: Hidden = ForecastConfig.hidden,
    dropout: Dropout = ForecastConfig.dropout,
    conv: Annotated[int, typer.Option(
        "--conv", help="Recurrent models: a 1-D convolution of this many channels (kernel 4, "
        "stride 2) in front, so the recurrence reads half the steps (0: none).")
    ] = ForecastConfig.conv,
    kernel: Annotated[int, typer.Option("--kernel", help="WaveNet: kernel size.")
                      ] = ForecastConfig.kernel,
    dilations: Annotated[str, typer.Option(
        "--dilations", help="WaveNet: dilations of one stack, e.g. 1,2,4,8.")
    ] = ",".join(map(str, ForecastConfig.dilations)),
    stacks: Annotated[int, typer.Option("--stacks", help="WaveNet: times the dilations "
                                        "repeat.")] = ForecastConfig.stacks,
    channels: Annotated[int, typer.Option("--channels", help="WaveNet: channels.")
                        ] = ForecastConfig.channels,
    highway: Annotated[bool, typer.Option(
        "--highway/--no-highway", help="Add a linear forecast from the window (LSTNet's "
        "autoregressive highway) to a recurrent (direct or seq2seq) or WaveNet model's.")
    ] = ForecastConfig.highway,
    leak_rate: Annotated[float, typer.Option(
        "--leak-rate", help="leaky and esn: the leaky units' α in h = (1-α) h + α tanh(…).")
    ] = ForecastConfig.leak_rate,
    units: Annotated[int, typer.Option("--units", help="esn: reservoir units.")
                     ] = ForecastConfig.units,
    spectral_radius: Annotated[float, typer.Option(
        "--spectral-radius", help="esn: the reservoir matrix's largest |eigenvalue|, set "
        "exactly.")] = ForecastConfig.spectral_radius,
    input_scaling: Annotated[float, typer.Option(
        "--input-scaling", help="esn: input weights drawn in ±this.")
    ] = ForecastConfig.input_scaling,
    density: Annotated[float, typer.Option(
        "--density", help="esn: share of non-zero recurrent weights.")] = ForecastConfig.density,
    bias_scaling: Annotated[float, typer.Option(
        "--bias-scaling", help="esn: biases drawn in ±this.")] = ForecastConfig.bias_scaling,
    washout: Annotated[int, typer.Option(
        "--washout", help="esn: steps the reservoir reads before its states are used.")
    ] = ForecastConfig.washout,
    ridge: Annotated[str, typer.Option(
        "--ridge", help="esn: the readout's ridge penalty, or auto (the best of 1e-10 … 10 on "
        "the validation).")] = str(ForecastConfig.ridge),
    quantiles: Annotated[str | None, typer.Option(
        "--quantiles", help="Train quantile heads (pinball loss), e.g. 0.1,0.5,0.9: the "
        "forecast gets an interval.")] = None,
    loss: Annotated[str, typer.Option("--loss", help="mae, mse or huber (in scaled units).")
                    ] = "mae",
    season: Annotated[int | None, typer.Option(
        "--season", help="Steps in a season, for MASE and the seasonal baselines (default: "
        "from the time step: 24 hourly, 7 daily, …).")] = None,
    scale: Annotated[str, typer.Option(
        "--scale", help="window: each input window scaled by itself; standard or robust: by "
        "all of the series before the forecast; none.")] = "window",
    calendar: Annotated[str, typer.Option(
        "--calendar", help="auto: add the hour, weekday and time of year of each step as "
        "inputs (known ahead); none.")] = "none",
    val_size: Annotated[int | None, typer.Option(
        "--val-size", help="Values at the end of each series kept for validation (default: "
        "the horizon).")] = None,
    val_series: Annotated[int, typer.Option(
        "--val-series", help="Keep the last N series whole for validation instead.")] = 0,
    teacher_forcing: Annotated[float, typer.Option(
        "--teacher-forcing", help="seq2seq: below 1, feed the decoder its own forecast with "
        "probability 1-RATIO.")] = 1.0,
    teacher_forcing_decay: Annotated[str, typer.Option(
        "--teacher-forcing-decay", help="seq2seq: none, or scheduled sampling from 1 down to "
        "--teacher-forcing: linear or inverse-sigmoid.")] = "none",
    synthetic: Annotated[str | None, typer.Option(
        "--synthetic", help="Built-in series instead of a file: sines (Hands-On ML, "
        "chapter 15) or mackey-glass (τ = 17).")] = None,
    series: Annotated[int, typer.Option("--series", help="--synthetic: how many series.")
                      ] = 10_000,
    length: Annotated[int, typer.Option("--length", help="--synthetic: values per series.")
                      ] = 60,
    data_seed: Annotated[int, typer.Option(
        "--data-seed", help="--synthetic: the generator's seed (42: the book's series).")
    ] = 42,
    fmt: Format = "auto",
    target: Target = None,
    date_column: DateColumn = None,
    covariates: Covariates = None,
    fill: Fill = "none",
    encoding: Encoding = "utf-8",
    select: Annotated[str, typer.Option(
        "--select", help="Keep best.pt and stop early on mase, mae, rmse, smape, owa, mse or "
        "nrmse.")
    ] = PRESET.select_metric,
) -> None:
    """Train a forecaster (or fit a baseline) on your series: validation MAE, RMSE, sMAPE,
    MASE and OWA beside the naive, seasonal-naive and Naive2 baselines."""
    from seqgen.data.series import SyntheticOptions
    from seqgen.tasks.forecast import ForecastOptions, train_forecast

    if select not in SELECTABLE:
        raise UserError(f"unknown --select {select!r}: choose one of {', '.join(SELECTABLE)}")
    config = train_config(PRESET, "forecast", ctx).replace(select_metric=select)
    auto = ridge.strip().lower() == "auto"
    model_options = {**picked(ctx, *FORECAST_MODEL),
                     "dilations": _numbers(dilations, "--dilations"),
                     "quantiles": _numbers(quantiles, "--quantiles", float),
                     "ridge": ForecastConfig.ridge if auto else _number(ridge, "--ridge")}
    options = ForecastOptions(horizon, input_size, val_size, val_series, scale, calendar, season,
                              loss, teacher_forcing, teacher_forcing_decay, auto)
    series_options = _series_options(fmt, target, date_column, covariates, fill, encoding)
    made = SyntheticOptions(synthetic, series, length, data_seed) if synthetic else None
    result = train_forecast(str(data) if data else None, series_options, made, model_options,
                            options, config, resume=ctx.params["resume"],
                            overwrite=ctx.params["overwrite"], explicit=given_options(ctx))
    report_fit(result)


def _load(checkpoint, device, data, fmt, target, date_column, covariates, fill, encoding):
    from seqgen.data.series import read_series
    from seqgen.tasks.forecast import load_forecaster, series_options_of

    if data is None:
        raise UserError("give the series to forecast (the data file)")
    forecaster, saved = load_forecaster(checkpoint, device)
    options = series_options_of(saved, format=None if fmt == "auto" else fmt,
                                target=target and target.split(","), date_column=date_column,
                                covariates=covariates and covariates.split(","),
                                fill=None if fill == "none" else fill, encoding=encoding)
    return forecaster, options, read_series(data, options)


@command("forecast")
def forecast_cmd(
    data: DataPath = None,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per series.")] = False,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="Write the forecasts to this CSV file (series, time, forecast, "
        "interval).")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw history, forecast and interval as a PNG (pip install "
        "'seqgen[plots]'); without it, a text plot of the first series.")] = None,
    show: Annotated[int, typer.Option(
        "--show", help="Series drawn (with --plot) or printed as a text plot.")] = 1,
    fmt: Format = "auto",
    target: Target = None,
    date_column: DateColumn = None,
    covariates: Covariates = None,
    fill: Fill = "none",
    encoding: Encoding = "utf-8",
    device: Device = "auto",
) -> None:
    """The next horizon values of every series, from the end of its data (with an interval
    when the model has quantiles)."""
    from seqgen.tasks.forecast import forecast_series, plot_forecasts, text_forecast

    if show < 0:
        raise UserError("--show must be 0 or more")
    if plot is not None:
        from seqgen.files import check_writable_folder
        from seqgen.plots import pyplot

        pyplot("--plot")
        check_writable_folder(plot.resolve().parent, "--plot")
    forecaster, _, series = _load(checkpoint, device, data, fmt, target, date_column,
                                  covariates, fill, encoding)
    results = forecast_series(forecaster, series)
    rows = [(r.series, t, float(v), *((float(r.lower[k]), float(r.upper[k]))
                                      if r.lower is not None else ()))
            for r in results for k, (t, v) in enumerate(zip(r.times, r.values))]
    header = ["series", "time", "forecast", *(["lower", "upper"] if results and
                                               results[0].lower is not None else [])]
    if csv_file is not None:
        from seqgen.files import atomic_write_text

        buffer = _csv_text([header, *rows])
        atomic_write_text(csv_file, buffer)
        err.print(f"{len(rows):,} forecasts of {len(results):,} series written to {csv_file}",
                  markup=False)
    elif as_json:
        for r in results:
            item = {"series": r.series, "times": r.times, "forecast": r.values.tolist()}
            if r.lower is not None:
                item |= {"lower": r.lower.tolist(), "upper": r.upper.tolist()}
            sys.stdout.write(json.dumps(item) + "\n")
    else:
        sys.stdout.write("\t".join(header) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(f"{v:.6g}" if isinstance(v, float) else str(v)
                                       for v in row) + "\n")
    if plot is not None:
        drawn = plot_forecasts(series, results, plot, max(1, show))
        err.print(f"{drawn} series drawn in {plot}", markup=False)
    elif not as_json and csv_file is None:
        for s, r in list(zip(series.series, results))[:show]:
            err.print("\n".join(text_forecast(s, r)), markup=False)


def _csv_text(rows) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


@command("evaluate-forecast")
def evaluate_forecast_cmd(
    data: DataPath = None,
    checkpoint: Checkpoint = Path(PRESET.out_dir) / "best.pt",
    test: Annotated[Path | None, typer.Option(
        "--test", help="The values that follow the data, in its layout (M4 ships its test "
        "part so); default: score each series' last horizon values.")] = None,
    fmt: Format = "auto",
    target: Target = None,
    date_column: DateColumn = None,
    covariates: Covariates = None,
    fill: Fill = "none",
    encoding: Encoding = "utf-8",
    device: Device = "auto",
    as_json: AsJson = False,
) -> None:
    """MAE, RMSE, sMAPE, MASE and OWA (coverage and MSIS with intervals) of the model and of
    the naive, seasonal-naive and Naive2 baselines, side by side."""
    from seqgen.data.series import read_series
    from seqgen.tasks.forecast import evaluate_forecaster

    forecaster, options, series = _load(checkpoint, device, data, fmt, target, date_column,
                                        covariates, fill, encoding)
    test_series = read_series(test, options) if test is not None else None
    report = evaluate_forecaster(forecaster, series, test_series)
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    columns = ["mae", "rmse", "smape", "mase", "owa"]
    extra = [k for k in ("coverage", "msis") if any(k in s for s in report["scores"].values())]
    table = Table("model", *(c.upper() if c != "smape" else "sMAPE" for c in columns),
                  *extra, box=None)
    for name, scores in report["scores"].items():
        table.add_row(name, *(f"{scores[c]:.4g}" for c in columns),
                      *(f"{scores[k]:.4g}" if k in scores else "" for k in extra))
    out.print(f"{report['series']:,} series, horizon {report['horizon']}, season "
              f"{report['season']}; scored on {report['scored_on']}", markup=False)
    out.print(table)
