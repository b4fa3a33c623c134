import numpy as np
import pytest
import torch

from seqgen.data.text import StreamBatches, resolve_text_files, split_tokens, tokenize_files
from seqgen.errors import UserError

CHAR = {"level": "char"}


def test_streams_continue_position_by_position():
    tokens = np.arange(1001, dtype=np.uint16)
    batches = StreamBatches(tokens, batch_size=4, bptt=30)
    assert batches.stream_len == 250
    joined_x = torch.cat([x for x, _ in batches.batches()], dim=1)
    joined_y = torch.cat([y for _, y in batches.batches()], dim=1)
    for b in range(4):
        assert joined_x[b].tolist() == list(range(b * 250, b * 250 + 250))
        assert joined_y[b].tolist() == list(range(b * 250 + 1, b * 250 + 251))
    assert [x.shape[1] for x, _ in batches.batches(start=8)] == [10]


def test_the_trainer_carries_the_state_between_batches_and_resets_it_each_epoch(
        tmp_path, tiny_corpus, monkeypatch):
    from seqgen.config import TrainConfig
    from seqgen.tasks import lm as lm_task

    original = lm_task.LMTask.loss
    seen = []  # (carry given, state returned) per training step

    def loss(self, model, batch, carry):
        value, state = original(self, model, batch, carry)
        if model.training:
            seen.append((carry, tuple(s.detach().clone() for s in state)))
        return value, state

    monkeypatch.setattr(lm_task.LMTask, "loss", loss)
    config = TrainConfig(out_dir=str(tmp_path / "run"), batch_size=4, max_steps=20,
                         eval_every=None, quiet=True, device="cpu")
    result = lm_task.train_lm([str(tiny_corpus)], dict(layers=1, hidden=16, embed=8,
                                                       dropout=0.0),
                              lm_task.CorpusOptions(), config, bptt=16)
    per_epoch = (len(tiny_corpus.read_text()) * 95 // 100 - 1) // 4 // 16 + 1
    assert result.step == 20 and 1 < per_epoch < 20
    for step, (carry, _) in enumerate(seen):
        if step % per_epoch == 0:
            assert carry is None  # an epoch starts the streams again
        else:
            previous = seen[step - 1][1]
            assert all(torch.equal(c, p) for c, p in zip(carry, previous))
            assert not any(c.requires_grad for c in carry)  # cut from the last graph


def test_tokenised_corpus_is_a_memmap_and_cached(tmp_path, tiny_corpus):
    first = tokenize_files([tiny_corpus], CHAR, cache_dir=tmp_path / "c")
    assert isinstance(first.tokens, np.memmap) and not first.cached
    assert first.tokens.dtype == np.uint16 and len(first.tokens) == len(tiny_corpus.read_text())
    second = tokenize_files([tiny_corpus], CHAR, cache_dir=tmp_path / "c")
    assert second.cached and np.array_equal(first.tokens, second.tokens)
    # Different settings or different content → a different cache entry.
    third = tokenize_files([tiny_corpus], {"level": "word"}, cache_dir=tmp_path / "c")
    assert not third.cached
    tiny_corpus.write_text("changed text\n", encoding="utf-8")
    fourth = tokenize_files([tiny_corpus], CHAR, cache_dir=tmp_path / "c")
    assert not fourth.cached and len(fourth.tokens) == 13


def test_folder_reads_all_txt_files_sorted(tmp_path):
    (tmp_path / "b.txt").write_text("bbb\n")
    (tmp_path / "a.txt").write_text("aaa\n")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    files = resolve_text_files([tmp_path])
    assert [f.name for f in files] == ["a.txt", "b.txt"]
    corpus = tokenize_files(files, CHAR, cache_dir=tmp_path / "c")
    assert corpus.tokenizer.decode(corpus.tokens) == "aaa\nbbb\n"


def test_bad_inputs_are_user_errors(tmp_path):
    binary = tmp_path / "x.txt"
    binary.write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(UserError, match="binary"):
        tokenize_files([binary], CHAR, cache_dir=tmp_path / "c")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(UserError, match="--encoding"):
        tokenize_files([latin], CHAR, cache_dir=tmp_path / "c")
    assert tokenize_files([latin], CHAR, encoding="latin-1",
                          cache_dir=tmp_path / "c").n_chars == 5
    with pytest.raises(UserError, match="no such file"):
        resolve_text_files([tmp_path / "missing.txt"])
    with pytest.raises(UserError, match="too short"):
        StreamBatches(np.arange(3), batch_size=8, bptt=4)
    with pytest.raises(UserError):
        split_tokens(np.arange(10), 1.5)


def test_a_byte_order_mark_is_not_text(tmp_path):
    from seqgen.data.pairs import read_tsv_pairs
    from seqgen.data.reading import read_lines

    corpus = tmp_path / "bom.txt"
    corpus.write_text("\ufeffhello world\n", encoding="utf-8")
    tokens = tokenize_files([corpus], CHAR, cache_dir=tmp_path / "c")
    assert "\ufeff" not in tokens.tokenizer.itos and tokens.n_chars == len("hello world\n")
    pairs = tmp_path / "bom.tsv"
    pairs.write_text("\ufeffGo.\tVe.\n", encoding="utf-8")
    assert read_tsv_pairs(pairs).pairs == [("Go.", "Ve.")]
    assert read_lines(pairs) == ["Go.\tVe."]


def test_lines_end_at_line_feeds_only(tmp_path):
    from seqgen.data.pairs import read_tsv_pairs
    from seqgen.data.reading import split_lines

    text = "one\u2028still one\tuno\x85 todavía\r\ntwo\x1c\ttwo\x0c\n"
    assert split_lines(text) == ["one\u2028still one\tuno\x85 todavía", "two\x1c\ttwo\x0c"]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(text, encoding="utf-8")
    assert len(read_tsv_pairs(pairs).pairs) == 2  # str.splitlines would cut the first in two


def test_translate_reads_stdin_in_the_given_encoding(tmp_path):
    from helpers import invoke

    from seqgen.cli import translate as translate_cli

    seen = []
    with mock_translator(translate_cli, seen):
        result = invoke("translate", "--encoding", "cp1252", "-c", tmp_path / "x.pt",
                        input="caf\xe9 noir\n".encode("cp1252"))
    assert result.exit_code == 0, result.output
    assert seen == [["café noir"]]


def mock_translator(module, seen):
    """``load_translator`` replaced by one that records what it was asked to translate."""
    from unittest import mock

    class Fake:
        src_tokenizer = mock.Mock(unknown_pieces=lambda s: [])

        def translate(self, sentences, **kwargs):
            seen.append(list(sentences))
            return [[mock.Mock(text=s)] for s in sentences]

    return mock.patch("seqgen.tasks.translate.load_translator", lambda *a: (Fake(), {}))


def test_the_encoders_do_not_import_the_caption_data():
    import subprocess
    import sys

    code = ("import sys, seqgen.models.encoders; "
            "sys.exit('seqgen.data.captions' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
