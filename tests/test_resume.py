"""A run stopped (Ctrl-C, kill -9, a step budget) and resumed with the same command ends with
weights bit-identical to the run that was never stopped: for every task, with dropout on."""

import json
import signal

import pytest
import torch
from helpers import assert_user_error, invoke

from seqgen.checkpoint import load_checkpoint
from seqgen.config import TrainConfig
from seqgen.data.labelled import LabelledData
from seqgen.data.pairs import PairFile
from seqgen.data.synthetic import scenes
from seqgen.tasks import caption as caption_task
from seqgen.tasks import classify as classify_task
from seqgen.tasks import lm as lm_task
from seqgen.tasks import translate as translate_task


class Killed(BaseException):
    """Stands for kill -9: nothing is saved on the way out."""


def lm_run(tmp_path, out, **changes):
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text("\n".join(s.english() for s in scenes(150, 1)) + "\n")
    config = TrainConfig(**{**dict(out_dir=str(out), batch_size=4, max_steps=24, eval_every=8,
                                   log_every=1, quiet=True, warmup_steps=4, lr=5e-3,
                                   device="cpu"), **changes})
    model = dict(cell="lstm", layers=2, hidden=32, embed=16, dropout=0.3)
    return lm_task.train_lm([str(corpus)], model, lm_task.CorpusOptions(), config, bptt=16,
                            resume=(out / "last.pt").exists())


def translate_run(tmp_path, out, **changes):
    pairs = [(s.english(), s.spanish()) for s in scenes(120, 2)]
    config = TrainConfig(**{**dict(out_dir=str(out), batch_size=8, max_steps=24, eval_every=8,
                                   log_every=1, quiet=True, warmup_steps=4, lr=5e-3,
                                   device="cpu", select_metric="bleu"), **changes})
    model = dict(cell="gru", hidden=32, embed=16, dropout=0.3)
    return translate_task.train_translate(
        PairFile(pairs[:100]), PairFile(pairs[100:]), model,
        translate_task.PairOptions(min_freq=1), config, val_bleu_sentences=10,
        teacher_forcing=0.8, resume=(out / "last.pt").exists())


def caption_run(tmp_path, out, **changes):
    folder = tmp_path / "shapes"
    captions = folder / "captions.csv"
    if not captions.exists():
        (folder / "images").mkdir(parents=True)
        lines = ["image,caption"]
        for i, scene in enumerate(scenes(40, 3)):
            scene.render(32).save(folder / "images" / f"{i}.png")
            lines.append(f"{i}.png,{scene.english()}")
        captions.write_text("\n".join(lines) + "\n")
    config = TrainConfig(**{**dict(out_dir=str(out), batch_size=8, max_steps=24, eval_every=8,
                                   log_every=1, quiet=True, warmup_steps=4, lr=5e-3,
                                   device="cpu", select_metric="bleu4"), **changes})
    return caption_task.train_caption(
        captions, None, dict(cell="lstm", hidden=32, embed=16, dropout=0.3),
        caption_task.CaptionDataOptions(min_freq=1, val_fraction=0.2, feature_cache=False),
        caption_task.EncoderOptions("small-cnn", pretrained=False), config,
        resume=(out / "last.pt").exists())


def classify_run(tmp_path, out, **changes):
    texts = [s.english() for s in scenes(160, 4)]
    labels = ["circle" if "circle" in t else "other" for t in texts]
    config = TrainConfig(**{**dict(out_dir=str(out), batch_size=8, max_steps=24, eval_every=8,
                                   log_every=1, quiet=True, warmup_steps=4, lr=5e-3,
                                   device="cpu", select_metric="accuracy"), **changes})
    return classify_task.train_classify(
        LabelledData(texts[:120], labels[:120]), LabelledData(texts[120:], labels[120:]),
        dict(cell="lstm", hidden=16, embed=8, dropout=0.3, pool="attention"),
        classify_task.TextOptions(), config, class_weights="auto",
        resume=(out / "last.pt").exists())


TASKS = {"lm": (lm_run, lm_task.LMTask), "translate": (translate_run,
                                                       translate_task.TranslateTask),
         "caption": (caption_run, caption_task.CaptionTask),
         "classify": (classify_run, classify_task.ClassifyTask)}


def weights(out):
    return load_checkpoint(out / "last.pt")["model_state"]


def assert_same_weights(a, b):
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def rows(out):
    return [(r["kind"], r["step"]) for r in map(json.loads,
                                                (out / "metrics.jsonl").read_text().splitlines())]


