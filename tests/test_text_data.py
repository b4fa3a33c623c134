import numpy as np
import pytest
import torch

from seqgen.config import LMConfig
from seqgen.data.text import StreamBatches, resolve_text_files, split_tokens, tokenize_files
from seqgen.errors import UserError
from seqgen.models.lm import RNNLanguageModel
from seqgen.models.recurrent import detach_state

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


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_carried_state_equals_one_long_forward(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(LMConfig(vocab_size=20, cell=cell, embed=8, hidden=16, layers=2,
                                      dropout=0.0)).eval()
    tokens = np.random.default_rng(0).integers(0, 20, size=4 * 61 + 1).astype(np.uint16)
    batches = StreamBatches(tokens, batch_size=4, bptt=16)
    with torch.no_grad():
        state, pieces = None, []
        for x, _ in batches.batches():
            logits, state = model(x, state)
            state = detach_state(state)
            pieces.append(logits)
        whole = torch.cat([x for x, _ in batches.batches()], dim=1)
        full, _ = model(whole)
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_tokenised_corpus_is_a_memmap_and_cached(tmp_path, shakespeare_slice):
    first = tokenize_files([shakespeare_slice], CHAR, cache_dir=tmp_path / "c")
    assert isinstance(first.tokens, np.memmap) and not first.cached
    assert first.tokens.dtype == np.uint16 and len(first.tokens) == 20000
    second = tokenize_files([shakespeare_slice], CHAR, cache_dir=tmp_path / "c")
    assert second.cached and np.array_equal(first.tokens, second.tokens)
    # Different settings or different content → a different cache entry.
    third = tokenize_files([shakespeare_slice], {"level": "word"}, cache_dir=tmp_path / "c")
    assert not third.cached
    shakespeare_slice.write_text("changed text\n", encoding="utf-8")
    fourth = tokenize_files([shakespeare_slice], CHAR, cache_dir=tmp_path / "c")
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
