"""Text corpora: reading with clear errors, a memory-mapped token cache, truncated-BPTT batches.

A corpus never lives in memory as a Python list of tokens: files are streamed in chunks,
tokens are written to a flat binary file in a cache folder (keyed by the files' content and
the tokenizer settings) and read back as a ``numpy.memmap``. A second run on the same data
starts at once, and a corpus of gigabytes trains in little memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from seqgen.errors import SeqgenWarning, UserError
from seqgen.files import atomic_write, atomic_write_text
from seqgen.tokenizers import Tokenizer, build_tokenizer, tokenizer_from_dict

CHUNK_CHARS = 1 << 22  # 4M characters per streamed chunk
CACHE_VERSION = 2
BOM = "\ufeff"


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
    """Stream the files as text chunks that end on a line end (or at the end of a file); a
    byte-order mark at the start of a file is not text and is dropped."""
    for path in files:
        _check_not_binary(path)
        try:
            with open(path, encoding=encoding, newline=None) as handle:
                first = True
                while True:
                    chunk = handle.read(CHUNK_CHARS)
                    if not chunk:
                        break
                    if not chunk.endswith("\n"):
                        chunk += handle.readline()
                    if first:
                        chunk, first = chunk.removeprefix(BOM), False
                    if chunk:
                        yield chunk
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{path} is not valid {encoding} text (byte {exc.start} of a chunk): "
                "pass --encoding, e.g. --encoding latin-1"
            ) from None
        except LookupError:
            raise UserError(f"unknown --encoding {encoding!r}") from None


def files_digest(files: Sequence[Path]) -> str:
    """Hash of the files' bytes, in order: what a corpus is, wherever it lies."""
    digest = hashlib.blake2b(digest_size=16)
    for path in files:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 24):
                digest.update(block)
        digest.update(b"\x00file-end\x00")
    return digest.hexdigest()


def cache_key(digest: str, settings: dict) -> str:
    """The files' digest and the settings that shape the token stream."""
    text = json.dumps(settings, sort_keys=True) + digest
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class TokenizedCorpus:
    tokens: np.ndarray  # 1-D memmap of token ids
    tokenizer: Tokenizer
    n_chars: int
    cached: bool  # True when read back from an earlier run's cache
    digest: str  # of the files' bytes (files_digest)
    file_tokens: list[int]  # tokens of each file, in order (they are concatenated)

    def per_file(self) -> list[np.ndarray]:
        """The token stream cut back into its files."""
        ends = np.cumsum(self.file_tokens)
        return [self.tokens[end - n:end] for n, end in zip(self.file_tokens, ends)]


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
    digest = files_digest(files)
    key = cache_key(digest, settings)
    meta_path = cache_dir / f"{key}.json"
    bin_path = cache_dir / f"{key}.bin"
    cached = _read_cache(meta_path, bin_path, digest)
    if cached is not None:
        return cached

    if tokenizer is None:
        tokenizer = build_tokenizer(texts=iter_chunks(files, encoding), **tokenizer_options)
    dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max else np.int32
    counts = {"tokens": 0, "chars": 0}
    file_tokens: list[int] = []

    def write_tokens(out: BinaryIO) -> None:
        encode_array = getattr(tokenizer, "encode_array", None)
        file_tokens.clear()
        for path in files:
            file_tokens.append(0)
            for chunk in iter_chunks([path], encoding):
                ids = encode_array(chunk) if encode_array else np.asarray(tokenizer.encode(chunk))
                out.write(np.asarray(ids, dtype=dtype).tobytes())
                file_tokens[-1] += len(ids)
                counts["chars"] += len(chunk)
        counts["tokens"] = sum(file_tokens)

    if not writable_folder(cache_dir):
        warnings.warn(f"the cache folder {cache_dir} is not writable: tokenising without a "
                      "cache (pass --cache-dir to choose another)", SeqgenWarning, stacklevel=2)
        buffer = io.BytesIO()
        write_tokens(buffer)
        tokens = np.frombuffer(buffer.getbuffer(), dtype=dtype)
        return TokenizedCorpus(tokens, tokenizer, counts["chars"], cached=False, digest=digest,
                               file_tokens=file_tokens)
    atomic_write(bin_path, write_tokens)
    meta = {"dtype": np.dtype(dtype).name, "n_tokens": counts["tokens"],
            "n_chars": counts["chars"], "tokenizer": tokenizer.to_dict(),
            "files": [str(f) for f in files], "file_tokens": file_tokens}
    atomic_write_text(meta_path, json.dumps(meta))
    n_tokens = counts["tokens"]
    tokens = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n_tokens,)) if n_tokens \
        else np.zeros(0, dtype=dtype)
    return TokenizedCorpus(tokens, tokenizer, counts["chars"], cached=False, digest=digest,
                           file_tokens=file_tokens)


def _read_cache(meta_path: Path, bin_path: Path, digest: str) -> TokenizedCorpus | None:
    """A cache entry, or None when there is none or it is damaged (then it is rebuilt)."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        dtype, n_tokens = np.dtype(meta["dtype"]), int(meta["n_tokens"])
        if bin_path.stat().st_size != n_tokens * dtype.itemsize:
            return None
        tokens = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n_tokens,)) if n_tokens \
            else np.zeros(0, dtype=dtype)
        return TokenizedCorpus(tokens, tokenizer_from_dict(meta["tokenizer"]),
                               int(meta["n_chars"]), cached=True, digest=digest,
                               file_tokens=[int(n) for n in meta["file_tokens"]])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None


def writable_folder(folder: Path) -> bool:
    """Can files be created in ``folder`` (made if missing)?"""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


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


def cut_streams(tokens: np.ndarray, parts: int) -> list[np.ndarray]:
    """``parts`` contiguous pieces whose targets (every token after a piece's first) cover
    each target of ``tokens`` once: neighbours share one token, the next one's first input."""
    n_targets = len(tokens) - 1
    parts = max(1, min(parts, n_targets))
    bounds = [round(k * n_targets / parts) for k in range(parts + 1)]
    return [tokens[a:b + 1] for a, b in zip(bounds, bounds[1:])]


def stream_chunks(streams: Sequence[np.ndarray], chunk: int
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Streams read side by side, ``chunk`` positions at a time, for carried-state scoring:
    (inputs, targets, mask) of shape (streams, ≤ chunk); the mask is False past a stream's end.

        stream 0  t t t t t t t t t t
        stream 1  t t t t t · · · · ·      · = padding, masked
                  └─chunk─┘└─chunk─┘
    """
    longest = max(len(s) for s in streams) - 1
    for lo in range(0, longest, chunk):
        width = min(chunk, longest - lo)
        rows = np.zeros((len(streams), width + 1), dtype=np.int64)
        mask = np.zeros((len(streams), width), dtype=bool)
        for i, s in enumerate(streams):
            piece = s[lo:lo + width + 1]
            rows[i, :len(piece)] = piece
            mask[i, :max(0, len(piece) - 1)] = True
        rows_t = torch.from_numpy(rows)
        yield rows_t[:, :-1], rows_t[:, 1:], torch.from_numpy(mask)
