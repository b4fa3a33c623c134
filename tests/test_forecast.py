"""Forecasting: WaveNet is causal and sees what it says it sees; every model fits a small
series; quantile heads are ordered and cover about what they are asked to; a resumed run ends
bit-identical; the final validation equals evaluate-forecast; the commands end to end on a
slice of real data, and the baselines as runs of their own."""

import json

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA, assert_user_error, invoke

from seqgen.config import ForecastConfig, TrainConfig
from seqgen.data.series import Series, SeriesOptions, SeriesSet
from seqgen.models.forecasters import WaveNet, build_forecaster, ordered
from seqgen.tasks.forecast import ForecastOptions, load_forecaster, train_forecast

QUIET = ["--quiet", "--device", "cpu"]


def write_series(path, series: dict[str, np.ndarray]) -> None:
    """A long unique_id,ds,y file."""
    rows = ["unique_id,ds,y"] + [f"{name},{t},{v:.6f}" for name, values in series.items()
                                 for t, v in enumerate(values)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def sines(n: int = 3, length: int = 120, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return {f"s{i}": 10 + 3 * np.sin(2 * np.pi * t / 12 + i) + noise * rng.normal(size=length)
            for i in range(n)}


def test_wavenet_is_causal_and_sees_its_receptive_field():
    config = ForecastConfig(horizon=2, input_size=15, model="wavenet", kernel=2,
                            dilations=(1, 2, 4), stacks=2, channels=8)
    assert config.receptive_field() == 1 + 2 * (1 + 2 + 4) == 15
    torch.manual_seed(0)
    net = WaveNet(config).eval()
    x = torch.randn(1, 40, 1)
    base = net.features(x)
    later = x.clone()
    later[:, 25:] += 1.0  # change everything after step 24
    assert torch.equal(net.features(later)[:, :25], base[:, :25])
    t = 30
    x.requires_grad_(True)
    net.features(x)[0, t].sum().backward()
    reach = x.grad[0, :, 0]
    assert reach[t - 14] != 0 and (reach[:t - 14] == 0).all()  # 15 steps: t - 14 … t
    assert (reach[t + 1:] == 0).all()


def test_quantile_outputs_are_ordered_by_construction():
    raw = torch.randn(5, 3, 4) * 10
    q = ordered(raw)
    assert (q[..., 1:] >= q[..., :-1]).all()


def fit(tmp_path, series, steps, **model):
    path = tmp_path / "series.csv"
    write_series(path, series)
    options = ForecastOptions(horizon=model.pop("horizon", 4), input_size=24,
                              loss=model.pop("loss", "mse"))
    config = TrainConfig(out_dir=str(tmp_path / "run"), max_steps=steps, lr=1e-2,
                         batch_size=32, quiet=True, device="cpu", warmup_steps=10,
                         eval_every=steps, select_metric="mae", seed=0)
    result = train_forecast(str(path), SeriesOptions(), None, model, options, config)
    return result


@pytest.mark.parametrize("model", [
    {"model": "lstm", "decoder": "direct", "layers": 1, "hidden": 32},
    {"model": "gru", "decoder": "seq2seq", "layers": 1, "hidden": 32},
    {"model": "rnn", "decoder": "recursive", "layers": 1, "hidden": 32},
    {"model": "wavenet", "channels": 16, "dilations": (1, 2, 4, 8, 16)},
    {"model": "linear"},
    {"model": "lstm", "conv": 8, "layers": 1, "hidden": 32},
])
def test_every_model_fits_a_clean_sine(tmp_path, model):
    result = fit(tmp_path, sines(), 250, **model)
    # amplitude 3: the naive forecast is off by about 1.5 on average
    assert result.best_metrics["mae"] < 0.35, (model, result.best_metrics)
    assert result.best_metrics["mase"] < result.best_metrics["owa"] * 10  # both are there


def test_quantile_heads_cover_about_what_they_are_asked(tmp_path):
    series = sines(n=4, length=400, noise=0.5, seed=1)
    path = tmp_path / "noisy.csv"
    write_series(path, series)
    options = ForecastOptions(horizon=4, input_size=24, val_size=96)
    config = TrainConfig(out_dir=str(tmp_path / "q"), max_steps=600, lr=5e-3, batch_size=64,
                         quiet=True, device="cpu", eval_every=600, select_metric="mae")
    result = train_forecast(str(path), SeriesOptions(), None,
                            {"model": "lstm", "layers": 1, "hidden": 32,
                             "quantiles": (0.1, 0.5, 0.9)}, options, config)
    coverage = result.best_metrics["coverage"]
    assert 0.65 <= coverage <= 0.93, coverage  # asked: 80%
    assert result.best_metrics["msis"] > 0


def test_a_resumed_forecast_run_ends_bit_identical(tmp_path):
    path = tmp_path / "series.csv"
    write_series(path, sines())
    options = ForecastOptions(horizon=3, input_size=12)
    model = {"model": "lstm", "decoder": "seq2seq", "layers": 1, "hidden": 16, "dropout": 0.1}

    def run(out, steps, resume=False):
        config = TrainConfig(out_dir=str(out), max_steps=steps, schedule="constant",
                             quiet=True, device="cpu", eval_every=7, select_metric="mae")
        return train_forecast(str(path), SeriesOptions(), None, model, options, config,
                              resume=resume, explicit={"max_steps"} if resume else None)

    run(tmp_path / "straight", 20)
    run(tmp_path / "twice", 11)
    run(tmp_path / "twice", 20, resume=True)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "twice" / "last.pt", weights_only=True)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def m4_slice(tmp_path, rows: int = 6):
    if not SHARED_DATA.exists():
        pytest.skip("no ../shared/data here")
    lines = (SHARED_DATA / "m4" / "Hourly-train.csv").read_text().splitlines()[:rows + 1]
    path = tmp_path / "hourly.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_commands_end_to_end_on_m4_hourly(tmp_path):
    data = m4_slice(tmp_path)
    out = tmp_path / "lstm"
    done = invoke("train-forecast", data, "--horizon", 48, "--input-size", 96, "--layers", 1,
                  "--hidden", 16, "--max-steps", 30, "--quantiles", "0.1,0.5,0.9",
                  "--out", out, *QUIET)
    assert done.exit_code == 0, done.output
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
             if '"final"' in line][-1]
    evaluated = invoke("evaluate-forecast", data, "-c", out / "last.pt", "--json",
                       "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert set(report["scores"]) == {"lstm", "naive", "seasonal-naive", "naive2"}
    assert report["season"] == 24 and report["scores"]["naive2"]["owa"] == pytest.approx(1)
    # the run's final validation is evaluate-forecast on the same last 48 values
    for key in ("mae", "smape", "mase", "owa", "coverage"):
        assert report["scores"]["lstm"][key] == pytest.approx(final[key], rel=1e-5), key
    table = invoke("evaluate-forecast", data, "-c", out / "best.pt", "--device", "cpu")
    assert "seasonal-naive" in table.stdout and "coverage" in table.stdout
    forecast = invoke("forecast", data, "-c", out / "best.pt", "--json", "--device", "cpu")
    items = [json.loads(line) for line in forecast.stdout.splitlines()]
    assert [i["series"] for i in items] == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert all(len(i["forecast"]) == 48 and all(lo <= f <= hi for lo, f, hi in zip(
        i["lower"], i["forecast"], i["upper"])) for i in items)
    assert items[0]["times"][0] == "700"  # the step after the data's end
    text = invoke("forecast", data, "-c", out / "best.pt", "--device", "cpu")
    assert text.stdout.startswith("series\ttime\tforecast\tlower\tupper")
    assert "H1: * history   o forecast" in text.stderr
    written = tmp_path / "f.csv"
    assert invoke("forecast", data, "-c", out / "best.pt", "--csv", written).exit_code == 0
    assert written.read_text().splitlines()[0] == "series,time,forecast,lower,upper"
    assert len(written.read_text().splitlines()) == 1 + 6 * 48
    pytest.importorskip("matplotlib")
    png = tmp_path / "f.png"
    drawn = invoke("forecast", data, "-c", out / "best.pt", "--plot", png, "--show", 2)
    assert drawn.exit_code == 0 and png.stat().st_size > 1000
    info = invoke("info", out / "best.pt")
    assert "horizon" in info.stdout and "naive2" in info.stdout


def test_a_baseline_is_a_run_too(tmp_path):
    data = m4_slice(tmp_path)
    out = tmp_path / "naive2"
    done = invoke("train-forecast", data, "--model", "naive2", "--horizon", 48, "--out", out,
                  *QUIET)
    assert done.exit_code == 0 and "fitted" in done.stderr
    assert (out / "best.pt").exists() and (out / "metrics.jsonl").exists()
    report = json.loads(invoke("evaluate-forecast", data, "-c", out / "best.pt", "--json"
                               ).stdout)
    assert set(report["scores"]) == {"naive", "seasonal-naive", "naive2"}
    forecaster, _ = load_forecaster(out / "best.pt", "cpu")
    assert forecaster.kind == "naive2"


def test_a_dated_csv_with_covariates_and_calendar_forecasts_dated_steps(tmp_path):
    days = np.arange("2021-01-01", "2021-05-01", dtype="datetime64[D]")
    weekday = (days.astype(int) + 3) % 7
    rail = 100 + 40 * (weekday < 5) + np.random.default_rng(0).normal(0, 2, len(days))
    bus = rail * 0.8
    path = tmp_path / "daily.csv"
    path.write_text("date,rail,bus\n" + "".join(f"{d},{r:.2f},{b:.2f}\n" for d, r, b in zip(
        days, rail, bus)))
    out = tmp_path / "run"
    done = invoke("train-forecast", path, "--target", "rail", "--covariates", "bus",
                  "--calendar", "auto", "--horizon", 7, "--input-size", 14, "--layers", 1,
                  "--hidden", 16, "--max-steps", 20, "--out", out, *QUIET)
    assert done.exit_code == 0, done.output
    items = json.loads(invoke("forecast", path, "-c", out / "best.pt", "--json").stdout)
    assert items["times"] == [f"2021-05-0{d}" for d in range(1, 8)]
    forecaster, _ = load_forecaster(out / "best.pt", "cpu")
    assert forecaster.config.inputs == 1 + 1 + 9 and forecaster.config.future_inputs == 9
    other = tmp_path / "other.csv"
    other.write_text("date,rail\n" + "".join(f"{d},{r:.2f}\n" for d, r in zip(days, rail)))
    assert_user_error(invoke("forecast", other, "-c", out / "best.pt", "--covariates", ""),
                      "the model reads covariates")


def test_the_forecast_endpoint(tmp_path):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    import urllib.request

    from helpers import Running

    from seqgen.serve import create_app, load_served

    path = tmp_path / "series.csv"
    write_series(path, sines(n=2))
    config = TrainConfig(out_dir=str(tmp_path / "f"), max_steps=5, quiet=True, device="cpu")
    train_forecast(str(path), SeriesOptions(), None, {"model": "lstm", "layers": 1,
                                                      "hidden": 8},
                   ForecastOptions(horizon=3, input_size=12), config)
    running = Running(create_app(load_served([tmp_path / "f" / "best.pt"], "cpu")))
    try:
        def post(body):
            request = urllib.request.Request(running.url + "/forecast",
                                             data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        values = sines(n=1)["s0"][:30].tolist()
        status, answer = post({"series": [{"id": "mine", "values": values}]})
        assert status == 200 and len(answer["forecasts"][0]["forecast"]) == 3
        forecaster, _ = load_forecaster(tmp_path / "f" / "best.pt", "cpu")
        direct = forecaster.predict([Series("mine", np.array(values), np.zeros((30, 0)))],
                                    [30])[0, :, 0]
        assert np.allclose(answer["forecasts"][0]["forecast"], direct, atol=1e-5)
        status, answer = post({"series": [{"values": values[:5]}]})
        assert status == 400 and "reads 12" in answer["error"]
        status, answer = post({"series": [{"values": values, "covariates": [[1]] * 30}]})
        assert status == 422 and "reads no covariates" in answer["error"]
    finally:
        running.stop()


def test_forecasts_are_undone_to_the_series_units(tmp_path):
    """A model trained on series around 10 forecasts series around 10 000 in their units."""
    path = tmp_path / "series.csv"
    write_series(path, sines())
    config = TrainConfig(out_dir=str(tmp_path / "u"), max_steps=150, lr=1e-2, quiet=True,
                         device="cpu", eval_every=150)
    train_forecast(str(path), SeriesOptions(), None, {"model": "linear"},
                   ForecastOptions(horizon=2, input_size=24), config)
    forecaster, _ = load_forecaster(tmp_path / "u" / "best.pt", "cpu")
    big = 1000 * sines(n=1)["s0"]
    data = SeriesSet([Series("big", big, np.zeros((len(big), 0)))])
    predicted = forecaster.predict(data.series, [100])[0, :, 0]
    assert np.abs(predicted - big[100:102]).max() < 0.1 * 3000  # amplitude 3 000
    assert build_forecaster(forecaster.config) is not None
