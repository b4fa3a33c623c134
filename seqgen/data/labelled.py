"""Labelled text for classification, in the layouts users already have.

- a CSV or TSV file with a header: the label and text columns are found by name (or chosen);
- one file per class, one example per line (Rotten Tomatoes' own ``rt-polarity.pos/.neg``);
- a folder per class, one file per example (IMDB's ``train/pos/*.txt``).

Lines are split on line feeds only (``seqgen.data.reading``).
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from seqgen.data.reading import read_text, split_lines
from seqgen.errors import UserError

if TYPE_CHECKING:
    from seqgen.data.signals import SignalData

LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "polarity", "target", "y")
TEXT_NAMES = ("text", "sentence", "review", "content", "document", "comment", "body", "tweet",
              "message", "x")
UNLABELLED_FOLDERS = ("unsup",)  # IMDB's unlabelled reviews sit beside train/pos and neg


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[str]
    source: str = ""  # where the examples were read from
    skipped: int = 0  # bad rows passed over with skip_bad_lines
    notes: list[str] = field(default_factory=list)  # what the reader chose to tell the user

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[str]:
        """What a classifier reads: the texts."""
        return self.texts


def _find_column(header: list[str], given: str | None, names: tuple[str, ...], what: str,
                 path: Path) -> int:
    folded = [h.strip().lower() for h in header]
    if given is not None:
        if given.strip().lower() not in folded:
            raise UserError(f"{path}: no column {given!r} (the header has "
                            f"{', '.join(map(repr, header))})")
        return folded.index(given.strip().lower())
    for name in names:
        if name in folded:
            return folded.index(name)
    raise UserError(f"{path}: cannot tell which column holds the {what} (the header has "
                    f"{', '.join(map(repr, header))}); pass --{what}-column NAME")


def _csv_rows(text: str, path: Path):
    """(line number, fields) of CSV text: quoted fields may hold commas, quotes, line breaks
    and any length (a whole review)."""
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None


def read_table(path: str | Path, text_column: str | None = None,
               label_column: str | None = None, encoding: str = "utf-8",
               skip_bad_lines: bool = False) -> LabelledData:
    """A CSV (quoted fields) or TSV (tabs only: quotes are text) file with a header row."""
    path = Path(path)
    text = read_text(path, encoding)
    first = text.split("\n", 1)[0]
    tabbed = path.suffix.lower() == ".tsv" or (path.suffix.lower() != ".csv" and "\t" in first)
    if tabbed:  # tabs and line feeds only: quotes and stray carriage returns are text
        rows = ((n, line.split("\t")) for n, line in enumerate(split_lines(text), start=1))
    else:
        rows = _csv_rows(text, path)
    header_row = next(rows, None)
    header = header_row[1] if header_row else None
    if not header or not any(h.strip() for h in header):
        raise UserError(f"{path} is empty: expected a header row naming the label and text "
                        "columns")
    label_at = _find_column(header, label_column, LABEL_NAMES, "label", path)
    text_at = _find_column(header, text_column, TEXT_NAMES, "text", path)
    if label_at == text_at:
        raise UserError(f"{path}: the label and the text cannot be the same column")
    data = LabelledData([], [], str(path.resolve()))
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        problem = None
        if len(row) <= max(label_at, text_at):
            problem = f"{len(row)} field(s) where the header has {len(header)}"
        elif not row[label_at].strip():
            problem = "empty label"
        elif not row[text_at].strip():
            problem = "empty text"
        if problem:
            if skip_bad_lines:
                data.skipped += 1
                continue
            raise UserError(f"{path}, line {number}: {problem} (pass --skip-bad-lines to skip "
                            "such rows)")
        data.texts.append(row[text_at].strip())
        data.labels.append(row[label_at].strip())
    return data


def read_class_files(classes: dict[str, str | Path], encoding: str = "utf-8") -> LabelledData:
    """One file per class (label → file), one example per line; blank lines are skipped."""
    if len(classes) < 2:
        raise UserError("give at least two classes: --class pos=a.txt --class neg=b.txt")
    data = LabelledData([], [], " + ".join(f"{k}={Path(v).resolve()}"
                                           for k, v in classes.items()))
    for label, path in classes.items():
        before = len(data)
        for line in split_lines(read_text(path, encoding)):
            if line.strip():
                data.texts.append(line.strip())
                data.labels.append(label)
        if len(data) == before:
            raise UserError(f"{path} (class {label!r}) holds no examples")
    return data


def read_class_folders(root: str | Path, encoding: str = "utf-8",
                       skip_bad_lines: bool = False) -> LabelledData:
    """A folder per class below ``root``, one file per example; IMDB's ``<br />`` line breaks
    become spaces, and its folder of unlabelled reviews (``unsup``) is passed over."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    data = LabelledData([], [], str(root.resolve()))
    for folder in folders:
        if folder.name in UNLABELLED_FOLDERS:
            data.notes.append(f"{folder} holds unlabelled examples: passed over")
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file()
                       and not p.name.startswith("."))
        for path in files:
            text = " ".join(read_text(path, encoding).replace("<br />", " ").split())
            if not text:
                if skip_bad_lines:
                    data.skipped += 1
                    continue
                raise UserError(f"{path}: empty example (pass --skip-bad-lines to skip it)")
            data.texts.append(text)
            data.labels.append(folder.name)
    if len(set(data.labels)) < 2:
        raise UserError(f"{root}: expected a folder per class with one file per example, and "
                        f"at least two classes (found {len(set(data.labels))})")
    return data


