"""Pretrained word vectors in the GloVe / word2vec text format, for a vocabulary's words."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from seqgen.errors import UserError


def read_vectors(path: str | Path, vocabulary: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors for the words of ``vocabulary`` (rows in its order; a word missing from the
    file may match it lowercased) and which rows were found. The file is read once, line by
    line, and only the vocabulary's rows are kept: a 5 GB file needs no 5 GB of memory.
    word2vec's first line ("count dimension") is recognised and skipped. The file is UTF-8
    (as GloVe and word2vec ship), whatever the data's encoding; a token may hold spaces
    (GloVe 840B has ". . ."): the last numbers of a line are the vector."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init-embeddings: file not found: {path}")
    exact = {word: i for i, word in enumerate(vocabulary)}
    folded: dict[str, list[int]] = {}
    for i, word in enumerate(vocabulary):
        folded.setdefault(word.lower(), []).append(i)
    rows: dict[int, list[float]] = {}
    from_exact: set[int] = set()
    dim = None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.rstrip("\r\n").rstrip(" ").split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    dim = int(parts[1])  # word2vec's header: count, dimension
                    continue
                if len(parts) < 2:
                    if line.strip():
                        raise UserError(f"{path}, line {number}: expected a word and its "
                                        "vector")
                    continue
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) <= dim:
                    raise UserError(f"{path}, line {number}: {len(parts) - 1} numbers where "
                                    f"the earlier lines have {dim}")
                word, values = " ".join(parts[:-dim]), parts[-dim:]
                wanted = word in exact or any(i not in from_exact
                                              for i in folded.get(word.lower(), ()))
                if not wanted:
                    continue
                try:
                    vector = [float(v) for v in values]
                except ValueError:
                    raise UserError(f"{path}, line {number}: not a vector of numbers") from None
                if not all(math.isfinite(v) for v in vector):
                    raise UserError(f"{path}, line {number}: the vector is not finite")
                if word in exact:  # an exact match wins over a lowercased one
                    rows[exact[word]] = vector
                    from_exact.add(exact[word])
                else:
                    for i in folded[word.lower()]:
                        if i not in from_exact:
                            rows.setdefault(i, vector)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if dim is None:
        raise UserError(f"{path} holds no word vectors")
    matrix = torch.zeros(len(vocabulary), dim)
    found = torch.zeros(len(vocabulary), dtype=torch.bool)
    for i, vector in rows.items():
        matrix[i] = torch.tensor(vector)
        found[i] = True
    return matrix, found
