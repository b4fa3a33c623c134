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


def test_bad_inputs_exit_2_with_one_line(tmp_path, trained):
    missing = invoke("train-lm", tmp_path / "nope.txt")
    assert_user_error(missing, "no such file")

    binary = tmp_path / "data.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    assert_user_error(invoke("train-lm", binary, "--out", tmp_path / "o1"), "binary")

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_user_error(invoke("train-lm", empty, "--out", tmp_path / "o2"), "empty")

    short = tmp_path / "short.txt"
    short.write_text("hello world\n")
    assert_user_error(invoke("train-lm", short, "--out", tmp_path / "o3", "--batch-size", 64),
                      "too short")

    assert_user_error(invoke("train-lm", short, "--time-budget", "soon"), "duration")
    assert_user_error(invoke("sample", "-c", tmp_path / "none.pt"), "not found")

    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "task": "lm", "f": json.dumps}, evil)
    assert_user_error(invoke("sample", "-c", evil), "refused")

    other = tmp_path / "other.pt"
    data = torch.load(trained / "best.pt", weights_only=True)
    data["task"] = "translate"
    torch.save(data, other)
    assert_user_error(invoke("sample", "-c", other), "translate checkpoint")

    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    assert_user_error(invoke("info", garbage), "not a readable seqgen checkpoint")
    assert_user_error(invoke("sample", "-c", trained / "best.pt", "--top-p", 0), "--top-p")
