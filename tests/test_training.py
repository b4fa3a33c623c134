import json
import math

import pytest
import torch

from seqgen.checkpoint import load_checkpoint, save_checkpoint
from seqgen.config import TrainConfig
from seqgen.errors import UserError
from seqgen.tasks import lm as lm_task
from seqgen.tasks.lm import CorpusOptions, load_lm, sample_text, train_lm

SMALL = dict(cell="lstm", layers=1, hidden=64, embed=16, dropout=0.0)


def config(tmp_path, **kw):
    base = dict(out_dir=str(tmp_path / "run"), batch_size=4, max_steps=20, eval_every=10,
                log_every=1, quiet=True, warmup_steps=5, lr=1e-2)
    return TrainConfig(**{**base, **kw})


def train_losses(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if json.loads(x)["kind"] == "train"]


def test_tiny_model_overfits_tiny_corpus(tmp_path, tiny_corpus):
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, max_steps=300, eval_every=50, lr=2e-2), bptt=32,
                      val_fraction=0.2)
    assert result.best < 0.1
    model, tokenizer, _ = load_lm(tmp_path / "run" / "best.pt", "cpu")
    prime = "the cat sat on the mat.\nthe dog sat on the "
    text = "".join(sample_text(model, tokenizer, prime, 30, temperature=0))
    assert text.startswith("log.\nthe cat sat on the mat.")


def test_checkpoint_round_trip_gives_the_same_model(tmp_path, tiny_corpus):
    train_lm([str(tiny_corpus)], SMALL, CorpusOptions(), config(tmp_path, max_steps=5))
    model, tokenizer, data = load_lm(tmp_path / "run" / "last.pt", "cpu")
    assert data["task"] == "lm" and data["trainer_state"]["step"] == 5
    path = tmp_path / "copy.pt"
    save_checkpoint(path, {k: v for k, v in data.items() if k != "format_version"})
    again, _, _ = load_lm(path, "cpu")
    x = torch.tensor([tokenizer.encode("the cat")])
    assert torch.equal(model(x)[0], again(x)[0])


def test_resume_continues_steps_and_loss_curve(tmp_path, tiny_corpus, monkeypatch):
    opts = CorpusOptions()
    train_lm([str(tiny_corpus)], SMALL, opts, config(tmp_path / "a"), bptt=16)
    straight = train_losses(tmp_path / "a" / "run")

    original = lm_task.LMTask.loss
    calls = {"n": 0}

    def interrupt_at_step_12(self, model, batch, carry):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return original(self, model, batch, carry)

    monkeypatch.setattr(lm_task.LMTask, "loss", interrupt_at_step_12)
    first = train_lm([str(tiny_corpus)], SMALL, opts, config(tmp_path / "b"), bptt=16)
    assert first.reason == "interrupted" and first.step == 12
    monkeypatch.setattr(lm_task.LMTask, "loss", original)
    with pytest.raises(UserError, match="--resume"):
        train_lm([str(tiny_corpus)], SMALL, opts, config(tmp_path / "b"), bptt=16)
    second = train_lm([str(tiny_corpus)], SMALL, opts, config(tmp_path / "b"), bptt=16,
                      resume=True)
    assert second.step == 20
    resumed = train_losses(tmp_path / "b" / "run")
    assert len(resumed) == 20
    assert resumed == pytest.approx(straight, abs=1e-5)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_corpus, monkeypatch):
    original = lm_task.LMTask.loss
    calls = {"n": 0}

    def nan_after_six(self, model, batch, carry):
        calls["n"] += 1
        loss, n, state = original(self, model, batch, carry)
        return (loss * float("nan") if calls["n"] > 6 else loss), n, state

    monkeypatch.setattr(lm_task.LMTask, "loss", nan_after_six)
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, eval_every=5), bptt=16)
    assert result.reason == "diverged" and result.step == 6
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["trainer_state"]["step"] == 5
    assert all(torch.isfinite(t).all() for t in saved["model_state"].values())


def test_pickled_object_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "task": "lm", "payload": math.fsum}, path)
    with pytest.raises(UserError, match="arbitrary Python objects"):
        load_checkpoint(path)


def test_checkpoint_of_another_task_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"task": "translate"})
    with pytest.raises(UserError, match="translate checkpoint, not a lm"):
        load_checkpoint(path, task="lm")


def test_plateau_schedule_halves_lr_when_validation_stalls(tmp_path, tiny_corpus):
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, schedule="plateau", lr=1e-6, eval_every=2,
                             max_steps=12, warmup_steps=0), bptt=16)
    state = load_checkpoint(result.out_dir / "last.pt")["trainer_state"]
    assert state["plateau_factor"] < 1.0
