"""Forecasting benchmarks.

    python scripts/bench_forecast.py --part sines   # Hands-On ML ch. 15: validation MSE
    python scripts/bench_forecast.py --part m4      # M4 Hourly: sMAPE / MASE / OWA
    python scripts/bench_forecast.py --part cta     # Chicago rail boardings: MAE
    python scripts/bench_forecast.py --part speed   # forecast series/s; trainer vs bare loop
    python scripts/bench_forecast.py --part esn     # Mackey–Glass: seqgen's ESN vs reservoirpy
    python scripts/bench_forecast.py --part laser   # Santa Fe laser: esn, lstm, wavenet NRMSE
    python scripts/bench_forecast.py --part ucr     # UCR test accuracy: ItalyPowerDemand, GunPoint
    python scripts/bench_forecast.py --part lags    # the long-lag table's leaky and esn rows

Every part prints its figures; a time-budgeted figure depends on the machine's speed, so the
steps and windows/s are printed beside it. ``--only NAME,...`` runs some rows of a part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench-out" / "forecast"
M4_HOURLY = DATA / "m4" / "Hourly-train.csv"
CTA = DATA / "ridership" / "CTA_-_Ridership_-_Daily_Boarding_Totals.csv"


def seqgen(*args: str, capture: bool = False) -> str:
    """Run the CLI as a user would."""
    print("$ seqgen " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "seqgen", *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout if capture else ""


def summary(out: Path) -> dict:
    """The final validation, the steps and the training windows per second of a run."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    final = [r for r in rows if r["kind"] == "final"][-1]
    rate = sum(r["tokens_per_s"] for r in train) / max(1, len(train))
    return {**final, "steps": final["step"], "targets_per_s": rate}


def wanted(name: str, only: set[str] | None) -> bool:
    return only is None or name in only


# ----------------------------------------------------------------------------- the book's sines
# Hands-On Machine Learning (Géron), 2nd edition, chapter 15: 10,000 series (seed 42), the
# first 7,000 train, the next 2,000 validate, the last 1,000 test; its notebook's validation
# MSE for each model. best.pt is chosen on the validation, so the 1,000 test series, never
# seen, are scored too.
BOOK_ONE_STEP = {"naive": 0.0202, "linear": 0.00417, "deep-rnn": 0.00291}
BOOK_TEN_STEPS = {"rnn": 0.0085, "lstm": 0.00856, "gru": 0.0103, "conv-gru": 0.0080,
                  "wavenet": 0.0072}
SINE_MODELS = {
    "naive": ["--model", "naive"],
    "linear": ["--model", "linear"],
    "deep-rnn": ["--model", "rnn", "--layers", "2", "--hidden", "20"],
    "rnn": ["--model", "rnn", "--layers", "2", "--hidden", "20"],
    "lstm": ["--model", "lstm", "--layers", "2", "--hidden", "20"],
    "gru": ["--model", "gru", "--layers", "2", "--hidden", "20"],
    "conv-gru": ["--model", "gru", "--layers", "2", "--hidden", "20", "--conv", "20"],
    "wavenet": ["--model", "wavenet", "--dilations", "1,2,4,8", "--stacks", "2",
                "--channels", "20"],
}


def sine_file(horizon: int, test: bool = False) -> Path:
    """The book's first 9,000 series of 50 + horizon steps (or its last 1,000, the test), in
    the long layout."""
    from seqgen.data.series import sine_sums

    path = OUT / f"sines-{horizon}{'-test' if test else ''}.csv"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        values = sine_sums(10_000, 50 + horizon, seed=42)
        values = values[9000:] if test else values[:9000]
        rows = ["unique_id,ds,y"] + [f"s{i},{t},{v:.9g}" for i, row in enumerate(values)
                                     for t, v in enumerate(row)]
        path.write_text("\n".join(rows) + "\n")
    return path


