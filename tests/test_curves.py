"""`seqgen plot`: training curves of one or several runs, as text or as a PNG."""

import json

import pytest
from helpers import assert_user_error, invoke

from seqgen.curves import read_run, text_plot


def write_run(folder, losses, accuracies):
    folder.mkdir()
    rows = [{"kind": "train", "step": 10 * (i + 1), "elapsed": 6.0 * (i + 1), "loss": loss,
             "lr": 1e-3 / (i + 1)} for i, loss in enumerate(losses)]
    rows += [{"kind": "val", "step": 10 * (i + 1), "elapsed": 6.0 * (i + 1), "loss": 1.0,
              "accuracy": a} for i, a in enumerate(accuracies)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_text_plot_puts_each_point_where_its_value_is():
    lines = text_plot([[(0, 1.0), (1, 2.0), (2, 3.0)], [(0, 3.0)]], width=21, height=5)
    grid = [line.split("|", 1)[1] for line in lines[:5]]
    assert grid[4][0] == "*" and grid[2][10] == "*" and grid[0][20] == "*"
    assert grid[0][0] == "o"  # the second series' own mark
    assert lines[0].startswith("3 |") and lines[4].startswith("1 |")
    assert lines[-1].split() == ["0", "2"]


def test_plot_overlays_runs_in_the_terminal(tmp_path):
    a = write_run(tmp_path / "small", [3.0, 2.0, 1.5], [0.5, 0.7])
    b = write_run(tmp_path / "large", [2.5, 1.0, 0.5], [0.6, 0.9])
    result = invoke("plot", a, b / "metrics.jsonl", "--width", 30)
    assert result.exit_code == 0, result.output
    text = result.stdout
    for panel in ("loss against step", "accuracy against step", "learning rate against step"):
        assert panel in text
    assert "* small training" in text and "+ large training" in text
    accuracy = text.split("accuracy against step")[1].split("\n\n")[0].splitlines()
    assert accuracy[1].startswith("0.9 |") and accuracy[1].rstrip().endswith("o")  # large
    timed = invoke("plot", a, "--x", "time")
    assert "loss against minutes" in timed.stdout and "0.3" in timed.stdout  # 18 s


def test_plot_draws_a_png(tmp_path):
    a = write_run(tmp_path / "run", [3.0, 2.0, 1.5], [0.5, 0.7])
    result = invoke("plot", a, "--out", tmp_path / "curves.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_what_is_not_a_run(tmp_path):
    assert_user_error(invoke("plot", tmp_path / "nothing.jsonl"), "file not found")
    assert_user_error(invoke("plot", tmp_path), "no metrics.jsonl there")
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\nnot json\n')
    assert_user_error(invoke("plot", tmp_path), "metrics.jsonl, line 2: not a JSON record")
    assert_user_error(invoke("plot", tmp_path, "--x", "epoch"), "unknown --x 'epoch'")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(Exception, match="no training or validation records"):
        read_run(tmp_path)
