"""Lower precision never reaches the recurrence: every recurrent layer, its state and the
state carried between batches stay float32 (but for oneDNN's bf16 LSTM on the CPU, whose
state is made float32 again), and a model trained in bf16 or fp16 learns like one trained in
float32. (A CPU sees the mechanism; the GPU figures come from scripts/gpu_check.py.)"""

import json

import pytest
import torch
from torch import nn

from seqgen.config import CaptionConfig, LMConfig, Seq2SeqConfig, TrainConfig
from seqgen.errors import UserError
from seqgen.models.captioner import ShowAndTell
from seqgen.models.lm import RNNLanguageModel
from seqgen.models.seq2seq import Seq2Seq
from seqgen.precision import Precision, cpu_has_bf16
from seqgen.tasks.lm import CorpusOptions, train_lm


def record_fused_calls(monkeypatch) -> list[tuple[bool, torch.dtype, torch.dtype]]:
    """Per fused call: (autocast on?, input dtype, output dtype)."""
    seen = []
    for base in (nn.LSTM, nn.GRU):
        original = base.forward

        def forward(self, input, hx=None, _original=original):
            data = input.data if hasattr(input, "batch_sizes") else input
            out = _original(self, input, hx)
            done = out[0].data if hasattr(out[0], "batch_sizes") else out[0]
            seen.append((torch.is_autocast_enabled("cpu"), data.dtype, done.dtype))
            return out

        monkeypatch.setattr(base, "forward", forward)
    return seen


def run_every_model(cell: str, dtype: torch.dtype) -> tuple[torch.Tensor, tuple]:
    """The LM, the translator (7 decoder steps) and the captioner, under CPU autocast."""
    torch.manual_seed(0)
    lm = RNNLanguageModel(LMConfig(vocab_size=20, cell=cell, embed=8, hidden=16, layers=2))
    seq2seq = Seq2Seq(Seq2SeqConfig(src_vocab=20, tgt_vocab=20, cell=cell, embed=8, hidden=16,
                                    input_feeding=True))
    captioner = ShowAndTell(CaptionConfig(vocab_size=20, feature_dim=12, cell=cell, embed=8,
                                          hidden=16))
    tokens = torch.randint(4, 20, (3, 7))
    with torch.autocast("cpu", dtype=dtype):
        logits, state = lm(tokens)
        seq2seq(tokens, torch.tensor([7, 5, 3]), tokens)
        captioner(torch.randn(3, 12), tokens)
    return logits, state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize(("cell", "dtype"), [("gru", torch.bfloat16), ("gru", torch.float16),
                                             ("lstm", torch.float16)])
def test_every_recurrent_layer_runs_in_float32_under_autocast(cell, dtype, monkeypatch):
    seen = record_fused_calls(monkeypatch)
    logits, states = run_every_model(cell, dtype)
    assert logits.dtype == dtype  # the layers around the recurrence are lowered
    assert all(s.dtype == torch.float32 for s in states)
    assert len(seen) >= 3 + 7  # the LM, the encoder and 7 decoder steps, the captioner
    assert all(call == (False, torch.float32, torch.float32) for call in seen)


@pytest.mark.skipif(not cpu_has_bf16(), reason="oneDNN builds a bf16 LSTM only on a CPU "
                    "with bfloat16 instructions")
def test_a_cpu_lstm_under_bf16_runs_onednn_bf16_and_returns_float32_state(monkeypatch):
    seen = record_fused_calls(monkeypatch)
    _, states = run_every_model("lstm", torch.bfloat16)
    assert all(s.dtype == torch.float32 for s in states)  # carried between batches
    lowered = [call for call in seen if call[0]]
    kept = [call for call in seen if not call[0]]
    # the LM, the captioner and 7 decoder steps in bf16; the encoder's variable-length batch
    # (each length on its own in training, packed otherwise) in float32
    assert len(lowered) >= 2 + 7 and len(kept) == 3
    assert all(call[2] == torch.bfloat16 for call in lowered)
    assert all(call[1:] == (torch.float32, torch.float32) for call in kept)


def test_a_cpu_lstm_under_bf16_stays_float32_without_bfloat16_instructions(monkeypatch):
    # oneDNN refuses to build a bf16 LSTM there: "could not create a primitive descriptor".
    monkeypatch.setattr("seqgen.models.recurrent.cpu_has_bf16", lambda: False)
    seen = record_fused_calls(monkeypatch)
    logits, states = run_every_model("lstm", torch.bfloat16)
    assert logits.dtype == torch.bfloat16
    assert all(s.dtype == torch.float32 for s in states)
    assert len(seen) >= 3 + 7
    assert all(call == (False, torch.float32, torch.float32) for call in seen)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_in_lower_precision_learns_like_float32(tmp_path, tiny_corpus, precision):
    def run(name):
        config = TrainConfig(out_dir=str(tmp_path / name), batch_size=4, max_steps=148,
                             eval_every=74, quiet=True, lr=2e-2, warmup_steps=10,
                             device="cpu", precision=name)
        model = dict(cell="lstm", layers=1, hidden=64, embed=16, dropout=0.1)
        train_lm([str(tiny_corpus)], model, CorpusOptions(), config, bptt=16)
        final = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text()
                 .splitlines() if '"final"' in x][-1]
        carry = torch.load(tmp_path / name / "last.pt", weights_only=True)[
            "trainer_state"]["ranks"][0]["carry"]
        return final["loss"], carry

    reference, _ = run("fp32")
    lowered, carry = run(precision)
    assert reference < 1.0  # it learned
    assert abs(lowered - reference) < 0.15
    assert all(t.dtype == torch.float32 for t in carry)


def test_precision_names_and_devices_are_checked():
    cpu = torch.device("cpu")
    assert Precision.resolve("auto", cpu).name == "fp32"
    assert Precision.resolve("bf16", cpu).dtype == torch.bfloat16
    assert Precision.resolve("fp16", cpu).scaler() is not None
    assert Precision.resolve("fp32", cpu).scaler() is None
    with pytest.raises(UserError, match="--precision"):
        Precision.resolve("fp8", cpu)
    with pytest.raises(UserError, match="fp32"):
        Precision.resolve("bf16", torch.device("mps"))


@pytest.mark.parametrize(("has_bf16", "explicit", "trained_in"), [
    (True, set(), "bf16"), (True, {"precision"}, "auto"), (False, set(), "auto")])
def test_train_lm_takes_bf16_on_a_cpu_that_has_it_unless_a_precision_is_given(
        tmp_path, tiny_corpus, monkeypatch, has_bf16, explicit, trained_in):
    monkeypatch.setattr("seqgen.tasks.lm.cpu_has_bf16", lambda: has_bf16)
    config = TrainConfig(out_dir=str(tmp_path / "run"), batch_size=4, max_steps=3,
                         quiet=True, device="cpu")
    train_lm([str(tiny_corpus)], dict(layers=1, hidden=16, embed=8), CorpusOptions(), config,
             bptt=8, explicit=explicit)
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["train_config"]["precision"] == trained_in
