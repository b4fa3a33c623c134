import json
import math
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from seqgen.checkpoint import load_checkpoint, save_checkpoint
from seqgen.config import LMConfig, TrainConfig
from seqgen.errors import UserError
from seqgen.files import temporaries
from seqgen.progress import ProgressReporter
from seqgen.tasks import lm as lm_task
from seqgen.tasks.lm import CorpusOptions, LMTask, load_lm, prepare_lm_data, sample_text, train_lm
from seqgen.training import Trainer

SMALL = dict(cell="lstm", layers=1, hidden=64, embed=16, dropout=0.0)


def config(tmp_path, **kw):
    base = dict(out_dir=str(tmp_path / "run"), batch_size=4, max_steps=20, eval_every=10,
                log_every=1, quiet=True, warmup_steps=5, lr=1e-2)
    return TrainConfig(**{**base, **kw})


def rows(out_dir, kind="train"):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if json.loads(x)["kind"] == kind]


def test_tiny_model_overfits_tiny_corpus(tmp_path, tiny_corpus):
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, max_steps=300, eval_every=50, lr=2e-2), bptt=32,
                      val_fraction=0.2)
    assert result.best < 0.1
    model, tokenizer, _ = load_lm(tmp_path / "run" / "best.pt", "cpu")
    prime = "the cat sat on the mat.\nthe dog sat on the "
    text = "".join(sample_text(model, tokenizer, prime, 30, temperature=0))
    assert text.startswith("log.\nthe cat sat on the mat.")


def test_saved_checkpoint_gives_back_the_trained_model(tmp_path, tiny_corpus):
    # Tied weights with a projection and dropout: everything the model holds must survive.
    options = dict(cell="lstm", layers=2, hidden=48, embed=16, dropout=0.3, tie_weights=True)
    data = prepare_lm_data([str(tiny_corpus)], CorpusOptions(), 4, 16)
    torch.manual_seed(0)
    model = lm_task.RNNLanguageModel(LMConfig(vocab_size=data.tokenizer.vocab_size, **options))
    meta = {"task": "lm", "model_config": {"vocab_size": data.tokenizer.vocab_size, **options},
            "tokenizer": data.tokenizer.to_dict(), "data": {"bptt": 16}}
    trainer = Trainer(model, LMTask(data.tokenizer), data.train, data.val,
                      config(tmp_path, max_steps=15), meta, ProgressReporter(quiet=True))
    trainer.fit()
    loaded, tokenizer, saved = load_lm(tmp_path / "run" / "last.pt", "cpu")
    assert saved["trainer_state"]["step"] == 15
    x = torch.tensor([tokenizer.encode("the dog sat")])
    trainer.model.eval()
    assert torch.equal(trainer.model(x)[0], loaded(x)[0])
    assert loaded.decoder.weight is loaded.embedding.weight


def test_plateau_halves_the_lr_after_patience_and_stops_at_the_floor(tmp_path, tiny_corpus):
    # An lr too small to improve anything: every validation after the first is a bad one.
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, schedule="plateau", lr=1e-9, eval_every=2,
                             max_steps=14, warmup_steps=0, plateau_patience=2,
                             min_lr_ratio=0.3), bptt=16)
    state = load_checkpoint(result.out_dir / "last.pt")["trainer_state"]
    # 7 validations: 6 bad ones; halved after the 2nd (0.5) and 4th (0.25 → floor 0.3).
    assert state["bad_evals"] == 6
    assert state["plateau_factor"] == pytest.approx(0.3)
    lrs = {r["step"]: r["lr"] for r in rows(result.out_dir)}
    assert lrs[5] == pytest.approx(1e-9)  # two bad validations (steps 4 and 6) come later
    assert lrs[7] == pytest.approx(0.5e-9)
    assert lrs[14] == pytest.approx(0.3e-9)


def nan_loss_at(steps):
    """Patch the language model's loss to be NaN at the given (1-based) calls."""
    original = lm_task.LMTask.loss
    calls = {"n": 0}

    def loss(self, model, batch, carry):
        calls["n"] += 1
        value, state = original(self, model, batch, carry)
        return (value * float("nan") if calls["n"] in steps else value), state

    return loss


def test_a_non_finite_step_is_skipped_and_counted(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.setattr(lm_task.LMTask, "loss", nan_loss_at({7}))
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, clip=0.0), bptt=16)  # no clipping to hide behind
    assert result.reason == "budget" and result.step == 20 and result.skipped_steps == 1
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["trainer_state"]["skipped_steps"] == 1
    assert all(torch.isfinite(t).all() for t in saved["model_state"].values())