def stop_at_call(monkeypatch, task_class, call, action):
    original = task_class.loss
    calls = {"n": 0}

    def loss(self, model, batch, carry):
        calls["n"] += model.training  # training steps only, not validation
        if model.training and calls["n"] == call:
            action()
        return original(self, model, batch, carry)

    monkeypatch.setattr(task_class, "loss", loss)
    return lambda: monkeypatch.setattr(task_class, "loss", original)


@pytest.mark.parametrize("task", list(TASKS))
def test_ctrl_c_and_resume_end_bit_identical(tmp_path, monkeypatch, task):
    run, task_class = TASKS[task]
    run(tmp_path, tmp_path / "straight")
    restore = stop_at_call(monkeypatch, task_class, 11,
                           lambda: signal.raise_signal(signal.SIGINT))
    first = run(tmp_path, tmp_path / "stopped")
    restore()
    assert first.reason == "interrupted" and first.step == 11  # the step it was in finished
    second = run(tmp_path, tmp_path / "stopped")
    assert second.step == 24
    assert_same_weights(tmp_path / "straight", tmp_path / "stopped")


@pytest.mark.parametrize("task", list(TASKS))
def test_kill_and_resume_end_bit_identical_without_duplicate_metrics(tmp_path, monkeypatch,
                                                                     task):
    run, task_class = TASKS[task]
    run(tmp_path, tmp_path / "straight")

    def kill():
        raise Killed

    restore = stop_at_call(monkeypatch, task_class, 23, kill)  # killed during step 23
    with pytest.raises(Killed):
        run(tmp_path, tmp_path / "killed")
    restore()
    saved = load_checkpoint(tmp_path / "killed" / "last.pt")["trainer_state"]["step"]
    assert saved == max(step for kind, step in rows(tmp_path / "straight")
                        if kind == "val" and step < 23)  # the last validation's
    assert max(step for _, step in rows(tmp_path / "killed")) > saved  # logged after it
    run(tmp_path, tmp_path / "killed")
    assert_same_weights(tmp_path / "straight", tmp_path / "killed")
    assert rows(tmp_path / "killed") == rows(tmp_path / "straight")


@pytest.mark.parametrize("task", list(TASKS))
def test_a_step_budget_extended_on_resume_ends_bit_identical(tmp_path, task):
    run, _ = TASKS[task]
    run(tmp_path, tmp_path / "straight", schedule="constant")
    run(tmp_path, tmp_path / "twice", schedule="constant", max_steps=13)
    run(tmp_path, tmp_path / "twice", schedule="constant")
    assert_same_weights(tmp_path / "straight", tmp_path / "twice")


def test_resume_refuses_options_that_change_the_run(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    common = ["--layers", 1, "--hidden", 16, "--embed", 8, "--bptt", 8, "--quiet"]
    done = invoke("train-lm", tiny_corpus, "--out", out, "--max-steps", 4, "--batch-size", 4,
                  *common)
    assert done.exit_code == 0, done.output
    before = (out / "last.pt").read_bytes()
    for option, value in [("--batch-size", 8), ("--val-fraction", 0.2), ("--hidden", 32),
                          ("--bptt", 16), ("--encoding", "latin-1"), ("--level", "word")]:
        args = [a for a in common if a not in (option,)]
        if option in common:
            index = common.index(option)
            args = common[:index] + common[index + 2:]
        result = invoke("train-lm", tiny_corpus, "--out", out, "--resume", "--max-steps", 8,
                        option, value, *args)
        assert_user_error(result, f"{option} {value} differs from the run")
    assert (out / "last.pt").read_bytes() == before
    assert_user_error(invoke("train-lm", tiny_corpus, "--out", out, "--resume", "--overwrite"),
                      "pass one of them")
    assert_user_error(invoke("train-lm", tiny_corpus, "--out", tmp_path / "none", "--resume"),
                      "holds no last.pt")
    other = tmp_path / "other.txt"
    other.write_text(tiny_corpus.read_text() + "more text\n")
    assert_user_error(invoke("train-lm", other, "--out", out, "--resume", "--max-steps", 8),
                      "the corpus differs")
    # The same options (given or left out) continue the run; a budget may extend it.
    # A new --lr applies from the resumed step on.
    result = invoke("train-lm", tiny_corpus, "--out", out, "--resume", "--max-steps", 10,
                    "--lr", "1e-3", "--schedule", "constant", "--warmup", 0, "--quiet")
    assert result.exit_code == 0, result.output
    saved = load_checkpoint(out / "last.pt")
    assert saved["trainer_state"]["step"] == 10 and saved["run"]["hidden"] == 16
    assert saved["train_config"]["batch_size"] == 4
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in logged if r["kind"] == "train" and r["step"] > 4] == [1e-3]


