"""Sentence pairs: readers for parallel text, padding, and length-bucketed batches.

Two layouts are read:

- a TSV file in the Tatoeba/anki layout, ``source<TAB>target[<TAB>anything]`` per line;
- two line-aligned files, one sentence per line each.

``pad_batch`` and ``bucket_batches`` know nothing about translation: any task that trains on
variable-length token sequences (translation, captioning) can batch with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from seqgen.errors import UserError
from seqgen.tokenizers import BOS_ID, EOS_ID, PAD_ID


@dataclass
class PairFile:
    pairs: list[tuple[str, str]]
    skipped: int = 0  # bad lines passed over with skip_bad_lines
    source: str = ""  # where they were read from


def decode_text(data: bytes, encoding: str, what: str) -> str:
    """Bytes as text; a byte-order mark at the start is not text and is dropped."""
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} is not {encoding} text (byte {exc.start}); "
                        "pass --encoding") from None
    except LookupError:
        raise UserError(f"unknown --encoding {encoding!r}") from None


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's contents, every problem reading it one line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_text(data, encoding, str(path))


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """A text file's lines (``str.splitlines``)."""
    return read_text(path, encoding).splitlines()


def read_tsv_pairs(path: str | Path, reverse: bool = False, skip_bad_lines: bool = False,
                   encoding: str = "utf-8") -> PairFile:
    """``source<TAB>target[<TAB>...]`` lines; blank lines are ignored, other bad lines refused."""
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    skipped = 0
    for number, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        problem = None
        if len(fields) < 2:
            problem = "no tab between source and target"
        else:
            source, target = fields[0].strip(), fields[1].strip()
            if not source:
                problem = "empty source side"
            elif not target:
                problem = "empty target side"
        if problem:
            if skip_bad_lines:
                skipped += 1
                continue
            raise UserError(f"{path}, line {number}: {problem} (expected source<TAB>target; "
                            "pass --skip-bad-lines to skip such lines)")
        pairs.append((target, source) if reverse else (source, target))
    return PairFile(pairs, skipped, str(path.resolve()))


def read_parallel_files(source: str | Path, target: str | Path, skip_bad_lines: bool = False,
                        encoding: str = "utf-8") -> PairFile:
    """Two line-aligned files; a line empty on one side only is a bad line."""
    source, target = Path(source), Path(target)
    src_lines, tgt_lines = read_lines(source, encoding), read_lines(target, encoding)
    if len(src_lines) != len(tgt_lines):
        raise UserError(f"{source} has {len(src_lines)} lines but {target} has "
                        f"{len(tgt_lines)}: the files must be line-aligned")
    pairs: list[tuple[str, str]] = []
    skipped = 0
    for number, (s, t) in enumerate(zip(src_lines, tgt_lines), start=1):
        s, t = s.strip(), t.strip()
        if not s and not t:
            continue
        if not s or not t:
            if skip_bad_lines:
                skipped += 1
                continue
            empty = source if not s else target
            raise UserError(f"{empty}, line {number}: empty line where the other file has a "
                            "sentence (pass --skip-bad-lines to skip such lines)")
        pairs.append((s, t))
    return PairFile(pairs, skipped, f"{source.resolve()} + {target.resolve()}")


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID, bos: bool = False,
              eos: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists → a ``(B, T)`` long tensor padded with ``pad_id`` and the lengths ``(B,)``.

    ``bos``/``eos`` add ``<bos>``/``<eos>`` around every sequence (counted in the lengths).
    """
    pre, post = [BOS_ID] if bos else [], [EOS_ID] if eos else []
    rows = [pre + list(s) + post for s in seqs]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = torch.full((len(rows), max(1, int(lengths.max()) if rows else 1)), pad_id,
                     dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out, lengths


def bucket_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                   pool_batches: int = 50) -> list[list[int]]:
    """Shuffled batches of indices whose lengths are close, so padding stays small.

    Indices are shuffled, cut into pools of ``pool_batches`` batches, each pool is sorted by
    length and cut into batches, and the batches are shuffled. The same generator state gives
    the same batches, and the count is always ``ceil(len(lengths) / batch_size)``.
    """
    n = len(lengths)
    order = torch.randperm(n, generator=generator).tolist()
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of indices sorted by length (longest first), for evaluation and decoding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


class PairBatches:
    """Training batches of (source, source lengths, target with <bos>/<eos>).

    The source gets a final ``<eos>`` so that even an empty sentence has one token.
    """

    def __init__(self, sources: list[list[int]], targets: list[list[int]], batch_size: int,
                 seed: int = 0, shuffle: bool = True):
        self.sources, self.targets = sources, targets
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.lengths = [len(s) + len(t) for s, t in zip(sources, targets)]

    def __len__(self) -> int:
        return -(-len(self.sources) // self.batch_size)

    def index_batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            return sorted_batches(self.lengths, self.batch_size)
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        return bucket_batches(self.lengths, self.batch_size, generator)

    def make_batch(self, index: list[int]):
        src, src_lens = pad_batch([self.sources[i] for i in index], eos=True)
        tgt, _ = pad_batch([self.targets[i] for i in index], bos=True, eos=True)
        return src, src_lens, tgt

    def batches(self, epoch: int = 0, start: int = 0):
        for index in self.index_batches(epoch)[start:]:
            yield self.make_batch(index)
