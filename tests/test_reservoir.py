"""Echo state networks and leaky units: the reservoir has exactly the spectral radius and
density asked; the leaky update is its formula; the closed-form readout is least squares and
accumulating it in pieces changes nothing; washout states never reach the readout; an ESN
forecasts a sine one step ahead almost exactly, and its run resumes, is described and
forecasts like any forecaster."""

import json

import numpy as np
import pytest
import torch
from helpers import invoke

from seqgen.models.recurrent import LeakyRNN
from seqgen.models.reservoir import Reservoir, RidgeReadout, reservoir_matrix


def test_the_reservoir_has_the_asked_spectral_radius_and_density():
    matrix = reservoir_matrix(200, 0.05, 1.25, torch.Generator().manual_seed(3))
    assert float(torch.linalg.eigvals(matrix).abs().max()) == pytest.approx(1.25, abs=1e-9)
    assert int((matrix != 0).sum()) == round(0.05 * 200 * 200)
    again = reservoir_matrix(200, 0.05, 1.25, torch.Generator().manual_seed(3))
    assert torch.equal(matrix, again)  # a seed, the same reservoir


def test_the_leaky_update_is_its_formula():
    reservoir = Reservoir(2, 30, 0.9, 0.3, 0.5, 0.2, 0.1, seed=1)
    x = torch.randn(4, 6, 2)
    states = reservoir.run(x)
    h = torch.zeros(4, 30)
    for t in range(6):
        pre = x[:, t] @ reservoir.input_weights.T + h @ reservoir.recurrent.T + reservoir.bias
        h = 0.7 * h + 0.3 * torch.tanh(pre)
        assert torch.allclose(states[:, t], h, atol=1e-6)
    leaky = LeakyRNN(2, 5, leak_rate=0.2)
    out, final = leaky(x)
    cell, h = leaky.cells[0], torch.zeros(4, 5)
    for t in range(6):
        h = 0.8 * h + 0.2 * torch.tanh(x[:, t] @ cell.weight_ih.T + cell.bias_ih
                                       + h @ cell.weight_hh.T + cell.bias_hh)
    assert torch.allclose(out[:, -1], h, atol=1e-6) and torch.allclose(final[0], h, atol=1e-6)


def test_leaky_units_read_packed_sequences_to_each_ones_end():
    from torch.nn.utils.rnn import pack_padded_sequence

    leaky = LeakyRNN(3, 4, num_layers=2, leak_rate=0.5)
    x = torch.randn(2, 7, 3)
    _, final = leaky(pack_padded_sequence(x, torch.tensor([7, 4]), batch_first=True,
                                          enforce_sorted=False))
    _, short = leaky(x[1:, :4])
    assert torch.allclose(final[:, 1], short[:, 0], atol=1e-6)


def test_the_closed_form_readout_is_least_squares_in_pieces_or_whole():
    rng = torch.Generator().manual_seed(0)
    states, targets = torch.randn(300, 8, generator=rng), torch.randn(300, 2, generator=rng)
    whole = RidgeReadout(8, 2)
    whole.add(states, targets)
    pieces = RidgeReadout(8, 2)
    for chunk in range(0, 300, 70):
        pieces.add(states[chunk:chunk + 70], targets[chunk:chunk + 70])
    assert torch.allclose(whole.solve(1e-3), pieces.solve(1e-3), atol=1e-10)
    design = RidgeReadout.design(states)
    expected = torch.linalg.lstsq(design, targets.double()).solution
    assert torch.allclose(whole.solve(0.0), expected, atol=1e-8)
    penalty = torch.eye(9, dtype=torch.float64) * 0.5
    penalty[0, 0] = 0
    normal = torch.linalg.solve(design.T @ design + penalty, design.T @ targets.double())
    assert torch.allclose(whole.solve(0.5), normal, atol=1e-10)


def sine_file(tmp_path, length=600):
    t = np.arange(length)
    values = np.sin(2 * np.pi * t / 25) + 0.5 * np.sin(2 * np.pi * t / 7)
    path = tmp_path / "sine.txt"
    path.write_text("\n".join(f"{v:.8f}" for v in values) + "\n")
    return path