def parse_class_options(values: list[str]) -> dict[str, str]:
    """``--class pos=a.txt`` options → label → file."""
    classes: dict[str, str] = {}
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label.strip() or not path.strip():
            raise UserError(f"--class {value!r}: write it as LABEL=FILE, e.g. pos=reviews.pos")
        if label.strip() in classes:
            raise UserError(f"--class {label.strip()!r} is given twice")
        classes[label.strip()] = path.strip()
    return classes


def read_labelled(path: str | Path | None = None, classes: dict[str, str] | None = None,
                  text_column: str | None = None, label_column: str | None = None,
                  encoding: str = "utf-8", skip_bad_lines: bool = False) -> LabelledData:
    """Labelled examples from whichever layout ``path`` (or ``classes``) is in."""
    if classes:
        if path is not None:
            raise UserError("give a data file or folder, or --class options, not both")
        return read_class_files(classes, encoding)
    if path is None:
        raise UserError("give a CSV/TSV file, a folder with one folder per class, or --class "
                        "LABEL=FILE options")
    path = Path(path)
    if path.is_dir():
        return read_class_folders(path, encoding, skip_bad_lines)
    return read_table(path, text_column, label_column, encoding, skip_bad_lines)


def ordered_labels(labels: list[str]) -> list[str]:
    """The classes in a stable order: by number when every label is one, else by name."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=lambda x: (float(x), x))
    except ValueError:
        return sorted(distinct)


def stratified_split(labels: list[str], fraction: float, seed: int
                     ) -> tuple[list[int], list[int]]:
    """Indices to train on and to hold out: ``fraction`` of each class (each keeps at least
    one training example), the same ones for the same seed."""
    if not 0 < fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    held: set[int] = set()
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        if len(members) > 1:
            held.update(members[:min(len(members) - 1,
                                     max(1, round(len(members) * fraction)))])
    return [i for i in range(len(labels)) if i not in held], sorted(held)


def split_labelled(data: LabelledData, fraction: float, seed: int
                   ) -> tuple[LabelledData, LabelledData]:
    """Hold out ``fraction`` of each class (stratified), the same examples for the same seed."""
    kept, held = stratified_split(data.labels, fraction, seed)
    return (LabelledData([data.texts[i] for i in kept], [data.labels[i] for i in kept],
                         data.source),
            LabelledData([data.texts[i] for i in held], [data.labels[i] for i in held],
                         data.source))


def label_ids(data: LabelledData | SignalData, labels: list[str], what: str) -> list[int]:
    """Each example's class number; a label the training data lacks is a user's error."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(data.labels) - set(index))
    if unknown:
        raise UserError(f"the {what} has label(s) {', '.join(map(repr, unknown[:5]))} that the "
                        f"training data does not ({', '.join(map(repr, labels))})")
    return [index[y] for y in data.labels]