def test_non_finite_steps_in_a_row_stop_and_keep_the_last_good_checkpoint(tmp_path,
                                                                          tiny_corpus,
                                                                          monkeypatch):
    monkeypatch.setattr(lm_task.LMTask, "loss", nan_loss_at(set(range(11, 100))))
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, clip=0.0, max_bad_steps=3), bptt=16)
    assert result.reason == "diverged" and result.step == 13
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["trainer_state"]["step"] == 10  # the validation before it went wrong
    assert all(torch.isfinite(t).all() for t in saved["model_state"].values())


def test_a_nan_validation_is_never_the_best(tmp_path, tiny_corpus, monkeypatch):
    original = lm_task.LMTask.evaluate
    calls = {"n": 0}

    def nan_first(self, model, data, final=False):
        calls["n"] += 1
        metrics = original(self, model, data, final)
        return {**metrics, "loss": math.nan} if calls["n"] == 1 else metrics

    monkeypatch.setattr(lm_task.LMTask, "evaluate", nan_first)
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(), config(tmp_path), bptt=16)
    state = load_checkpoint(result.out_dir / "best.pt")["trainer_state"]
    assert state["best_step"] == 20 and math.isfinite(state["best"])
    assert rows(result.out_dir, "val")[0]["loss"] is None  # strict JSON: NaN written as null


@pytest.mark.parametrize("lr", [math.nan, math.inf, 0.0, -1e-3])
def test_a_learning_rate_that_is_not_a_positive_number_is_refused(tmp_path, lr):
    with pytest.raises(UserError, match="--lr"):
        config(tmp_path, lr=lr)


def test_the_last_validation_reads_all_the_text_and_matches_evaluate_lm(tmp_path,
                                                                        tiny_corpus,
                                                                        monkeypatch):
    monkeypatch.setattr(lm_task, "VAL_TOKENS", 50)  # a subset during training
    val = tmp_path / "val.txt"
    val.write_text("the dog sat on the mat.\nthe cat sat on the log.\n" * 6, encoding="utf-8")
    result = train_lm([str(tiny_corpus)], {**SMALL, "dropout": 0.2}, CorpusOptions(),
                      config(tmp_path), bptt=16, val_file=str(val))
    final = rows(result.out_dir, "final")[-1]
    during = rows(result.out_dir, "val")[-1]
    assert final["step"] == during["step"] == 20 and final["loss"] != during["loss"]
    scored = lm_task.evaluate_lm(result.out_dir / "last.pt", [str(val)], device="cpu")
    assert scored["tokens"] == len(val.read_text()) - 1
    for key in ("loss", "bpc"):
        assert scored[key] == pytest.approx(final[key], abs=1e-3)


def test_the_language_model_starts_from_the_initialisation_the_benchmark_chose():
    """A small embedding and a forget-gate bias of 1 cost a 10-minute CPU run 0.36 nats/char
    against a bare loop (README: the LM sweep); a tied embedding is the output layer too."""
    from seqgen.models.lm import RNNLanguageModel

    torch.manual_seed(0)
    untied = RNNLanguageModel(LMConfig(vocab_size=50, hidden=64, embed=32))
    tied = RNNLanguageModel(LMConfig(vocab_size=50, hidden=64, embed=32, tie_weights=True))
    assert 0.8 < float(untied.embedding.weight.detach().std()) < 1.2
    assert float(tied.embedding.weight.detach().abs().max()) <= 0.1
    forget = untied.rnn.bias_ih_l0.detach()[64:128]
    assert float(forget.abs().max()) <= 1 / 64 ** 0.5  # PyTorch's U(-1/sqrt(h), 1/sqrt(h))
    assert float(untied.rnn.bias_hh_l0.detach().abs().max()) > 0


def test_validation_during_training_reads_runs_spread_over_the_text(monkeypatch):
    read = []
    monkeypatch.setattr(lm_task, "score_streams", lambda model, runs: read.append(runs) or (1, 1))
    task, text = LMTask(tokenizer=None, val_tokens=100), np.arange(1001)
    task.evaluate(None, text)
    task.evaluate(None, text, final=True)
    during, final = read
    assert [int(r[0]) for r in during] == [0, 250, 500, 750]
    assert sum(len(r) - 1 for r in during) == 100
    assert len(final) == 1 and len(final[0]) == 1001
    assert len(lm_task.spread_sample(np.arange(50), 100, 4)) == 1