ESN = ["--model", "esn", "--units", 100, "--spectral-radius", 0.9, "--ridge", 1e-8,
       "--washout", 50, "--input-size", 1, "--quiet", "--device", "cpu"]


def test_an_esn_forecasts_a_sine_one_step_ahead_and_is_a_run(tmp_path):
    data = sine_file(tmp_path)
    out = tmp_path / "esn"
    done = invoke("train-forecast", data, "--horizon", 1, "--val-size", 100, "--out", out,
                  *ESN)
    assert done.exit_code == 0, done.output
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["kind"] == "final" and final["rmse"] < 1e-3  # the amplitude is 1.5
    assert 0 < final["elapsed"] < 60  # the fit's own seconds
    # a later origin reads the series with the scale the readout was fitted with
    report = json.loads(invoke("evaluate-forecast", data, "-c", out / "best.pt", "--json",
                               "--device", "cpu").stdout)
    assert report["scores"]["esn"]["mae"] < 1e-3
    forecast = json.loads(invoke("forecast", data, "-c", out / "best.pt", "--json").stdout)
    assert len(forecast["forecast"]) == 1
    info = json.loads(invoke("info", out / "best.pt", "--json").stdout)
    assert info["model"]["units"] == 100 and info["trained"]["steps"] == 0
    resumed = invoke("train-forecast", data, "--horizon", 1, "--val-size", 100, "--out", out,
                     "--resume", *ESN)
    assert resumed.exit_code == 0, resumed.output
    again = torch.load(out / "best.pt", weights_only=True)["model_state"]["readout"]
    first = torch.load(out / "last.pt", weights_only=True)["model_state"]["readout"]
    assert torch.equal(again, first)


def test_an_esn_runs_free_over_a_horizon(tmp_path):
    data = sine_file(tmp_path, 800)
    out = tmp_path / "free"
    done = invoke("train-forecast", data, "--horizon", 40, "--decoder", "recursive", "--out",
                  out, *ESN)
    assert done.exit_code == 0, done.output
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["nrmse"] < 0.05, final


def test_the_washout_never_reaches_the_readout():
    from seqgen.config import ForecastConfig
    from seqgen.data.series import Series, SeriesSet
    from seqgen.data.windows import prepare, split_series
    from seqgen.models.forecasters import EchoStateForecaster
    from seqgen.tasks.echo_state import accumulate

    values = np.random.default_rng(0).normal(size=200)
    data = SeriesSet([Series("s", values, np.zeros((200, 0)))])
    split = split_series(data, 1, 1, 10, 0)
    prepared = [prepare(data.series[0], 1, "none", None)]
    for washout, expected in ((0, 189), (30, 160), (100, 90)):
        model = EchoStateForecaster(ForecastConfig(horizon=1, input_size=1, model="esn",
                                                   units=20, washout=washout))
        assert accumulate(model, data.series, prepared, split, "none")[0].count == expected
    # the states it does use are the reservoir's after the washout, bit for bit
    model = EchoStateForecaster(ForecastConfig(horizon=1, input_size=1, model="esn", units=20,
                                               washout=100))
    readout, _ = accumulate(model, data.series, prepared, split, "none")
    states = model.reservoir.run(torch.tensor(values[:189], dtype=torch.float32)[None, :, None])
    used = RidgeReadout(20, 1)
    used.add(states[0, 99:189], torch.tensor(values[100:190, None]))
    assert torch.allclose(readout.xtx, used.xtx)


def test_leaky_units_train_as_a_forecaster(tmp_path):
    data = sine_file(tmp_path, 400)
    out = tmp_path / "leaky"
    done = invoke("train-forecast", data, "--model", "leaky", "--leak-rate", 0.5,
                  "--horizon", 4, "--input-size", 24, "--hidden", 16, "--max-steps", 150,
                  "--lr", 1e-2, "--out", out, "--quiet", "--device", "cpu")
    assert done.exit_code == 0, done.output
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["mae"] < 0.3, final