def test_validation_never_changes_how_training_goes(tmp_path):
    # Validating (and sampling previews) at other steps leaves the trained weights the same.
    lm_run(tmp_path, tmp_path / "often", eval_every=3, schedule="constant")
    lm_run(tmp_path, tmp_path / "seldom", eval_every=10, schedule="constant")
    assert_same_weights(tmp_path / "often", tmp_path / "seldom")


def test_resume_drops_a_row_a_kill_cut_off_in_the_middle(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    common = ["--layers", 1, "--hidden", 16, "--embed", 8, "--bptt", 8, "--batch-size", 4,
              "--quiet", "--schedule", "constant"]
    assert invoke("train-lm", tiny_corpus, "--out", out, "--max-steps", 4, *common
                  ).exit_code == 0
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"kind": "train", "step": 5, "lo')  # killed while writing
    curves = invoke("plot", out)  # a run being written can be plotted
    assert curves.exit_code == 0, curves.output
    result = invoke("train-lm", tiny_corpus, "--out", out, "--resume", "--max-steps", 8,
                    *common)
    assert result.exit_code == 0, result.output
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line)["kind"] in ("train", "val", "final") for line in lines)
    assert max(json.loads(line)["step"] for line in lines) == 8


def test_the_weight_average_is_scored_saved_and_resumed_bit_identical(tmp_path, monkeypatch):
    run, task_class = TASKS["classify"]
    run(tmp_path, tmp_path / "straight", ema=0.9)
    restore = stop_at_call(monkeypatch, task_class, 11,
                           lambda: signal.raise_signal(signal.SIGINT))
    run(tmp_path, tmp_path / "stopped", ema=0.9)
    restore()
    run(tmp_path, tmp_path / "stopped", ema=0.9)
    straight, stopped = (load_checkpoint(tmp_path / name / "last.pt")
                         for name in ("straight", "stopped"))
    for key in ("model_state", "trained_state"):
        for name, tensor in straight[key].items():
            assert torch.equal(tensor, stopped[key][name]), (key, name)
    assert not all(torch.equal(v, straight["trained_state"][k])
                   for k, v in straight["model_state"].items())
    # the final validation scored the average, which is what a loaded classifier uses
    final = [r for r in map(json.loads, (tmp_path / "straight" / "metrics.jsonl")
                            .read_text().splitlines()) if r["kind"] == "final"][-1]
    texts = [s.english() for s in scenes(160, 4)][120:]
    gold = [int("circle" not in t) for t in texts]  # classes in name order: circle, other
    classifier, _ = classify_task.load_classifier(tmp_path / "straight" / "last.pt", "cpu")
    classifier.temperature = 1.0
    probs = classifier.probabilities(texts)
    loss = float(torch.nn.functional.nll_loss(probs.log(), torch.tensor(gold)))
    assert loss == pytest.approx(final["loss"], rel=1e-5)


def test_a_classifier_run_of_an_earlier_version_resumes_as_it_was_trained(tmp_path):
    """Runs from before --word-dropout and --members trained one model without word dropout:
    --resume keeps them that way rather than taking today's defaults."""
    texts = [s.english() for s in scenes(60, 4)]
    labels = ["circle" if "circle" in t else "other" for t in texts]

    def run(steps, members):
        config = TrainConfig(out_dir=str(tmp_path / "run"), batch_size=8, max_steps=steps,
                             quiet=True, device="cpu")
        classify_task.train_classify(
            LabelledData(texts[:40], labels[:40]), LabelledData(texts[40:], labels[40:]),
            dict(cell="lstm", hidden=16, embed=8, word_dropout=0.2, members=members),
            classify_task.TextOptions(), config, resume=steps > 4)

    run(4, members=1)
    path = tmp_path / "run" / "last.pt"
    saved = torch.load(path, weights_only=True)
    assert saved["model_config"]["word_dropout"] == 0.2
    for name in ("word_dropout", "members"):  # as it was
        del saved["run"][name], saved["model_config"][name]
    torch.save(saved, path)
    run(8, members=3)
    assert torch.load(path, weights_only=True)["model_config"]["members"] == 1
    assert torch.load(path, weights_only=True)["model_config"]["word_dropout"] == 0.0
