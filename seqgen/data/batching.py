"""Batches of variable-length token sequences, for any task that trains on them
(translation, captioning, classification): padding, length buckets, and the one batch source
the trainer resumes exactly; and the digest that tells whether a data set changed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from seqgen.tokenizers import BOS_ID, EOS_ID, PAD_ID


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


class LengthBatches:
    """Batches of examples of similar length: shuffled in length buckets for training (the
    same batches for the same seed and epoch), sorted by length for validation. A subclass
    says how a batch of example indices becomes tensors (``make_batch``)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0,
                 shuffle: bool = True):
        self.lengths = list(lengths)
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def index_batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            return sorted_batches(self.lengths, self.batch_size)
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        return bucket_batches(self.lengths, self.batch_size, generator)

    def make_batch(self, index: list[int]) -> Any:
        raise NotImplementedError

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[Any]:
        for index in self.index_batches(epoch)[start:]:
            yield self.make_batch(index)


def records_digest(records: Iterable[str]) -> str:
    """What a data set is (its records, in order), to tell on --resume whether it changed."""
    digest = hashlib.blake2b(digest_size=16)
    for record in records:
        digest.update(record.encode())
    return digest.hexdigest()
