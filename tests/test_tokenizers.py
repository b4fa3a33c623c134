import pytest

from seqgen.tokenizers import (
    UNK_ID,
    CharTokenizer,
    build_tokenizer,
    join_words,
    split_words,
    tokenizer_from_dict,
)

TEXT = "Hello, world! Don't panic.\nÉlan vital — ¿qué tal?\n"


def roundtrip(tok):
    return tokenizer_from_dict(tok.to_dict())


def test_char_round_trip_and_serialisation():
    tok = build_tokenizer("char", [TEXT])
    assert tok.decode(tok.encode(TEXT)) == TEXT
    again = roundtrip(tok)
    assert again.encode(TEXT) == tok.encode(TEXT)


def test_char_unseen_character_maps_to_unk_and_is_reported():
    tok = CharTokenizer.from_chars("abc")
    ids = tok.encode("abz😀")
    assert ids[2] == UNK_ID and ids[3] == UNK_ID
    assert tok.unknown_pieces("abz😀") == sorted(["z", "😀"])


def test_word_split_is_unicode_aware_and_keeps_line_ends():
    words = split_words(TEXT)
    assert words[:6] == ["Hello", ",", "world", "!", "Don't", "panic"]
    assert "\n" in words and "Élan" in words and "¿" in words
    assert join_words(words) == TEXT


def test_word_round_trip_lowercase_and_unk():
    tok = build_tokenizer("word", [TEXT], lowercase=True)
    assert tok.decode(tok.encode(TEXT)) == TEXT.lower()
    ids = tok.encode("hello zebra")
    assert ids[1] == UNK_ID
    assert roundtrip(tok).encode(TEXT) == tok.encode(TEXT)


def test_word_max_vocab_and_min_freq():
    tok = build_tokenizer("word", ["a a a b b c\n"], max_vocab=6)  # 4 specials + 2 words
    assert tok.vocab_size == 6 and "c" not in tok.stoi
    tok = build_tokenizer("word", ["a a a b b c\n"], min_freq=2)
    assert "b" in tok.stoi and "c" not in tok.stoi


def test_pretokenized_keeps_treebank_tokens():
    line = "the company 's <unk> rose n't N %\n"
    tok = build_tokenizer("word", [line], pretokenized=True)
    assert tok.split(line) == ["the", "company", "'s", "<unk>", "rose", "n't", "N", "%", "\n"]
    assert tok.encode("<unk>") == [UNK_ID]
    assert tok.decode(tok.encode(line)) == line


def test_subword_round_trip_and_serialisation():
    lines = [f"the quick brown fox {i} jumps over the lazy dog number {i}" for i in range(300)]
    text = "\n".join(lines[:5]) + "\n"
    tok = build_tokenizer("subword", ["\n".join(lines)], vocab_size=120)
    assert tok.decode(tok.encode(text)) == text
    again = roundtrip(tok)
    assert again.encode(text) == tok.encode(text)
    streamed = "".join(tok.piece_text(p, t) for p, t in
                       zip([None] + tok.encode(text)[:-1], tok.encode(text)))
    assert streamed == text


def test_piece_text_streams_words_like_decode():
    tok = build_tokenizer("word", [TEXT])
    ids = tok.encode(TEXT)
    streamed = "".join(tok.piece_text(p, t) for p, t in zip([None] + ids[:-1], ids))
    assert streamed == tok.decode(ids)


def test_unknown_level_is_a_user_error():
    from seqgen.errors import UserError

    with pytest.raises(UserError):
        build_tokenizer("bytes", [TEXT])
