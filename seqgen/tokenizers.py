"""Character, word and subword tokenizers behind one interface.

Every tokenizer reserves the same four special ids (pad, unk, bos, eos) so that the language
model, the translator and the captioner can share batching and decoding code, and every
tokenizer serialises to plain data (``to_dict``) that a ``weights_only`` checkpoint can hold.
"""

from __future__ import annotations

import base64
import codecs
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from seqgen.errors import UserError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
LEVELS = ("char", "word", "subword")

# Words (letters/digits/underscore, with inner apostrophes as in "don't"), a literal <unk>
# already present in a corpus (Penn Treebank), single punctuation marks, and line ends.
_WORD_RE = re.compile(r"<unk>|\w+(?:['’]\w+)*|[^\w\s]|\n")
_NO_SPACE_BEFORE = set(".,;:!?%)]}'’”»…")
_NO_SPACE_AFTER = set("([{¿¡“«$#")


class Tokenizer:
    """Maps text to ids and back; subclasses fill ``itos`` (id → token string)."""

    level: str = ""

    def __init__(self, itos: Sequence[str]):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def lowercases(self) -> bool:
        """Whether the text comes back lowercased (then scores compare lowercased text)."""
        return getattr(self, "lowercase", False)

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def unknown_pieces(self, text: str) -> list[str]:
        """Pieces of ``text`` this tokenizer can only represent as ``<unk>``."""
        return []

    def piece_text(self, prev_id: int | None, token_id: int) -> str:
        """Text that ``token_id`` adds after ``prev_id``: lets generation stream token by token."""
        return self.decode([token_id])

    def to_dict(self) -> dict:
        return {"level": self.level, "itos": self.itos}

    def describe(self) -> str:
        return f"{self.level}, {self.vocab_size} tokens"


class CharTokenizer(Tokenizer):
    """One id per character seen in the training text; everything else is ``<unk>``."""

    level = "char"

    def __init__(self, itos: Sequence[str]):
        super().__init__(itos)
        top = max((ord(c) for c in self.itos[len(SPECIALS):]), default=0)
        # A dense code point → id table makes encoding a single numpy gather.
        self._table = np.full(top + 2, UNK_ID, dtype=np.int32)
        for i, c in enumerate(self.itos[len(SPECIALS):], start=len(SPECIALS)):
            self._table[ord(c)] = i

    @classmethod
    def from_chars(cls, chars: Iterable[str]) -> CharTokenizer:
        return cls(list(SPECIALS) + sorted(set(chars)))

    def encode_array(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        codes = np.minimum(codes, len(self._table) - 1)
        return self._table[codes]

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i >= len(SPECIALS):
                out.append(self.itos[i])
            elif i == UNK_ID:
                out.append("\ufffd")
        return "".join(out)

    def unknown_pieces(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.stoi})


def split_words(text: str, lowercase: bool = False, pretokenized: bool = False) -> list[str]:
    """Unicode-aware split into words, punctuation marks and line ends.

    ``pretokenized`` splits on spaces only, for corpora such as Penn Treebank whose
    tokenisation must be kept to compare perplexities with published numbers.
    """
    if lowercase:
        text = text.lower()
    if pretokenized:
        return [t for line in text.split("\n") for t in (*line.split(), "\n")][:-1] if text else []
    return _WORD_RE.findall(unicodedata.normalize("NFC", text))


def join_words(words: Sequence[str], pretokenized: bool = False) -> str:
    """Inverse of ``split_words`` up to spacing: no space before closing punctuation etc."""
    if pretokenized:
        return " ".join(words).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")
    out: list[str] = []
    prev = "\n"
    for w in words:
        if w == "\n" or prev == "\n" or prev[-1] in _NO_SPACE_AFTER or w[0] in _NO_SPACE_BEFORE:
            out.append(w)
        else:
            out.append(" " + w)
        prev = w
    return "".join(out)


