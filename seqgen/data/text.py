"""Text corpora: reading with clear errors, a memory-mapped token cache, truncated-BPTT batches.

A corpus never lives in memory as a Python list of tokens: files are streamed in chunks,
tokens are written to a flat binary file in a cache folder (keyed by the files' content and
the tokenizer settings) and read back as a ``numpy.memmap``. A second run on the same data
starts at once, and a corpus of gigabytes trains in little memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqgen.errors import UserError
from seqgen.tokenizers import Tokenizer, build_tokenizer, tokenizer_from_dict

CHUNK_CHARS = 1 << 22  # 4M characters per streamed chunk
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get("SEQGEN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqgen"


def resolve_text_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, and the ``.txt`` files of any folder (sorted), each checked to exist."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise UserError(f"folder {path} holds no .txt files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"no such file or folder: {path}")
    if not files:
        raise UserError("no corpus files given")
    return files


def _check_not_binary(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        raise UserError(f"{path} looks like a binary file, not text")


def iter_chunks(files: Sequence[Path], encoding: str = "utf-8") -> Iterator[str]:
    """Stream the files as text chunks that end on a line end (or at the end of a file)."""
    for path in files:
        _check_not_binary(path)
        try:
            with open(path, encoding=encoding, newline=None) as handle:
                while True:
                    chunk = handle.read(CHUNK_CHARS)
                    if not chunk:
                        break
                    if not chunk.endswith("\n"):
                        chunk += handle.readline()
                    yield chunk
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{path} is not valid {encoding} text (byte {exc.start} of a chunk): "
                "pass --encoding, e.g. --encoding latin-1"
            ) from None
        except LookupError:
            raise UserError(f"unknown --encoding {encoding!r}") from None


def content_key(files: Sequence[Path], settings: dict) -> str:
    """Hash of the files' bytes and the settings that shape the token stream."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for path in files:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 24):
                digest.update(block)
        digest.update(b"\x00file-end\x00")
    return digest.hexdigest()


@dataclass
class TokenizedCorpus:
    tokens: np.ndarray  # 1-D memmap of token ids
    tokenizer: Tokenizer
    n_chars: int
    cached: bool  # True when read back from an earlier run's cache


def tokenize_files(
    files: Sequence[Path],
    tokenizer_options: dict,
    tokenizer: Tokenizer | None = None,
    encoding: str = "utf-8",
    cache_dir: Path | None = None,
) -> TokenizedCorpus:
    """Tokenise ``files`` into the cache (building a tokenizer unless one is given)."""
    cache_dir = Path(cache_dir or default_cache_dir())
    settings = {"version": CACHE_VERSION, "encoding": encoding,
                "tokenizer": tokenizer.to_dict() if tokenizer else tokenizer_options}
    key = content_key(files, settings)
    meta_path = cache_dir / f"{key}.json"
    bin_path = cache_dir / f"{key}.bin"
    if meta_path.exists() and bin_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],)) \
            if meta["n_tokens"] else np.zeros(0, dtype=meta["dtype"])
        return TokenizedCorpus(tokens, tokenizer_from_dict(meta["tokenizer"]),
                               meta["n_chars"], cached=True)

    if tokenizer is None:
        tokenizer = build_tokenizer(texts=iter_chunks(files, encoding), **tokenizer_options)
    dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max else np.int32
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = bin_path.with_suffix(f".tmp{os.getpid()}")
    n_tokens = n_chars = 0
    encode_array = getattr(tokenizer, "encode_array", None)
    try:
        with open(tmp, "wb") as out:
            for chunk in iter_chunks(files, encoding):
                ids = encode_array(chunk) if encode_array else np.asarray(tokenizer.encode(chunk))
                out.write(np.asarray(ids, dtype=dtype).tobytes())
                n_tokens += len(ids)
                n_chars += len(chunk)
        os.replace(tmp, bin_path)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"dtype": np.dtype(dtype).name, "n_tokens": n_tokens, "n_chars": n_chars,
            "tokenizer": tokenizer.to_dict(), "files": [str(f) for f in files]}
    meta_tmp = meta_path.with_suffix(f".tmp{os.getpid()}")
    meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(meta_tmp, meta_path)
    tokens = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n_tokens,)) if n_tokens \
        else np.zeros(0, dtype=dtype)
    return TokenizedCorpus(tokens, tokenizer, n_chars, cached=False)


def split_tokens(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A contiguous split: the last ``val_fraction`` of the corpus validates."""
    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    n_val = int(len(tokens) * val_fraction)
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val:]


class StreamBatches:
    """The corpus as ``batch_size`` parallel streams cut into ``bptt``-long chunks.

    Batch ``i`` continues batch ``i - 1`` position by position, so the trainer can carry the
    (detached) hidden state from one batch to the next.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, bptt: int, what: str = "corpus"):
        if bptt <= 0 or batch_size <= 0:
            raise UserError("--bptt and --batch-size must be positive")
        self.tokens = tokens
        self.batch_size = batch_size
        self.bptt = bptt
        self.stream_len = (len(tokens) - 1) // batch_size
        if self.stream_len < 1:
            raise UserError(
                f"the {what} is too short ({len(tokens)} tokens) for one batch of "
                f"{batch_size} streams: use more text or a smaller --batch-size"
            )
        self.starts = np.arange(batch_size, dtype=np.int64) * self.stream_len

    def __len__(self) -> int:
        return -(-self.stream_len // self.bptt)

    @property
    def n_targets(self) -> int:
        return self.stream_len * self.batch_size

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo = i * self.bptt
        hi = min(lo + self.bptt, self.stream_len)
        rows = np.stack([self.tokens[s + lo: s + hi + 1] for s in self.starts]).astype(np.int64)
        rows_t = torch.from_numpy(rows)
        return rows_t[:, :-1], rows_t[:, 1:]

    def batches(
        self, epoch: int = 0, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(start, len(self)):
            yield self.batch(i)


def eval_streams(tokens: np.ndarray, batch_size: int, bptt: int, what: str) -> StreamBatches:
    """Validation streams: as many as the text allows, up to ``batch_size``."""
    fit = max(1, (len(tokens) - 1) // max(1, bptt))
    return StreamBatches(tokens, max(1, min(batch_size, fit)), bptt, what)
