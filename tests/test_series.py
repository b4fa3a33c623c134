"""Series: every layout read (bad rows named with file and line), the M4 metrics and Naive2
against values worked by hand, scaling undone exactly, and windows that never let a value
they forecast into their inputs or a validation value into training."""

import math

import numpy as np
import pytest

from seqgen.data.series import (
    SeriesOptions,
    SyntheticOptions,
    infer_step,
    read_series,
    sine_sums,
    synthetic_series,
)
from seqgen.data.windows import (
    WindowBatches,
    fit_scaler,
    prepare,
    split_series,
    window_inputs,
)
from seqgen.errors import UserError
from seqgen.metrics import forecast_scores, mase_scale, msis, owa, smape
from seqgen.models.baselines import (
    is_seasonal,
    naive,
    naive2,
    seasonal_indices,
    seasonal_naive,
)


# ------------------------------------------------------------------ metrics by hand
def test_the_m4_metrics_on_tiny_arrays():
    assert smape(np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(200 / 3 / 2)
    assert smape(np.array([0.0]), np.array([0.0])) == 0.0
    assert mase_scale(np.array([1.0, 3.0, 2.0, 4.0]), 1) == pytest.approx(5 / 3)
    assert mase_scale(np.array([1.0, 3.0, 2.0, 4.0]), 2) == pytest.approx(1.0)
    assert math.isnan(mase_scale(np.array([5.0, 5.0, 5.0]), 1))  # never changes
    # widths 2 and 3; the second value lies 2 above its interval: 2 / 0.2 × 2 = 20
    assert msis(np.array([1.0, 5.0]), np.zeros(2), np.array([2.0, 3.0]), 1.0, 0.2) == 12.5
    assert owa({"smape": 10.0, "mase": 1.0}, {"smape": 20.0, "mase": 2.0}) == 0.5
    scores = forecast_scores([np.array([1.0, 2.0]), np.array([10.0])],
                             [np.array([2.0, 2.0]), np.array([13.0])], [1.0, 3.0],
                             [(np.array([0.0, 3.0]), np.array([3.0, 4.0])),
                              (np.array([9.0]), np.array([11.0]))], 0.2)
    assert scores["mae"] == pytest.approx(4 / 3) and scores["rmse"] == pytest.approx(
        math.sqrt(10 / 3))
    assert scores["mase"] == pytest.approx((0.5 / 1 + 3 / 3) / 2)
    assert scores["coverage"] == pytest.approx(2 / 3)  # 2.0 is below [3, 4]


def test_naive2_undoes_a_multiplicative_season_exactly():
    season = np.array([0.8, 1.3, 1.1, 0.8])  # mean 1
    series = 50.0 * np.tile(season, 10)
    assert is_seasonal(series, 4)
    assert np.allclose(seasonal_indices(series, 4), season)
    expected = 50.0 * np.array([season[k % 4] for k in range(40, 46)])
    assert np.allclose(naive2(series, 6, 4), expected)
    noise = np.random.default_rng(0).normal(10, 1, 200)
    assert not is_seasonal(noise, 12)
    assert np.allclose(naive2(noise, 3, 12), naive(noise, 3))  # no season found: naive
    assert seasonal_naive(np.arange(8.0), 5, 4).tolist() == [4, 5, 6, 7, 4]


# ------------------------------------------------------------------ readers
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_with_dates_is_sorted_and_its_repeats_dropped(tmp_path):
    path = write(tmp_path, "cta.csv", "service_date,day_type,bus,rail\n"
                 "01/03/2019,W,5,30\n01/01/2019,U,1,10\n01/02/2019,W,3,20\n"
                 "01/02/2019,W,3,20\n")
    data = read_series(path, SeriesOptions(target=["rail"], covariates=["bus", "day_type"]))
    s = data.series[0]
    assert s.target.tolist() == [10, 20, 30] and s.name == "rail"
    assert data.covariate_names == ["bus", "day_type=U", "day_type=W"]
    assert s.covariates.tolist() == [[1, 1, 0], [3, 0, 1], [5, 0, 1]]
    assert data.step.describe() == "daily" and "1 rows repeated" in data.notes[0]


@pytest.mark.parametrize("text,options,message", [
    ("date,y\n2020-01-01,1\n2020-01-01,2\n", {}, "line 3: a second row for 2020-01-01"),
    ("date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-04,4\n", {},
     "line 4: the time step before it (2020-01-03"),
    ("date,y\n2020-01-01,1\n2020-01-02,x\n", {}, "line 3: 'x', not a number, in column 'y'"),
    ("date,y\n2020-01-01,1\n2020-01-02,\n", {}, "line 3: an empty cell in column 'y'"),
    ("date,y\n2020-01-01,1\n", {"target": ["z"]}, "no column 'z'"),
    ("date,a,b\n2020-01-01,1,2\n", {}, "which column(s) to forecast"),
    ("date,y,name\n2020-01-01,1,x\n", {"target": ["name"]}, "does not hold numbers"),
    ("date,y\n2020-01-01,1\n2020-13-45,2\n", {}, "line 3: '2020-13-45'"),
])
def test_bad_rows_are_one_line_naming_file_and_line(tmp_path, text, options, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(UserError, match=None) as caught:
        read_series(path, SeriesOptions(**options))
    assert message in str(caught.value) and "bad.csv" in str(caught.value)


def test_fill_says_how_many_it_filled(tmp_path):
    path = write(tmp_path, "gaps.csv", "date,y\n2020-01-01,1\n2020-01-02,\n2020-01-04,7\n")
    data = read_series(path, SeriesOptions(fill="interpolate"))
    assert data.series[0].target.tolist() == [1, 3, 5, 7]
    assert data.notes == ["filled 1 empty or non-numeric cells and 1 missing time steps "
                          "(interpolated)"]
    forward = read_series(path, SeriesOptions(fill="ffill")).series[0].target
    assert forward.tolist() == [1, 1, 1, 7]


def test_the_long_m4_and_one_number_layouts(tmp_path):
    long = write(tmp_path, "long.csv", "unique_id,ds,y\nb,2,5\na,1,1\na,2,2\nb,1,4\na,3,3\n")
    data = read_series(long)
    assert [(s.name, s.target.tolist()) for s in data.series] == [("b", [4, 5]),
                                                                  ("a", [1, 2, 3])]
    m4 = write(tmp_path, "m4.csv", '"V1","V2","V3","V4"\n"H1","1","2","3"\n"H2","4","5",""\n')
    data = read_series(m4)
    assert data.layout == "M4 wide" and [len(s) for s in data.series] == [3, 2]
    lines = write(tmp_path, "laser.txt", "86\n141\n\n95\n")
    assert read_series(lines).series[0].target.tolist() == [86, 141, 95]
    bad = write(tmp_path, "bad.txt", "1\n2\nthree\n")
    with pytest.raises(UserError, match="bad.txt, line 3: 'three' is not a number"):
        read_series(bad)


def test_the_real_files_read_as_their_readmes_say(tmp_path):
    from helpers import SHARED_DATA

    if not SHARED_DATA.exists():
        pytest.skip("no ../shared/data here")
    cta = read_series(SHARED_DATA / "ridership" / "CTA_-_Ridership_-_Daily_Boarding_Totals.csv",
                      SeriesOptions(target=["rail_boardings"]))
    assert len(cta.series[0]) == 7639 and cta.step.describe() == "daily"  # 62 repeats
    hourly = read_series(SHARED_DATA / "m4" / "Hourly-train.csv")
    assert len(hourly) == 414 and {len(s) for s in hourly.series} == {700, 960}


def test_the_sines_are_the_books():
    values = sine_sums(3, 51, seed=42)
    assert values.shape == (3, 51) and np.allclose(values, sine_sums(3, 51, seed=42))
    assert not np.allclose(values, sine_sums(3, 51, seed=1))
    data = synthetic_series(SyntheticOptions(series=4, length=10))
    assert len(data) == 4 and len(data.series[0]) == 10
    with pytest.raises(UserError, match="unknown --synthetic"):
        SyntheticOptions(name="waves")


def test_steps_are_inferred_in_seconds_and_months():
    hours = np.array(["2020-01-01T00", "2020-01-01T01", "2020-01-01T02"], dtype="datetime64[s]")
    assert infer_step(hours).describe() == "hourly"
    months = np.array(["2020-01-01", "2020-02-01", "2020-03-01"], dtype="datetime64[s]")
    step = infer_step(months)
    assert step.describe() == "monthly"
    assert step.after(months[-1], 2).astype("datetime64[D]").astype(str).tolist() == [
        "2020-04-01", "2020-05-01"]


# ------------------------------------------------------------------ scaling and windows
def test_each_window_is_scaled_by_its_past_alone_and_undone_exactly():
    from seqgen.data.series import Series

    values = np.random.default_rng(1).normal(100, 20, 50)
    prepared = prepare(Series("s", values, np.zeros((50, 0))), 5, "none", None)
    for kind in ("standard", "robust", "window", "none"):
        x, _, scaler = window_inputs(prepared, 30, 10, 5, kind)
        assert np.allclose(scaler.undo(x[:, 0].astype(np.float64)), values[20:30], atol=1e-3)
    _, _, scaler = window_inputs(prepared, 30, 10, 5, "standard")
    assert scaler.center[0] == pytest.approx(values[:30].mean())  # the past only
    _, _, scaler = window_inputs(prepared, 30, 10, 5, "window")
    assert scaler.center[0] == pytest.approx(values[20:30].mean())  # the window only
    assert fit_scaler(np.full((5, 1), 3.0), "standard").scale[0] == 1.0  # constant: kept


@pytest.mark.parametrize("kind", ["standard", "robust", "window"])
def test_training_windows_are_scaled_as_forecasts_are(kind):
    """The running sums of training give the scaler a forecast from the same origin gets."""
    from seqgen.data.series import Series, SeriesSet

    rng = np.random.default_rng(2)
    data = SeriesSet([Series(n, rng.normal(m, 5, 40), rng.normal(0, 1, (40, 1)))
                      for n, m in (("a", 10), ("b", 300))])
    split = split_series(data, 6, 3, 3, 0)
    prepared = [prepare(s, 3, "none", None) for s in data.series]
    batches = WindowBatches(prepared, split, 6, 3, 8, scale=kind)
    x, _, y = batches.batch(batches.starts, batches.origins)
    for row in (0, 5, len(batches.origins) - 1):
        series = 0 if batches.starts[row] == 0 else 1
        origin = int(batches.origins[row] - batches.starts[row])
        expected, _, _ = window_inputs(prepared[series], origin, 6, 3, kind)
        assert np.allclose(x[row].numpy(), expected, atol=1e-4)


def test_no_window_forecasts_what_it_reads_and_validation_comes_after_training():
    from seqgen.data.series import Series, SeriesSet

    data = SeriesSet([Series(name, np.arange(n, dtype=float), np.zeros((n, 0)))
                      for name, n in (("a", 40), ("b", 33))])
    split = split_series(data, input_size=6, horizon=3, val_size=5, val_series=0)
    assert split.train_end == [35, 28] and split.val_origins == [[35], [28]]
    prepared = [prepare(s, 3, "none", None) for s in data.series]
    batches = WindowBatches(prepared, split, 6, 3, batch_size=7, seed=0, scale="none")
    seen = 0
    for x, _, y in batches.batches(0):
        x, y = x[..., 0].numpy(), y.numpy()
        assert (x.max(1) < y.min(1)).all()  # every input before every target
        assert (y[:, 1:] - y[:, :-1] == 1).all() and (x[:, -1] + 1 == y[:, 0]).all()
        seen += len(y)
    assert seen == (35 - 6 - 3 + 1) + (28 - 6 - 3 + 1)
    # every training target of series a lies before its validation (index 35 on)
    targets = np.concatenate([y.numpy() for _, _, y in batches.batches(1)])
    assert targets.max() <= 34
    with pytest.raises(UserError, match="series 'b' has 33 values"):
        split_series(data, input_size=30, horizon=3, val_size=3, val_series=0)


def test_held_out_series_are_validated_whole():
    data = synthetic_series(SyntheticOptions(series=10, length=12))
    split = split_series(data, input_size=10, horizon=2, val_size=2, val_series=3)
    assert split.held_out == [False] * 7 + [True] * 3
    assert split.val_origins[-1] == [10] and split.val_origins[0] == []
    with pytest.raises(UserError, match="leaves no series to train on"):
        split_series(data, 10, 2, 2, val_series=10)
