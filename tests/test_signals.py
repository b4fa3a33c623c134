"""Time-series classification: the UCR .ts reader (comments, headers, several channels,
unequal lengths, bad rows named by file and line), the CSV layout, and classifiers (trained,
and an echo state network) that tell two generated signal shapes apart exactly, through
train-classify, classify and evaluate-classify."""

import json

import numpy as np
import pytest
from helpers import SHARED_DATA, assert_user_error, invoke

from seqgen.data.signals import is_signal_file, prepare_signals, read_signal_csv, read_ts
from seqgen.errors import UserError

TS_HEADER = ("# a comment\n#another\n@problemName Toy\n@timeStamps false\n"
             "@classLabel true a b\n@data\n")


def test_the_ts_reader(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(TS_HEADER + "1,2,3:a\n\n4,5:b\n6,?,8,9:a\n")
    data = read_ts(path)
    assert data.labels == ["a", "b", "a"] and [len(s) for s in data.series] == [3, 2, 4]
    assert np.isnan(data.series[2][1, 0])
    assert prepare_signals(data, znormalise=False)[2][:, 0].tolist() == [6, 7, 8, 9]
    multi = tmp_path / "multi.ts"
    multi.write_text(TS_HEADER + "1,2,3:4,5,6:a\n7,8:9,10:b\n")
    both = read_ts(multi)
    assert both.channels == 2 and both.series[0].tolist() == [[1, 4], [2, 5], [3, 6]]
    z = prepare_signals(both, znormalise=True)[0]
    assert np.allclose(z.mean(0), 0) and np.allclose(z.std(0), 1)


@pytest.mark.parametrize("body,message", [
    ("1,2,3\n", "line 7: no ':label'"),
    ("1,2,x:a\n", "line 7: 'x' is not a number"),
    ("1,2:c\n", "line 7: label 'c' is not one of the @classLabel labels (a b)"),
    ("1,2:3,4:a\n1,2:b\n", "line 8: 1 channels where the series before have 2"),
    ("1,2:3:a\n", "line 7: the channels of one series differ in length"),
])
def test_bad_ts_rows_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.ts"
    path.write_text(TS_HEADER + body)
    with pytest.raises(UserError) as caught:
        read_ts(path)
    assert message in str(caught.value) and "bad.ts" in str(caught.value)


def test_a_csv_of_series_a_row(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("label,t1,t2,t3\nup,1,2,3\ndown,3,2,\n")
    data = read_signal_csv(path)
    assert data.labels == ["up", "down"] and [len(s) for s in data.series] == [3, 2]
    bare = tmp_path / "bare.csv"
    bare.write_text("up,1,2,3\ndown,3,2,1\n")
    assert read_signal_csv(bare).labels == ["up", "down"]
    assert is_signal_file(path) and is_signal_file(bare)
    text = tmp_path / "text.csv"
    text.write_text("label,text\npos,a fine film\nneg,a dull one\n")
    assert not is_signal_file(text)


def shapes_file(path, n=40, length=30, seed=0):
    """Sines and square waves of random phase and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    lines = []
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * t / 10 + phase)
        label = "sine"
        if i % 2:
            wave, label = np.sign(wave), "square"
        wave = wave + rng.normal(0, 0.05, length)
        lines.append(",".join(f"{v:.4f}" for v in wave) + f":{label}")
    path.write_text("@problemName Shapes\n@classLabel true sine square\n@data\n"
                    + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("model", [["--hidden", 16, "--fcn", 8, "--max-steps", 150],
                                   ["--model", "esn", "--units", 100]])
def test_a_series_classifier_tells_two_shapes_apart(tmp_path, model):
    train, test = shapes_file(tmp_path / "train.ts"), shapes_file(tmp_path / "test.ts", seed=1)
    out = tmp_path / "run"
    done = invoke("train-classify", train, "--out", out, "--lr", 1e-2, "--quiet", "--device",
                  "cpu", *model)
    assert done.exit_code == 0, done.output
    report = json.loads(invoke("evaluate-classify", test, "-c", out / "best.pt", "--json",
                               "--device", "cpu").stdout)
    assert report["accuracy"] == 1.0 and report["examples"] == 40
    labels = invoke("classify", "--input", test, "-c", out / "best.pt", "--device", "cpu")
    assert labels.exit_code == 0
    assert [line.split("\t")[0] for line in labels.stdout.splitlines()[:2]] == ["sine",
                                                                                "square"]
    assert "classes" in invoke("info", out / "best.pt").stdout
    assert_user_error(invoke("classify", "a text", "-c", out / "best.pt"),
                      "a series classifier reads series")


def test_the_ucr_files_read(tmp_path):
    if not SHARED_DATA.exists():
        pytest.skip("no ../shared/data here")
    italy = read_ts(SHARED_DATA / "ucr" / "ItalyPowerDemand_TRAIN.ts")
    assert len(italy) == 67 and {len(s) for s in italy.series} == {24}
    gun = read_ts(SHARED_DATA / "ucr" / "GunPoint_TEST.ts")
    assert len(gun) == 150 and set(gun.labels) == {"1", "2"}


def test_a_series_classifier_without_a_budget_trains_its_own_steps_and_keeps_the_lowest_loss(
        tmp_path, monkeypatch):
    """Ten epochs of a UCR-sized set are a few dozen steps: without --epochs, --max-steps or
    --time-budget a series classifier trains SIGNAL_STEPS, and best.pt follows the loss."""
    import torch

    monkeypatch.setattr("seqgen.tasks.signals.SIGNAL_STEPS", 24)
    out = tmp_path / "run"
    done = invoke("train-classify", shapes_file(tmp_path / "train.ts"), "--out", out,
                  "--quiet", "--device", "cpu", "--hidden", 8, "--fcn", 0)
    assert done.exit_code == 0, done.output
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["train_config"]["max_steps"] == 24
    assert saved["train_config"]["select_metric"] == "loss"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 24


def test_word_dropout_is_refused_for_series(tmp_path):
    done = invoke("train-classify", shapes_file(tmp_path / "train.ts"), "--out",
                  tmp_path / "run", "--word-dropout", 0.2, "--max-steps", 2)
    assert_user_error(done, "--word-dropout hides words of texts")
    assert not (tmp_path / "run").exists()