def bench_sines(budget: str, only: set[str] | None, extra: list[str]) -> None:
    results = []
    for horizon, book in ((1, BOOK_ONE_STEP), (10, BOOK_TEN_STEPS)):
        data = sine_file(horizon)
        for name, target in book.items():
            if not wanted(name, only):
                continue
            out = OUT / f"sines-{horizon}-{name}"
            # the book's WaveNet sees 31 steps back: its window is those 31
            window = "31" if name == "wavenet" else "50"
            seqgen("train-forecast", str(data), "--horizon", str(horizon), "--input-size",
                   window, "--val-series", "2000", "--select", "mse", "--time-budget", budget,
                   "--out", str(out), "--overwrite", "--quiet", *SINE_MODELS[name], *extra)
            s = summary(out)
            scored = json.loads(seqgen("evaluate-forecast", str(sine_file(horizon, test=True)),
                                       "-c", str(out / "best.pt"), "--json", capture=True))
            test = scored["scores"][scored["model"]]["mse"]
            results.append((horizon, name, s["mse"], target, test, s["steps"]))
            print(f"{horizon:>2} ahead  {name:<9} validation MSE {s['mse']:.5f}  (book "
                  f"{target:.5f}), test {test:.5f}  {s['steps']:,} steps, "
                  f"{s['targets_per_s']:,.0f} targets/s", flush=True)
    print("\nahead  model      validation   book      ratio   test      steps")
    for horizon, name, mse, target, test, steps in results:
        print(f"{horizon:>5}  {name:<9}  {mse:.5f}     {target:.5f}   {mse / target:.2f}    "
              f"{test:.5f}   {steps:,}")


# ----------------------------------------------------------------------------- M4 Hourly
# Each training series' last 48 values are kept aside as the test: every model trains (and
# selects its checkpoint) on the rest, whose own last 48 values are its validation.
M4_MODELS = {
    "lstm": [],
    "wavenet": ["--model", "wavenet", "--dilations", "1,2,4,8,16,32,64,128"],
}
PEER_VENV = ROOT / "bench-out" / "venv-neuralforecast"


def m4_files(horizon: int = 48) -> tuple[Path, Path]:
    """M4 Hourly's training part without its last 48 values, and those values, in M4's
    layouts (the test file as M4 ships its own)."""
    train, test = OUT / "m4-hourly-train.csv", OUT / "m4-hourly-test.csv"
    if not train.exists():
        from seqgen.data.series import read_series

        OUT.mkdir(parents=True, exist_ok=True)
        data = read_series(M4_HOURLY)
        width = max(len(s) for s in data.series)
        rows, tests = [], []
        for s in data.series:
            kept = [f'"{v:g}"' for v in s.target[:-horizon]]
            rows.append(f'"{s.name}",' + ",".join(kept + ['""'] * (width - len(s))))
            tests.append(f'"{s.name}",' + ",".join(f'"{v:g}"' for v in s.target[-horizon:]))
        header = ",".join(f'"V{i}"' for i in range(1, width - horizon + 2))
        train.write_text(header + "\n" + "\n".join(rows) + "\n")
        test.write_text(",".join(f'"V{i}"' for i in range(1, horizon + 2)) + "\n"
                        + "\n".join(tests) + "\n")
    return train, test


