import json

import pytest
import torch
from helpers import assert_user_error, invoke

from seqgen.data.synthetic import scenes

TINY_MODEL = ["--layers", "1", "--hidden", "32", "--embed", "8", "--batch-size", "4",
              "--bptt", "16", "--quiet"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "shapes.txt"
    path.write_text("\n".join(s.english().upper() for s in scenes(600, 5)) + "\n")
    return path


@pytest.fixture
def trained(tmp_path, corpus):
    out = tmp_path / "lm"
    result = invoke("train-lm", corpus, "--out", out, "--max-steps", 30, "--eval-every", 15,
                    *TINY_MODEL)
    assert result.exit_code == 0, result.output
    return out


def test_train_sample_evaluate_info_end_to_end(trained, corpus):
    assert {p.name for p in trained.iterdir()} >= {"best.pt", "last.pt", "metrics.jsonl"}
    ckpt = trained / "best.pt"
    result = invoke("sample", "-c", ckpt, "--prime", "A RED", "--length", 50, "--seed", 3,
                    "--temp", 0.8)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("A RED") and len(result.stdout) >= 50
    again = invoke("sample", "-c", ckpt, "--prime", "A RED", "--length", 50, "--seed", 3,
                   "--temp", 0.8)
    assert again.stdout == result.stdout

    many = invoke("sample", "-c", ckpt, "--length", 20, "-n", 3, "--top-k", 5, "--seed", 1)
    assert many.exit_code == 0 and many.stdout.count("--- sample") == 3

    result = invoke("evaluate-lm", corpus, "-c", ckpt, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["loss"] > 0 and metrics["ppl"] == pytest.approx(2.718281828 ** metrics["loss"])
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / 0.693147, rel=1e-3)

    result = invoke("info", ckpt)
    assert result.exit_code == 0 and "lm" in result.stdout and "char, " in result.stdout


def test_unseen_prime_character_warns_and_still_samples(trained):
    result = invoke("sample", "-c", trained / "best.pt", "--prime", "A RED😀", "--length", 10)
    assert result.exit_code == 0
    assert "never saw" in result.stderr and result.stdout.startswith("A RED😀")


def test_training_again_into_a_used_folder_is_refused(trained, corpus):
    before = (trained / "best.pt").read_bytes()
    result = invoke("train-lm", corpus, "--out", trained, "--max-steps", 2,
                    *TINY_MODEL)
    assert_user_error(result, "--resume")
    assert (trained / "best.pt").read_bytes() == before


def test_resume_through_the_cli_continues(trained, corpus):
    result = invoke("train-lm", corpus, "--out", trained, "--max-steps", 40,
                    "--resume", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    state = torch.load(trained / "last.pt", weights_only=True)["trainer_state"]
    assert state["step"] == 40


@pytest.mark.parametrize("level", ["word", "subword"])
def test_word_and_subword_levels_train_and_sample(tmp_path, level):
    corpus = tmp_path / "shapes.txt"
    corpus.write_text("\n".join(s.english() for s in scenes(400)) + "\n")
    out = tmp_path / level
    result = invoke("train-lm", corpus, "--level", level, "--vocab-size", 60, "--out", out,
                    "--max-steps", 10, *TINY_MODEL)
    assert result.exit_code == 0, result.output
    result = invoke("sample", "-c", out / "best.pt", "--prime", "a red", "--length", 10)
    assert result.exit_code == 0 and result.stdout.startswith("a red")


def test_version_and_info_json_say_what_a_checkpoint_is(trained, corpus):
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout.startswith("seqgen ")
    result = invoke("info", trained / "best.pt", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["task"] == "lm" and info["data"][0] == str(corpus.resolve())
    assert info["best"]["step"] in (15, 30) and "loss" in info["best"]
    assert info["trained"]["steps"] == 30 and info["final_validation"]["step"] == 30
    assert info["device"].startswith("cpu") and "train-lm" in info["command"]
    table = invoke("info", trained / "best.pt")
    assert "best validation" in table.stdout and "trained on" in table.stdout


def test_piped_training_prints_plain_progress_lines_without_wrapping(tmp_path, corpus):
    long_out = tmp_path / ("a-folder-with-a-long-name-" * 4) / "run"
    result = invoke("train-lm", corpus, "--out", long_out, "--max-steps", 20, "--eval-every",
                    10, "--layers", 1, "--hidden", 16, "--embed", 8, "--batch-size", 4,
                    "--bptt", 8)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert any(line.startswith("step 10 | epoch") for line in lines)  # not a terminal: plain
    assert not any(line.startswith("step 20 |") for line in lines)  # ...and seconds apart
    assert any(str(long_out) in line and line.startswith("stopped") for line in lines)


def test_an_unwritable_cache_folder_is_one_warning_and_training_goes_on(tmp_path, corpus):
    result = invoke("train-lm", corpus, "--out", tmp_path / "run", "--max-steps", 2,
                    "--cache-dir", "/sys/seqgen-cache", *TINY_MODEL)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "not writable" in warnings[0]