class WordTokenizer(Tokenizer):
    level = "word"

    def __init__(self, itos: Sequence[str], lowercase: bool = False, pretokenized: bool = False):
        super().__init__(itos)
        self.lowercase = lowercase
        self.pretokenized = pretokenized

    @classmethod
    def from_counts(
        cls,
        counts: Counter,
        max_vocab: int | None = None,
        min_freq: int = 1,
        lowercase: bool = False,
        pretokenized: bool = False,
    ) -> WordTokenizer:
        counts = Counter({w: c for w, c in counts.items() if w not in SPECIALS})
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                 if c >= min_freq]
        if max_vocab is not None:
            words = words[: max(0, max_vocab - len(SPECIALS))]
        return cls(list(SPECIALS) + words, lowercase=lowercase, pretokenized=pretokenized)

    def split(self, text: str) -> list[str]:
        return split_words(text, self.lowercase, self.pretokenized)

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(w, UNK_ID) for w in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        words = [self.itos[int(i)] for i in ids if int(i) == UNK_ID or int(i) >= len(SPECIALS)]
        return join_words(words, self.pretokenized)

    def unknown_pieces(self, text: str) -> list[str]:
        return sorted({w for w in self.split(text) if w not in self.stoi})

    def piece_text(self, prev_id: int | None, token_id: int) -> str:
        if token_id != UNK_ID and token_id < len(SPECIALS):
            return ""
        prev = self.itos[prev_id] if prev_id is not None and prev_id >= 1 else "\n"
        return join_words([prev, self.itos[token_id]], self.pretokenized)[len(prev):]

    def to_dict(self) -> dict:
        return {**super().to_dict(), "lowercase": self.lowercase,
                "pretokenized": self.pretokenized}

    def describe(self) -> str:
        extra = ", lowercased" if self.lowercase else ""
        return f"word, {self.vocab_size} tokens{extra}"


