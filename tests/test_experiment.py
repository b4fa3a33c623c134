"""The long-lag experiments: each task's answer is right by construction, the gradient norms
show the vanishing gradient, and a run stops when the task is solved."""

import json

import torch
from helpers import invoke

from seqgen.config import ClassifierConfig
from seqgen.data.long_lag import (
    COPY_NOISE,
    COPY_SYMBOLS,
    ORDER_NOISE,
    SPECS,
    LongLagBatches,
    generate,
)
from seqgen.models.classifier import SequenceClassifier
from seqgen.tasks.experiment import gradient_norms


def test_the_adding_answer_is_the_sum_of_one_marked_number_in_each_half():
    inputs, answers = generate("adding", 40, 200, torch.Generator().manual_seed(0))
    values, marks = inputs[..., 0], inputs[..., 1]
    assert inputs.shape == (200, 40, 2) and answers.shape == (200,)
    assert torch.equal(marks.sum(1), torch.full((200,), 2.0))
    assert torch.equal(marks[:, :20].sum(1), torch.ones(200))  # one in the first half
    assert torch.allclose((values * marks).sum(1), answers)
    assert 0 <= float(values.min()) and float(values.max()) < 1


def test_the_copy_answer_is_the_first_symbol_after_noise_and_a_recall_marker():
    tokens, answers = generate("copy", 30, 100, torch.Generator().manual_seed(1))
    assert tokens.shape == (100, 32)
    assert torch.equal(tokens[:, 0] - 1, answers) and int(answers.max()) < COPY_SYMBOLS
    noise = tokens[:, 1:-1]
    assert bool(((noise > COPY_SYMBOLS) & (noise <= COPY_SYMBOLS + COPY_NOISE)).all())
    assert bool((tokens[:, -1] == SPECS["copy"].vocab_size - 1).all())
    assert set(answers.tolist()) == set(range(COPY_SYMBOLS))


def test_the_order_answer_names_the_two_symbols_in_their_order():
    tokens, answers = generate("order", 50, 300, torch.Generator().manual_seed(2))
    x, y = 1 + ORDER_NOISE, 2 + ORDER_NOISE
    for row, answer in zip(tokens, answers):
        places = [t for t in range(50) if row[t] >= x]
        assert len(places) == 2 and 5 <= places[0] < 10 and 25 <= places[1] < 30
        first, second = (int(row[t] == y) for t in places)
        assert answer == 2 * first + second
    assert set(answers.tolist()) == {0, 1, 2, 3}


def test_batches_repeat_for_the_same_seed_epoch_and_place_only():
    data = LongLagBatches("adding", 12, 8, seed=3)
    again = LongLagBatches("adding", 12, 8, seed=3)
    first = list(data.batches(0))
    assert len(first) == len(data) == 100
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again.batches(0)))
    assert torch.equal(list(data.batches(0, start=7))[0][0], first[7][0])  # resume mid-epoch
    assert not torch.equal(first[0][0], next(iter(data.batches(1)))[0])
    assert not torch.equal(first[0][0], first[1][0])
    huge = LongLagBatches("adding", 12, 8, seed=10**15)  # any --seed the trainer accepts
    assert huge.batch(3, 99)[0].shape == (8, 12, 2)


def test_gradient_norms_have_a_value_per_step_and_vanish_for_a_tanh_rnn_at_init():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(1, input_dim=2, cell="rnn", hidden=32,
                                                bidirectional=False, dropout=0.0, pool="last"))
    norms = gradient_norms(model, SPECS["adding"], 40)
    assert len(norms) == 40 and all(n > 0 for n in norms)
    assert norms[0] < 1e-3 * norms[-1]  # 40 steps back, almost nothing arrives
    assert all(a < b for a, b in zip(norms[::5], norms[5::5]))  # it shrinks going back
    torch.manual_seed(0)
    irnn = SequenceClassifier(ClassifierConfig(1, input_dim=2, cell="rnn-relu", hidden=32,
                                               bidirectional=False, dropout=0.0, pool="last",
                                               init="identity"))
    kept = gradient_norms(irnn, SPECS["adding"], 40)
    assert kept[0] > 0.3 * kept[-1]  # an identity recurrence carries it back


def test_an_experiment_stops_when_solved_and_says_so(tmp_path):
    result = invoke("experiment", "copy", "--lag", 4, "--max-steps", 2000, "--eval-every", 20,
                    "--out", tmp_path / "run", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "copy, lag 4, lstm: solved at step" in result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    assert rows[-1]["step"] < 2000 and rows[-1]["accuracy"] >= 0.99
    unsolved = invoke("experiment", "adding", "--lag", 30, "--cell", "rnn", "--max-steps", 3,
                      "--out", tmp_path / "short", "--quiet", "--device", "cpu")
    assert "adding, lag 30, rnn: not solved at step 3" in unsolved.stderr


def test_a_table_of_cells_and_lags_with_gradient_norms(tmp_path):
    result = invoke("experiment", "copy", "--lags", "3,5", "--cells", "lstm,irnn",
                    "--max-steps", 20, "--eval-every", 10, "--grad-norms", "--out", tmp_path,
                    "--plot", tmp_path / "norms.png", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "copy: steps to solve" in result.stdout and "irnn" in result.stdout
    assert "first/last" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "copy-irnn-lag3", "copy-irnn-lag5", "copy-lstm-lag3", "copy-lstm-lag5"]
    assert (tmp_path / "norms.png").stat().st_size > 1000
    listed = invoke("experiment", "copy", "--lags", "3,5", "--cells", "gru", "--max-steps", 5,
                    "--json", "--out", tmp_path / "json", "--quiet", "--device", "cpu")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["row"], r["lag"]) for r in rows] == [("gru", 3), ("gru", 5)]
    assert all(r["steps"] == 5 or r["solved"] for r in rows)


def test_a_fixed_reservoir_and_leaky_units_are_rows_of_the_table(tmp_path):
    """The echo state network's readout is fitted in closed form (no steps) and learns the
    adding problem at a short lag far better than answering 1 (MSE 0.167); leaky units
    train like any cell."""
    result = invoke("experiment", "adding", "--lags", "10", "--cells", "leaky,esn",
                    "--units", 200, "--max-steps", 20, "--hidden", 16, "--out", tmp_path,
                    "--json", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = {r["row"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["esn"]["steps"] == 0 and rows["esn"]["value"] < 0.08
    assert rows["leaky"]["steps"] == 20 and rows["leaky"]["metric"] == "mse"
    assert (tmp_path / "adding-esn-lag10" / "best.pt").exists()
