"""Labelled numeric series for classification (EEG/ECG-like signals, the UCR archive), in the
layouts they come in:

- the UCR/UEA ``.ts`` format (sktime, aeon): ``#`` comment lines, ``@`` headers, then after
  ``@data`` one series a line, ``v1,v2,…:label``, several channels separated by ``:``
  (``v…:v…:label``), series of unequal length, ``?`` for a missing value;
- a CSV with one series a row and a label column (found by name, or the first column).

Bad rows are one line naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqgen.data.labelled import LABEL_NAMES
from seqgen.data.reading import read_text, split_lines
from seqgen.errors import UserError


@dataclass
class SignalData:
    series: list[np.ndarray]  # each (T_i, channels), float64
    labels: list[str]
    source: str = ""
    notes: list[str] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.series)

    @property
    def channels(self) -> int:
        return self.series[0].shape[1] if self.series else 0

    @property
    def inputs(self) -> list[np.ndarray]:
        """What a classifier reads: the series."""
        return self.series

    @property
    def texts(self) -> list[str]:
        """How each example is shown to a user."""
        return [f"series {i + 1} ({len(s)} values)" for i, s in enumerate(self.series)]

    def digest_records(self):
        for values, label in zip(self.series, self.labels):
            yield f"{label}\t{values.tobytes().hex()}\n"


def _values(text: str, path: Path, line: int) -> np.ndarray:
    cells = [c.strip() for c in text.split(",")]
    values = []
    for cell in cells:
        if cell in ("?", "NaN", "nan", ""):
            values.append(math.nan)
            continue
        try:
            values.append(float(cell))
        except ValueError:
            raise UserError(f"{path}, line {line}: {cell!r} is not a number") from None
    return np.array(values)


def read_ts(path: str | Path, encoding: str = "utf-8") -> SignalData:
    """A UCR/UEA ``.ts`` file."""
    path = Path(path)
    data = SignalData([], [], str(path.resolve()))
    labels: list[str] | None = None
    in_data = False
    channels = None
    for number, raw in enumerate(split_lines(read_text(path, encoding)), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise UserError(f"{path}, line {number}: expected an @ header or @data before "
                                "the series (is it a .ts file?)")
            words = line.split()
            key = words[0].lower()
            if key == "@classlabel" and len(words) > 1 and words[1].lower() == "true":
                labels = words[2:]
            elif key == "@data":
                in_data = True
            continue
        parts = line.split(":")
        if labels is None:  # @classLabel false: series to classify, with no label
            label = ""
        else:
            if len(parts) < 2:
                raise UserError(f"{path}, line {number}: no ':label' at the end of the series")
            label = parts.pop().strip()
            if label not in labels:
                raise UserError(f"{path}, line {number}: label {label!r} is not one of the "
                                f"@classLabel labels ({' '.join(labels)})")
        dims = [_values(p, path, number) for p in parts]
        if channels is not None and len(dims) != channels:
            raise UserError(f"{path}, line {number}: {len(dims)} channels where the series "
                            f"before have {channels}")
        channels = len(dims)
        length = max(len(d) for d in dims)
        if any(len(d) != length for d in dims):
            raise UserError(f"{path}, line {number}: the channels of one series differ in "
                            "length")
        data.series.append(np.stack(dims, axis=1))
        data.labels.append(label)
    if not data.series:
        raise UserError(f"{path} holds no series (nothing after @data)")
    return data


def read_signal_csv(path: str | Path, label_column: str | None = None,
                    encoding: str = "utf-8") -> SignalData:
    """One series a row: a label column and the values (empty cells at the end of a shorter
    series are not values)."""
    path = Path(path)
    text = read_text(path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""),
                        delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    if not rows:
        raise UserError(f"{path} is empty")
    first = [c.strip() for c in rows[0][1]]
    has_header = not all(_is_number(c) for c in first[1:] if c)
    body = rows[1:] if has_header else rows
    header = [h.lower() for h in first] if has_header else []
    if label_column is not None:
        if label_column.strip().lower() not in header:
            raise UserError(f"{path}: no column {label_column!r}" + (
                "" if has_header else " (it has no header: the label is its first column)"))
        at = header.index(label_column.strip().lower())
    else:
        at = next((header.index(n) for n in LABEL_NAMES if n in header), 0)
    data = SignalData([], [], str(path.resolve()))
    for number, row in body:
        label = row[at].strip() if at < len(row) else ""
        if not label:
            raise UserError(f"{path}, line {number}: no label")
        cells = _without_trailing_blanks([c for i, c in enumerate(row) if i != at])
        values = _values(",".join(cells), path, number)
        if not len(values):
            raise UserError(f"{path}, line {number}: a label with no values")
        data.series.append(values[:, None])
        data.labels.append(label)
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_signal_file(path: str | Path) -> bool:
    """Is ``path`` labelled numeric series (a .ts file, or a CSV whose rows are a label and
    numbers) rather than labelled text?"""
    path = Path(path)
    if path.suffix.lower() == ".ts":
        return True
    if path.suffix.lower() not in (".csv", ".tsv") or not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = [handle.readline() for _ in range(3)]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [_without_trailing_blanks(next(csv.reader([line], delimiter=delimiter)))
            for line in lines[1:] if line.strip()]
    return bool(rows) and all(sum(_is_number(c) for c in row) >= max(2, len(row) - 1)
                              for row in rows)


def _without_trailing_blanks(row: list[str]) -> list[str]:
    """A shorter series' row ends in empty cells: they are not values."""
    while row and not row[-1].strip():
        row = row[:-1]
    return row


def read_signals(path: str | Path, label_column: str | None = None,
                 encoding: str = "utf-8") -> SignalData:
    path = Path(path)
    if path.suffix.lower() == ".ts":
        return read_ts(path, encoding)
    return read_signal_csv(path, label_column, encoding)


def prepare_signals(data: SignalData, znormalise: bool, fill: bool = True) -> list[np.ndarray]:
    """Each series as a classifier reads it: missing values carried forward (the first ones
    back), and, with ``znormalise`` (the UCR convention), each channel of each series to mean
    0 and deviation 1."""
    out = []
    for values in data.series:
        values = values.copy()
        for column in values.T:
            missing = np.isnan(column)
            if missing.all():
                column[:] = 0.0
            elif missing.any() and fill:
                known = np.flatnonzero(~missing)
                column[missing] = np.interp(np.flatnonzero(missing), known, column[known])
        if znormalise:
            spread = values.std(axis=0)
            values = (values - values.mean(axis=0)) / np.where(spread > 1e-8, spread, 1.0)
        out.append(values.astype(np.float32))
    return out