class SubwordTokenizer(Tokenizer):
    """A sentencepiece model trained on the corpus; line ends get their own id after it."""

    level = "subword"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        n = self.sp.get_piece_size()
        super().__init__([self.sp.id_to_piece(i) for i in range(n)] + ["\n"])
        self.newline_id = n

    @classmethod
    def train(
        cls, lines: Iterable[str], vocab_size: int = 4000, model_type: str = "bpe"
    ) -> SubwordTokenizer:
        import sentencepiece as spm

        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(line for line in lines if line.strip()),
                model_writer=buf,
                vocab_size=vocab_size,
                model_type=model_type,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
                character_coverage=0.9995,
                input_sentence_size=2_000_000,
                shuffle_input_sentence=True,
                byte_fallback=False,
                hard_vocab_limit=False,  # a small text gets fewer pieces, not an error
                minloglevel=2,
            )
        except RuntimeError as exc:
            raise UserError(f"could not train the subword model: {exc}") from None
        return cls(buf.getvalue())

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        lines = text.split("\n")
        for k, line in enumerate(lines):
            if line:
                ids.extend(self.sp.encode(line))
            if k < len(lines) - 1:
                ids.append(self.newline_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        parts: list[list[int]] = [[]]
        for i in ids:
            i = int(i)
            if i == self.newline_id:
                parts.append([])
            elif i not in (PAD_ID, BOS_ID, EOS_ID):
                parts[-1].append(i)
        return "\n".join(self.sp.decode(p) for p in parts)

    def unknown_pieces(self, text: str) -> list[str]:
        return sorted({c for c in text if not c.isspace() and UNK_ID in self.sp.encode(c)})

    def piece_text(self, prev_id: int | None, token_id: int) -> str:
        if token_id == self.newline_id:
            return "\n"
        if token_id in (PAD_ID, BOS_ID, EOS_ID):
            return ""
        text = self.sp.id_to_piece(token_id).replace("\u2581", " ")
        if token_id == UNK_ID:
            text = " \u2047"
        if prev_id is None or prev_id == self.newline_id:
            text = text.lstrip(" ")
        return text

    def to_dict(self) -> dict:
        return {"level": self.level,
                "model_proto": base64.b64encode(self.model_proto).decode("ascii")}

    def describe(self) -> str:
        kind = self.sp.model_type if hasattr(self.sp, "model_type") else "sentencepiece"
        return f"subword ({kind}), {self.vocab_size} tokens"


def check_tokenizer_options(options) -> None:
    """Tokenizer options a corpus can be read with, checked before any text is (``options``:
    an object with level, lowercase, min_freq, max_vocab, vocab_size, subword_type, encoding
    and perhaps pretokenized)."""
    if options.level not in LEVELS:
        raise UserError(f"unknown --level {options.level!r}: choose one of {', '.join(LEVELS)}")
    for flag in ("lowercase", "pretokenized"):
        if getattr(options, flag, False) and options.level != "word":
            raise UserError(f"--{flag} works at --level word, not {options.level}")
    if not isinstance(options.min_freq, int) or options.min_freq < 1:
        raise UserError(f"--min-freq must be a whole number >= 1, got {options.min_freq!r}")
    if options.max_vocab is not None and options.max_vocab <= len(SPECIALS):
        raise UserError(f"--max-vocab must be more than {len(SPECIALS)} (the special tokens)")
    if options.vocab_size < 2 * len(SPECIALS):
        raise UserError(f"--vocab-size must be at least {2 * len(SPECIALS)}")
    if options.subword_type not in ("bpe", "unigram"):
        raise UserError(f"unknown --subword-type {options.subword_type!r}: choose bpe or unigram")
    try:
        codecs.lookup(options.encoding)
    except LookupError:
        raise UserError(f"unknown --encoding {options.encoding!r}") from None


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """A tokenizer saved with ``to_dict``; anything malformed is a UserError (a checkpoint can
    hold any plain data)."""
    if not isinstance(data, dict):
        raise UserError("the tokenizer is not a dict")
    level = data.get("level")
    if level == "subword":
        proto = data.get("model_proto")
        if not isinstance(proto, str):
            raise UserError("the subword tokenizer has no sentencepiece model")
        try:
            return SubwordTokenizer(base64.b64decode(proto, validate=True))
        except (ValueError, RuntimeError, OSError) as exc:
            raise UserError(f"the sentencepiece model does not load ({exc})") from None
    if level not in ("char", "word"):
        raise UserError(f"unknown tokenizer level {level!r}")
    itos = data.get("itos")
    if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
        raise UserError("the tokenizer's vocabulary is not a list of strings")
    if tuple(itos[:len(SPECIALS)]) != SPECIALS or len(set(itos)) != len(itos):
        raise UserError("the tokenizer's vocabulary does not start with the special tokens or "
                        "repeats a token")
    if level == "char":
        if any(len(c) != 1 for c in itos[len(SPECIALS):]):
            raise UserError("a character tokenizer entry is not one character")
        return CharTokenizer(itos)
    flags = (data.get("lowercase", False), data.get("pretokenized", False))
    if not all(isinstance(f, bool) for f in flags):
        raise UserError("the word tokenizer's options are not true/false")
    return WordTokenizer(itos, *flags)


def build_tokenizer(
    level: str,
    texts: Iterable[str],
    *,
    lowercase: bool = False,
    pretokenized: bool = False,
    max_vocab: int | None = None,
    min_freq: int = 1,
    vocab_size: int = 4000,
    subword_type: str = "bpe",
) -> Tokenizer:
    """Build a tokenizer from an iterable of text chunks (whole lines for word/subword)."""
    if level == "char":
        seen = np.zeros(0, dtype=bool)
        for chunk in texts:
            present = np.bincount(np.frombuffer(chunk.encode("utf-32-le"), np.uint32)) > 0
            if len(present) > len(seen):
                present[: len(seen)] |= seen
                seen = present
            else:
                seen[: len(present)] |= present
        return CharTokenizer.from_chars(chr(c) for c in np.flatnonzero(seen))
    if level == "word":
        counts: Counter = Counter()
        for chunk in texts:
            counts.update(split_words(chunk, lowercase, pretokenized))
        return WordTokenizer.from_counts(counts, max_vocab, min_freq, lowercase, pretokenized)
    if level == "subword":
        return SubwordTokenizer.train(
            (line for chunk in texts for line in chunk.split("\n")), vocab_size, subword_type
        )
    raise UserError(f"unknown level {level!r}: choose one of {', '.join(LEVELS)}")