def peer_python() -> Path:
    """A virtual environment with the peers, neuralforecast and reservoirpy (on this machine's
    PyTorch), made once."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(PEER_VENV)],
                       check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "neuralforecast", "reservoirpy",
                        f"torch=={__import__('torch').__version__.split('+')[0]}"], check=True)
    return python


def bench_m4(budget: str, only: set[str] | None, extra: list[str]) -> None:
    from seqgen.config import parse_duration

    train, test = m4_files()
    rows: dict[str, dict] = {}
    for name, options in M4_MODELS.items():
        if not wanted(name, only):
            continue
        out = OUT / f"m4-{name}"
        seqgen("train-forecast", str(train), "--horizon", "48", "--input-size", "168",
               "--time-budget", budget, "--out", str(out), "--overwrite", "--quiet", *options,
               *extra)
        report = json.loads(seqgen("evaluate-forecast", str(train), "-c", str(out / "best.pt"),
                                   "--test", str(test), "--json", capture=True))
        for kind in ("seasonal-naive", "naive2"):
            rows.setdefault(kind, report["scores"][kind])
        s = summary(out)
        rows[f"seqgen {name}"] = {**report["scores"][name], "steps": s["steps"]}
        print(f"seqgen {name}: {rows[f'seqgen {name}']}", flush=True)
    peers = [m for m in ("LSTM", "NHITS") if wanted(f"nf-{m.lower()}", only)]
    if peers:
        done = subprocess.run([str(peer_python()), str(ROOT / "scripts" / "peer_neuralforecast.py"),
                               "--train", str(train), "--test", str(test), "--seconds",
                               str(int(parse_duration(budget))), "--models", ",".join(peers)],
                              check=True, text=True, stdout=subprocess.PIPE)
        for line in done.stdout.splitlines():
            if line.startswith("{"):
                result = json.loads(line)
                rows[result.pop("model")] = result
                print(line, flush=True)
    print("\nM4 Hourly, each series' last 48 training values as the test (models validate on "
          "the 48 before):")
    print("model                    sMAPE    MASE    OWA     steps")
    for name, r in rows.items():
        steps = f"{r['steps']:,}" if "steps" in r else ""
        print(f"{name:<23} {r['smape']:7.3f} {r['mase']:7.3f} {r['owa']:7.3f}   {steps}")


# ----------------------------------------------------------------------------- CTA ridership
# Hands-On ML, 3rd edition, chapter 15: rail boardings, train 2016–2018, validate Jan–May
# 2019, MAE in boardings. The book's naive and SARIMA figures are over Mar–May 2019; its
# networks' over the windows that lie inside the validation period, so over the targets from
# its 57th day (Feb 26) on. Both periods are printed for seqgen's.
BOOK_CTA = {"7-day seasonal naive (Mar–May)": 42_143, "SARIMA (Mar–May)": 32_041,
            "best univariate RNN": 29_015, "multivariate RNN (bus, day type)": 22_062,
            "14 days: seq-to-vector": 35_017, "14 days: seq2seq": 34_322}
CTA_RUNS = {
    "univariate": (1, []),
    "multivariate": (1, ["--covariates", "bus,next_day_type"]),
    "14-days": (14, []),
    "14-days-seq2seq": (14, ["--decoder", "seq2seq"]),
}
VALIDATION_DAYS = 151  # 2019-01-01 to 2019-05-31


def cta_file() -> Path:
    """The CTA file's rows from 2016-01-01 to 2019-05-31, sorted, repeats dropped, with the
    book's ``next_day_type``: the next day's type (weekday, Saturday, Sunday or holiday),
    known a day ahead from the calendar, beside each day."""
    from datetime import datetime, timedelta

    path = OUT / "cta-2016-2019.csv"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        lines = CTA.read_text().splitlines()
        rows = {}
        for line in lines[1:]:
            day = datetime.strptime(line.split(",")[0], "%m/%d/%Y")
            if datetime(2016, 1, 1) <= day <= datetime(2019, 6, 1):
                rows[day] = line.split(",")
        days = sorted(rows)
        kept = [",".join([*rows[d], rows[d + timedelta(days=1)][1]]) for d in days[:-1]]
        path.write_text("\n".join([lines[0] + ",next_day_type", *kept]) + "\n")
    return path


def cta_mae(checkpoint: Path, data: Path, horizon: int, first_day: int,
            step: int | None = None) -> float:
    """Mean absolute error of forecasts from every validation day on (each forecast's whole
    horizon inside the validation period), ``first_day`` days into it; over the whole horizon,
    or of its ``step``-th day alone."""
    from seqgen.data.series import read_series
    from seqgen.tasks.forecast import load_forecaster, series_options_of

    forecaster, saved = load_forecaster(checkpoint, "cpu")
    series = read_series(data, series_options_of(saved)).series[0]
    start = len(series) - VALIDATION_DAYS + first_day
    origins = list(range(start, len(series) - horizon + 1))
    outputs = forecaster.predict([series] * len(origins), origins)
    points = forecaster.point(outputs)
    actual = np.stack([series.target[o:o + horizon] for o in origins])
    errors = np.abs(points - actual)
    return float((errors if step is None else errors[:, step - 1]).mean())


def bench_cta(budget: str, only: set[str] | None, extra: list[str]) -> None:
    data = cta_file()
    results = {}
    for name, (horizon, options) in CTA_RUNS.items():
        if not wanted(name, only):
            continue
        out = OUT / f"cta-{name}"
        seqgen("train-forecast", str(data), "--target", "rail_boardings", "--horizon",
               str(horizon), "--input-size", "56", "--val-size", str(VALIDATION_DAYS),
               "--time-budget", budget, "--out", str(out), "--overwrite", "--quiet", *options,
               *extra)
        s = summary(out)
        results[name] = (cta_mae(out / "best.pt", data, horizon, 56),
                         cta_mae(out / "best.pt", data, horizon, 31 + 28),
                         cta_mae(out / "best.pt", data, horizon, 56, horizon), s["steps"])
        print(f"{name}: MAE {results[name][0]:,.0f} from Feb 26, {results[name][1]:,.0f} "
              f"Mar–May, day {horizon} alone {results[name][2]:,.0f} ({s['steps']:,} steps)",
              flush=True)
    print("\nCTA rail boardings, validation 2019 (MAE in boardings):")
    for name, (feb, mar, last, steps) in results.items():
        print(f"  seqgen {name:<16} Feb 26–May {feb:9,.0f}   Mar–May {mar:9,.0f}   its last "
              f"day {last:9,.0f}   {steps:,} steps")
    for name, value in BOOK_CTA.items():
        print(f"  book: {name:<36} {value:,}")


# ----------------------------------------------------------------------------- speed
def bench_speed(steps: int) -> None:
    """``forecast`` on the 414 M4 Hourly series, batched against one at a time; the trainer's
    steps against a bare PyTorch loop on the same model and batches."""
    import torch

    from seqgen.config import ForecastConfig, TrainConfig
    from seqgen.data.series import read_series
    from seqgen.data.windows import WindowBatches, prepare, split_series
    from seqgen.models.forecasters import build_forecaster
    from seqgen.tasks.forecast import Forecaster

    data = read_series(M4_HOURLY)
    config = ForecastConfig(horizon=48, input_size=168)
    torch.manual_seed(0)
    model = build_forecaster(config)
    forecaster = Forecaster(model, config, "window", "none", None)
    origins = [len(s) for s in data.series]
    for size in (1024, 1):
        began = time.perf_counter()
        forecaster.predict(data.series, origins, batch_size=size)
        took = time.perf_counter() - began
        print(f"forecast of 414 series, batches of {size}: {414 / took:,.0f} series/s")
    split = split_series(data, 168, 48, 48, 0)
    prepared = [prepare(s, 48, "none", None) for s in data.series]
    batches = WindowBatches(prepared, split, 168, 48, 64, 0, "window")
    from seqgen.training import Trainer

    class Task:  # the forecast task's loss, without validation
        def loss(self, model, batch, carry):
            x, future, y = batch
            return torch.nn.functional.l1_loss(model(x, future)[..., 0], y, reduction="sum"), None

        def count_targets(self, batch):
            return batch[2].numel()

        def evaluate(self, model, data, final=False):
            return {"loss": 0.0}

        def preview(self, model):
            return []

    rounds = []
    for _ in range(3):
        torch.manual_seed(0)
        bare = build_forecaster(config)
        optimizer = torch.optim.AdamW(bare.parameters(), lr=3e-3)
        began = time.perf_counter()
        for _, batch in zip(range(steps), batches.batches(0)):
            x, future, y = batch
            loss = torch.nn.functional.l1_loss(bare(x, future)[..., 0], y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(bare.parameters(), 1.0)
            optimizer.step()
        bare_rate = steps / (time.perf_counter() - began)
        torch.manual_seed(0)
        trainer = Trainer(build_forecaster(config), Task(), batches, None,
                          TrainConfig(out_dir=str(OUT / "speed"), max_steps=steps, quiet=True,
                                      device="cpu", eval_every=10**9, lr=3e-3), {"task": "x"})
        (OUT / "speed").mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        trainer._loop()
        ours = steps / (time.perf_counter() - began)
        rounds.append(ours / bare_rate)
        print(f"training steps/s: seqgen {ours:.1f}, bare loop {bare_rate:.1f} "
              f"(ratio {ours / bare_rate:.2f})", flush=True)
    print(f"median ratio {sorted(rounds)[1]:.2f}")


# ----------------------------------------------------------------------------- echo state
RESERVOIRPY = """
import json, sys, time
import numpy as np
from reservoirpy.datasets import mackey_glass
from reservoirpy.nodes import Reservoir, Ridge
series = mackey_glass(2000).ravel()
np.savetxt(sys.argv[1], series, fmt="%.12g")
x, y = series[:-1, None], series[1:, None]
cut = 1600 - 1  # the last 400 values are forecast, one step ahead each
reservoir = Reservoir(100, lr=0.3, sr=1.25, seed=42)
readout = Ridge(ridge=1e-5)
model = reservoir >> readout
began = time.perf_counter()
model.fit(x[:cut], y[:cut], warmup=100)
fitted = time.perf_counter() - began
predicted = model.run(x[cut:]).ravel()
actual = y[cut:].ravel()
rmse = float(np.sqrt(np.mean((predicted - actual) ** 2)))
r2 = float(1 - np.sum((actual - predicted) ** 2) / np.sum((actual - actual.mean()) ** 2))
print(json.dumps({"rmse": rmse, "r2": r2, "fit_seconds": fitted}))
"""


def one_step(checkpoint: Path, data: Path, first: int) -> tuple[float, float, float]:
    """RMSE, R² and NRMSE of one-step forecasts from every origin from ``first`` on."""
    from seqgen.data.series import read_series
    from seqgen.tasks.forecast import load_forecaster

    forecaster, _ = load_forecaster(checkpoint, "cpu")
    series = read_series(data).series[0]
    origins = list(range(first, len(series)))
    points = forecaster.point(forecaster.predict([series] * len(origins), origins))[:, 0]
    actual = series.target[first:]
    rmse = float(np.sqrt(np.mean((points - actual) ** 2)))
    r2 = float(1 - np.sum((actual - points) ** 2) / np.sum((actual - actual.mean()) ** 2))
    return rmse, r2, rmse / float(np.std(actual))


def fit_seconds(out: Path) -> float:
    return summary(out)["elapsed"]


def bench_esn() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / "mackey-glass-2000.txt"
    done = subprocess.run([str(peer_python()), "-c", RESERVOIRPY, str(data)], check=True,
                          text=True, stdout=subprocess.PIPE)
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    out = OUT / "esn-mg"
    seqgen("train-forecast", str(data), "--model", "esn", "--units", "100",
           "--spectral-radius", "1.25", "--leak-rate", "0.3", "--ridge", "1e-5", "--washout",
           "100", "--horizon", "1", "--input-size", "1", "--val-size", "400", "--scale",
           "none", "--out", str(out), "--overwrite", "--quiet")
    rmse, r2, _ = one_step(out / "best.pt", data, 1600)
    print(f"Mackey–Glass, one step ahead on the last 400 of 2,000 steps, 100 units:\n"
          f"  seqgen esn    RMSE {rmse:.6f}  R² {r2:.6f}  (fit {fit_seconds(out):.2f} s)\n"
          f"  reservoirpy   RMSE {theirs['rmse']:.6f}  R² {theirs['r2']:.6f}  (fit "
          f"{theirs['fit_seconds']:.2f} s)", flush=True)
    # The free run: the last 84 steps forecast from the trajectory before them. The
    # reservoir is chosen among a few sizes, leak rates and radii, and the ridge among
    # 1e-10 … 10, all on the 84 steps before those (the reported steps are never seen).
    lines = data.read_text().splitlines()
    train = OUT / "mackey-glass-1916.txt"
    train.write_text("\n".join(lines[:-84]) + "\n")
    tried = []
    for units in (500, 1000):
        for leak in (0.3, 1.0):
            for radius in (0.9, 1.25):
                out = OUT / f"esn-free-{units}-{leak:g}-{radius:g}"
                seqgen("train-forecast", str(train), "--model", "esn", "--units", str(units),
                       "--spectral-radius", str(radius), "--leak-rate", str(leak), "--ridge",
                       "auto", "--decoder", "recursive", "--horizon", "84", "--input-size",
                       "1", "--val-size", "84", "--scale", "none", "--select", "mse", "--out",
                       str(out), "--overwrite", "--quiet")
                report = json.loads(seqgen("evaluate-forecast", str(data), "-c",
                                           str(out / "best.pt"), "--json", capture=True))
                s = summary(out)
                tried.append((s["mse"], units, leak, radius, report["scores"]["esn"]["nrmse"],
                              s["elapsed"]))
    print("  free run of 84 steps (validation MSE on the 84 before; test NRMSE):")
    for val, units, leak, radius, nrmse, took in sorted(tried):
        print(f"    {units:>5} units, leak {leak:g}, radius {radius:g}: validation MSE "
              f"{val:.2e}, test NRMSE {nrmse:.2e} (fit {took:.1f} s)")
    val, units, leak, radius, nrmse, _ = min(tried)
    print(f"  chosen on the validation: {units} units, leak {leak:g}, radius {radius:g}: "
          f"test NRMSE {nrmse:.2e}", flush=True)


LASER = DATA / "laser" / "santafe-laser.txt"
LASER_RUNS = {
    "lstm": ["--time-budget", "3m"],
    "wavenet": ["--model", "wavenet", "--dilations", "1,2,4,8,16,32", "--time-budget", "3m"],
}
# The echo state network's reservoir is chosen on the validation among these leak rates and
# spectral radii (the ridge by --ridge auto): a fit takes seconds.
LASER_ESN = [(leak, radius) for leak in (0.3, 0.6, 1.0) for radius in (0.9, 1.25)]


def bench_laser(only: set[str] | None) -> None:
    """One step ahead on the last 20%: each model trains on the first 80% (validating on its
    last 1,000 values) and is scored on the rest, which it never saw."""
    lines = [line for line in LASER.read_text().splitlines() if line.strip()]
    cut = int(len(lines) * 0.8)
    train = OUT / "laser-train.txt"
    OUT.mkdir(parents=True, exist_ok=True)
    train.write_text("\n".join(lines[:cut]) + "\n")
    common = ["--horizon", "1", "--input-size", "64", "--val-size", "1000", "--select", "mse",
              "--overwrite", "--quiet"]
    if wanted("esn", only):
        tried = []
        for leak, radius in LASER_ESN:
            out = OUT / f"laser-esn-{leak:g}-{radius:g}"
            seqgen("train-forecast", str(train), "--model", "esn", "--scale", "standard",
                   "--leak-rate", str(leak), "--spectral-radius", str(radius), "--ridge",
                   "auto", "--out", str(out), *common)
            s = summary(out)
            tried.append((s["mse"], leak, radius, one_step(out / "best.pt", LASER, cut)[2],
                          s["elapsed"]))
        for val, leak, radius, nrmse, took in sorted(tried):
            print(f"laser esn, leak {leak:g}, radius {radius:g}: validation MSE {val:.1f}, "
                  f"test NRMSE {nrmse:.4f} (fit {took:.1f} s)")
        val, leak, radius, nrmse, _ = min(tried)
        print(f"laser esn chosen on the validation (leak {leak:g}, radius {radius:g}): test "
              f"NRMSE {nrmse:.4f}; {sum(t[-1] for t in tried):.0f} s for all "
              f"{len(tried)} fits", flush=True)
    for name, options in LASER_RUNS.items():
        if not wanted(name, only):
            continue
        out = OUT / f"laser-{name}"
        seqgen("train-forecast", str(train), "--out", str(out), *common, *options)
        _, _, nrmse = one_step(out / "best.pt", LASER, cut)
        s = summary(out)
        print(f"laser {name}: test NRMSE {nrmse:.4f} ({s['elapsed']:.1f} s, {s['steps']:,} "
              "steps)", flush=True)


def bench_ucr(budget: str | None) -> None:
    """Each set's fixed split: trained on TRAIN (with the defaults: 2,000 steps; or
    ``--budget``), its checkpoint chosen on a fifth of TRAIN, scored on TEST."""
    rnn = ["--time-budget", budget] if budget else []
    for problem in ("ItalyPowerDemand", "GunPoint"):
        for name, options in (("rnn", rnn), ("esn", ["--model", "esn"])):
            out = OUT / f"ucr-{problem}-{name}"
            seqgen("train-classify", str(DATA / "ucr" / f"{problem}_TRAIN.ts"), "--out",
                   str(out), "--overwrite", "--quiet", *options)
            report = json.loads(seqgen("evaluate-classify",
                                       str(DATA / "ucr" / f"{problem}_TEST.ts"), "-c",
                                       str(out / "best.pt"), "--json", capture=True))
            rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            print(f"{problem} {name}: test accuracy {report['accuracy']:.4f} ("
                  f"{rows[-1]['step']:,} steps, {rows[-1]['elapsed']:.0f} s)", flush=True)


def bench_lags(budget: str) -> None:
    seqgen("experiment", "adding", "--lags", "10,50,100", "--cells", "leaky,esn",
           "--leak-rate", "0.1", "--time-budget", budget, "--out", str(OUT / "lags"),
           "--overwrite")


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", required=True, choices=["sines", "m4", "cta", "speed", "esn",
                                                          "laser", "ucr", "lags"])
    parser.add_argument("--budget", help="training time of each model (default: the part's)")
    parser.add_argument("--only", help="some rows of the part, e.g. lstm,wavenet")
    parser.add_argument("--steps", type=int, default=200, help="speed: timed steps")
    parser.add_argument("extra", nargs="*", help="more train-forecast options (after --)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    started = time.perf_counter()
    if args.part == "sines":
        bench_sines(args.budget or "2m", only, args.extra)
    elif args.part == "m4":
        bench_m4(args.budget or "10m", only, args.extra)
    elif args.part == "cta":
        bench_cta(args.budget or "3m", only, args.extra)
    elif args.part == "esn":
        bench_esn()
    elif args.part == "laser":
        bench_laser(only)
    elif args.part == "ucr":
        bench_ucr(args.budget)
    elif args.part == "lags":
        bench_lags(args.budget or "3m")
    else:
        bench_speed(args.steps)
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