def test_checkpoints_get_the_users_permissions_and_no_temporary_is_left(tmp_path):
    path = tmp_path / "ckpt.pt"
    stale = tmp_path / ".ckpt.pt.abc123.tmp"  # what a save killed half-way leaves
    stale.write_bytes(b"half")
    # A writer that no longer runs left this one; a live writer's is left alone (two torchrun
    # processes filling the same cache entry).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    killed = tmp_path / f".ckpt.pt.{dead}-x1.tmp"
    killed.write_bytes(b"half")
    busy = tmp_path / f".ckpt.pt.{os.getppid()}-x2.tmp"
    busy.write_bytes(b"being written")
    old = os.umask(0o027)
    try:
        save_checkpoint(path, {"task": "lm"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert temporaries(path) == [busy]
    assert load_checkpoint(path)["task"] == "lm"


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


def test_library_and_cli_defaults_are_one(tmp_path):
    from typer.main import get_command

    from seqgen.cli import app
    from seqgen.config import (
        CAPTION_TRAINING,
        LM_BPTT,
        LM_TRAINING,
        TRANSLATE_TRAINING,
        CaptionConfig,
        Seq2SeqConfig,
    )

    commands = get_command(app).commands
    checks = {"train-lm": (LM_TRAINING, LMConfig), "train-translate": (TRANSLATE_TRAINING,
                                                                       Seq2SeqConfig),
              "train-caption": (CAPTION_TRAINING, CaptionConfig)}
    fields = {"lr": "lr", "batch_size": "batch_size", "weight_decay": "weight_decay",
              "warmup": "warmup_steps", "clip": "clip", "eval_every": "eval_every"}
    for name, (preset, model) in checks.items():
        defaults = {p.name: p.default for p in commands[name].params}
        for param, field in fields.items():
            assert defaults[param] == getattr(preset, field), (name, param)
        for param in ("layers", "hidden", "embed", "dropout", "cell"):
            assert defaults[param] == getattr(model, param), (name, param)
        assert str(defaults["out_dir"]) == preset.out_dir
    assert {p.name: p.default for p in commands["train-lm"].params}["bptt"] == LM_BPTT
    with pytest.raises(UserError, match="--init identity"):
        LMConfig(vocab_size=10, cell="lstm", init="identity")


def test_without_eval_every_validation_takes_its_share_of_the_time(tmp_path, tiny_corpus,
                                                                   monkeypatch):
    original = lm_task.LMTask.evaluate

    def slow(self, model, data, final=False):  # a validation that costs 0.1 s
        time.sleep(0.1)
        return original(self, model, data, final)

    monkeypatch.setattr(lm_task.LMTask, "evaluate", slow)
    monkeypatch.setattr(lm_task.LMTask, "preview", lambda self, model: [])
    result = train_lm([str(tiny_corpus)], SMALL, CorpusOptions(),
                      config(tmp_path, max_steps=None, time_budget=3.0, eval_every=None,
                             eval_share=0.1), bptt=16)
    validations = rows(result.out_dir, "val")
    # The first after a tenth of the budget, then one per second of training (0.1 s / 10%),
    # and one when the budget ends: about 4, never one per epoch (there are dozens).
    assert 3 <= len(validations) <= 6
    assert result.step > 30 * len(validations)


def test_the_schedule_follows_training_time_not_validation_time(tmp_path, tiny_corpus):
    data = prepare_lm_data([str(tiny_corpus)], CorpusOptions(), 4, 16)
    model = lm_task.RNNLanguageModel(LMConfig(vocab_size=data.tokenizer.vocab_size, **SMALL))
    trainer = Trainer(model, LMTask(data.tokenizer), data.train, data.val,
                      config(tmp_path, max_steps=None, time_budget=100.0, eval_share=0.04),
                      {"task": "lm"}, ProgressReporter(quiet=True))
    trainer.state.train_time, trainer.state.elapsed = 48.0, 80.0  # 32 s spent validating
    assert trainer.progress() == pytest.approx(48.0 / 96.0)


def test_a_gpu_gets_a_larger_language_model_only_when_no_size_was_given():
    from seqgen.config import LM_GPU_LR
    from seqgen.tasks.lm import gpu_sizes

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert gpu_sizes(cuda, {"lr", "time_budget"})["hidden"] == 1024
    assert "lr" not in gpu_sizes(cuda, {"lr"}) and gpu_sizes(cuda, set())["lr"] == LM_GPU_LR
    assert gpu_sizes(cuda, {"hidden"}) == {} and gpu_sizes(cuda, {"batch_size"}) == {}
    assert gpu_sizes(cpu, set()) == {} and gpu_sizes(cuda, None) == {}
    assert gpu_sizes(cuda, set(), resume=True) == {}
