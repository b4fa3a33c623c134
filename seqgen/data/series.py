"""Time series in the layouts users have, read into one shape: a list of named series, each
a target and its covariates over the same time steps (``unique_id, ds, y`` in
statsforecast's words).

Layouts (``--format``; told apart from the content when ``auto``):

- ``csv``: a CSV or TSV file with a header, a date column (found by name or by its values)
  and value columns: each ``--target`` column is a series, the ``--covariates`` columns its
  inputs (numeric, or a few categories such as a day type, one-hot);
- ``long``: ``unique_id, ds, y`` rows (statsforecast / neuralforecast), many series in one file;
- ``m4``: the M4 competition's wide layout, a series a row (``"H1","605","586",…``, ragged);
- ``lines``: one number per line, a single unnamed series.

Rows are sorted by date; a row that repeats an earlier one exactly is dropped (said how
many); two different rows for one time, a missing time step, an empty or non-numeric cell is
one line naming the file and the line, unless ``--fill`` says how to fill (then said how
many).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from seqgen.data.batching import records_digest
from seqgen.data.reading import read_text, split_lines
from seqgen.errors import UserError

FORMATS = ("auto", "csv", "long", "m4", "lines")
FILLS = ("none", "ffill", "interpolate", "zero")
MISSING = {"", "nan", "na", "n/a", "null", "none", "-", "?"}
DATE_NAMES = ("date", "ds", "datetime", "timestamp", "time", "service_date", "day", "month",
              "week", "period")
ID_NAMES = ("unique_id", "id", "series", "series_id", "item_id")
VALUE_NAMES = ("y", "value", "target")
MAX_CATEGORIES = 50  # distinct values of a covariate read as categories (one-hot)
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y",
                "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y-%m", "%Y%m%d")


# ------------------------------------------------------------------------------ the shape
@dataclass(frozen=True)
class Step:
    """The time between two values: seconds, or calendar months (months differ in length)."""

    unit: str  # "s" or "months"
    size: int

    def after(self, last: np.datetime64, n: int) -> np.ndarray:
        """The ``n`` times after ``last``."""
        if self.unit == "months":
            start = last.astype("datetime64[M]")
            offset = last - start.astype("datetime64[s]")
            months = start + np.arange(1, n + 1) * self.size
            return months.astype("datetime64[s]") + offset
        return last + np.arange(1, n + 1) * np.timedelta64(self.size, "s")

    def describe(self) -> str:
        if self.unit == "months":
            return {1: "monthly", 3: "quarterly", 12: "yearly"}.get(self.size,
                                                                   f"every {self.size} months")
        names = {3600: "hourly", 86400: "daily", 604800: "weekly", 60: "every minute"}
        return names.get(self.size, f"every {self.size:,} s")

    def to_dict(self) -> dict:
        return {"unit": self.unit, "size": self.size}


@dataclass
class Series:
    name: str
    target: np.ndarray  # (T,) float64
    covariates: np.ndarray  # (T, C) float64; C may be 0
    dates: np.ndarray | None = None  # (T,) datetime64[s]

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class SeriesSet:
    series: list[Series]
    covariate_names: list[str] = field(default_factory=list)
    step: Step | None = None
    source: str = ""
    layout: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.series)

    def digest(self) -> str:
        """What the data is, to tell on --resume whether it changed."""
        return records_digest(
            f"{s.name}\t{s.target.tobytes().hex()}\t{s.covariates.tobytes().hex()}\n"
            for s in self.series)

    def describe(self) -> str:
        lengths = [len(s) for s in self.series]
        span = f"{min(lengths):,}" if min(lengths) == max(lengths) else \
            f"{min(lengths):,}–{max(lengths):,}"
        covariates = (f", covariates {', '.join(self.covariate_names)}"
                      if self.covariate_names else "")
        step = f", {self.step.describe()}" if self.step else ""
        return f"{len(self.series):,} series of {span} values ({self.layout}{step}{covariates})"


@dataclass
class SeriesOptions:
    """How a file becomes series; saved in the checkpoint, so that ``forecast`` and
    ``evaluate-forecast`` read the user's data as training did."""

    format: str = "auto"
    target: list[str] | None = None
    date_column: str | None = None
    covariates: list[str] | None = None  # column names, or ["all"]
    fill: str = "none"
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"unknown --format {self.format!r}: choose one of "
                            f"{', '.join(FORMATS)}")
        if self.fill not in FILLS:
            raise UserError(f"unknown --fill {self.fill!r}: choose one of {', '.join(FILLS)}")


def comma_list(text: str | None) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]`` (an option that takes several names)."""
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


# ------------------------------------------------------------------------------ cells
def _number(cell: str) -> float | None:
    """A cell's number; None when it is empty or a missing-value mark; NaN when it is text."""
    text = cell.strip()
    if text.lower() in MISSING:
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else None


def _date_format(cells: list[str]) -> str | None:
    """The format the cells are in: the first that reads all of a sample (so day-first only
    where month-first cannot be), else the one that reads most of it (a bad cell is then
    named by its line), else None."""
    sample = [c.strip() for c in cells if c.strip()][:200]
    best, most = None, 0
    for fmt in DATE_FORMATS:
        read = 0
        for cell in sample:
            try:
                datetime.strptime(cell, fmt)
                read += 1
            except ValueError:
                pass
        if sample and read == len(sample):
            return fmt
        if read > most:
            best, most = fmt, read
    return best if sample and most >= 0.5 * len(sample) else None


def _parse_dates(cells: list[str], fmt: str, path: Path, lines: list[int], column: str
                 ) -> np.ndarray:
    out = np.empty(len(cells), dtype="datetime64[s]")
    for i, cell in enumerate(cells):
        try:
            out[i] = np.datetime64(datetime.strptime(cell.strip(), fmt), "s")
        except ValueError:
            raise UserError(f"{path}, line {lines[i]}: {cell!r} in column {column!r} is not a "
                            f"date like the others ({fmt})") from None
    return out


def infer_step(dates: np.ndarray) -> Step | None:
    """The usual gap between consecutive times (the most common one); calendar months when
    the gaps are 28–31 days (or 3 months, or a year)."""
    if len(dates) < 2:
        return None
    gaps = np.diff(dates).astype("timedelta64[s]").astype(np.int64)
    common = Counter(gaps.tolist()).most_common(1)[0][0]
    day = 86400
    for months, low, high in ((1, 28, 31), (3, 89, 92), (12, 365, 366)):
        if low * day <= common <= high * day:
            return Step("months", months)
    return Step("s", int(common)) if common > 0 else None


def _expected(dates: np.ndarray, step: Step) -> np.ndarray:
    """The times a regular series from ``dates[0]`` to ``dates[-1]`` has."""
    if step.unit == "months":
        count = (dates[-1].astype("datetime64[M]") - dates[0].astype("datetime64[M]")
                 ).astype(int) // step.size
        return np.concatenate([dates[:1], step.after(dates[0], int(count))])
    count = int((dates[-1] - dates[0]).astype(np.int64) // step.size)
    return dates[0] + np.arange(count + 1) * np.timedelta64(step.size, "s")


# ------------------------------------------------------------------------------ filling
def _fill(values: np.ndarray, how: str) -> np.ndarray:
    """Missing values (NaN) of each column filled: carried forward (the first ones carried
    back), interpolated along a line, or zero."""
    values = values.copy()
    for column in values.T if values.ndim == 2 else [values]:
        missing = np.isnan(column)
        if not missing.any():
            continue
        if how == "zero" or missing.all():
            column[missing] = 0.0
            continue
        known = np.flatnonzero(~missing)
        if how == "interpolate":
            column[missing] = np.interp(np.flatnonzero(missing), known, column[known])
        else:  # ffill
            index = np.where(~missing, np.arange(len(column)), 0)
            np.maximum.accumulate(index, out=index)
            filled = column[index]
            filled[:known[0]] = column[known[0]]
            column[:] = filled
    return values


# ------------------------------------------------------------------------------ one table
@dataclass
class _Table:
    """A file's rows: its header and cells, each row with its line number."""

    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    path: Path

    def column(self, name: str) -> int:
        folded = [h.strip().lower() for h in self.header]
        if name.strip().lower() not in folded:
            raise UserError(f"{self.path}: no column {name!r} (the header has "
                            f"{', '.join(map(repr, self.header))})")
        return folded.index(name.strip().lower())

    def cells(self, at: int) -> list[str]:
        return [row[at] if at < len(row) else "" for row in self.rows]


def _read_table(path: Path, text: str) -> _Table:
    first = text.split("\n", 1)[0]
    tabbed = path.suffix.lower() == ".tsv" or (path.suffix.lower() != ".csv" and "\t" in first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tabbed else ",")
    rows, lines, header = [], [], None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    if not header:
        raise UserError(f"{path} is empty")
    return _Table(header, rows, lines, path)


def _numbers(table: _Table, at: int, fill: str) -> tuple[np.ndarray, int]:
    """A column as numbers; missing or non-numeric cells are NaN with ``--fill``, else one
    line naming where."""
    values = np.empty(len(table.rows))
    bad = 0
    for i, cell in enumerate(table.cells(at)):
        value = _number(cell)
        if value is None or math.isnan(value):
            if fill == "none":
                what = "an empty cell" if value is None else f"{cell.strip()!r}, not a number,"
                raise UserError(f"{table.path}, line {table.lines[i]}: {what} in column "
                                f"{table.header[at]!r} (pass --fill ffill, interpolate or zero "
                                "to fill such cells)")
            value, bad = math.nan, bad + 1
        values[i] = value
    return values, bad


def _is_numeric(table: _Table, at: int) -> bool:
    """Mostly numbers (a stray word is then named by its line, not taken for a category)."""
    cells = [c for c in table.cells(at) if c.strip().lower() not in MISSING][:1000]
    numbers = sum(not math.isnan(_number(c) or 0.0) for c in cells)
    return bool(cells) and numbers >= 0.5 * len(cells)


def _covariate_block(table: _Table, names: list[str], fill: str
                     ) -> tuple[np.ndarray, list[str], int]:
    """The covariate columns as numbers: numeric ones as they are, a column of a few
    categories one-hot (``day_type=W``)."""
    blocks, labels, bad = [], [], 0
    for name in names:
        at = table.column(name)
        if _is_numeric(table, at):
            values, missing = _numbers(table, at, fill)
            blocks.append(values[:, None])
            labels.append(table.header[at])
            bad += missing
            continue
        cells = [c.strip() for c in table.cells(at)]
        categories = sorted(set(cells) - {""})
        if len(categories) > MAX_CATEGORIES:
            raise UserError(f"{table.path}: column {table.header[at]!r} is neither numbers nor "
                            f"a few categories ({len(categories)} distinct values)")
        blocks.append(np.array([[c == k for k in categories] for c in cells], dtype=float))
        labels += [f"{table.header[at]}={k}" for k in categories]
    width = sum(b.shape[1] for b in blocks)
    block = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(table.rows), width))
    return block, labels, bad


def _order_by_date(table: _Table, dates: np.ndarray, values: np.ndarray, covariates: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], int]:
    """Rows sorted by date; exact repeats of a row dropped; two different rows for one date
    refused. Returns the kept rows and how many repeats were dropped."""
    order = np.argsort(dates, kind="stable")
    keep, dropped = [], 0
    for i in order:
        if keep and dates[keep[-1]] == dates[i]:
            j = keep[-1]
            if table.rows[j] == table.rows[i]:
                dropped += 1
                continue
            raise UserError(f"{table.path}, line {table.lines[i]}: a second row for "
                            f"{dates[i].astype(datetime):%Y-%m-%d %H:%M:%S} (the first is "
                            f"line {table.lines[j]})")
        keep.append(i)
    return (dates[keep], values[keep], covariates[keep], [table.lines[i] for i in keep],
            dropped)


def _regular(path: Path, dates: np.ndarray, values: np.ndarray, covariates: np.ndarray,
             lines: list[int], fill: str, what: str) -> tuple[np.ndarray, ...]:
    """Times at a regular step; a missing one is refused (naming the line after the gap),
    or inserted as missing values with ``--fill``. Returns dates, values, covariates, step,
    and how many times were inserted."""
    step = infer_step(dates)
    if step is None:
        return dates, values, covariates, None, 0
    expected = _expected(dates, step)
    if len(expected) == len(dates) and (expected == dates).all():
        return dates, values, covariates, step, 0
    where = np.searchsorted(expected, dates)
    off = np.flatnonzero((where >= len(expected)) | (expected[np.minimum(
        where, len(expected) - 1)] != dates))
    if len(off):
        i = int(off[0])
        raise UserError(f"{path}, line {lines[i]}: {dates[i].astype(datetime)} is off the "
                        f"series' {step.describe()} steps{what}")
    if fill == "none":
        gap = int(np.flatnonzero(where != np.arange(len(where)))[0])
        missing = expected[gap]
        raise UserError(f"{path}, line {lines[gap]}: the time step before it "
                        f"({missing.astype(datetime)}{what}) is missing (pass --fill ffill, "
                        "interpolate or zero to fill such gaps)")
    full_values = np.full((len(expected),) + values.shape[1:], np.nan)
    full_cov = np.full((len(expected), covariates.shape[1]), np.nan)
    full_values[where] = values
    full_cov[where] = covariates
    return expected, full_values, full_cov, step, len(expected) - len(dates)


def _date_column(table: _Table, given: str | None) -> int | None:
    if given is not None:
        return table.column(given)
    folded = [h.strip().lower() for h in table.header]
    for name in DATE_NAMES:
        if name in folded:
            return folded.index(name)
    for at in range(len(table.header)):
        if not _is_numeric(table, at) and _date_format(table.cells(at)):
            return at
    return None


def _filled_note(counts: tuple[int, int], fill: str) -> list[str]:
    cells, times = counts
    if not (cells or times):
        return []
    how = {"ffill": "carried forward", "interpolate": "interpolated", "zero": "set to 0"}[fill]
    parts = [f"{cells:,} empty or non-numeric cells"] if cells else []
    parts += [f"{times:,} missing time steps"] if times else []
    return [f"filled {' and '.join(parts)} ({how})"]


# ------------------------------------------------------------------------------ the layouts
def _read_csv(path: Path, text: str, options: SeriesOptions) -> SeriesSet:
    table = _read_table(path, text)
    at_date = _date_column(table, options.date_column)
    taken = {at_date} if at_date is not None else set()
    if options.target:
        targets = [table.column(t) for t in options.target]
    else:
        targets = [i for i in range(len(table.header)) if i not in taken
                   and _is_numeric(table, i)]
        if len(targets) != 1:
            raise UserError(f"{path}: which column(s) to forecast? pass --target COL (the "
                            f"header has {', '.join(map(repr, table.header))})")
    for at in targets:
        if at == at_date:
            raise UserError(f"{path}: {table.header[at]!r} is the date column, not a target")
        if not _is_numeric(table, at):
            raise UserError(f"{path}: the target column {table.header[at]!r} does not hold "
                            "numbers")
    wanted = options.covariates or []
    if wanted == ["all"]:
        wanted = [h for i, h in enumerate(table.header) if i not in taken | set(targets)]
    for name in wanted:
        if table.column(name) in targets:
            raise UserError(f"{path}: {name!r} is a target; it cannot be a covariate too")
    values = np.empty((len(table.rows), len(targets)))
    bad = 0
    for k, at in enumerate(targets):
        values[:, k], missing = _numbers(table, at, options.fill)
        bad += missing
    covariates, names, missing = _covariate_block(table, wanted, options.fill)
    bad += missing
    notes, dates, step, inserted = [], None, None, 0
    lines = table.lines
    if at_date is not None:
        cells = table.cells(at_date)
        fmt = _date_format(cells)
        if fmt is None:
            raise UserError(f"{path}: the dates in column {table.header[at_date]!r} are in no "
                            f"layout seqgen reads (e.g. {cells[0].strip()!r}); use "
                            "YYYY-MM-DD [HH:MM:SS] or MM/DD/YYYY")
        dates = _parse_dates(cells, fmt, path, lines, table.header[at_date])
        dates, values, covariates, lines, dropped = _order_by_date(table, dates, values,
                                                                   covariates)
        if dropped:
            notes.append(f"{dropped:,} rows repeated an earlier row exactly: dropped")
        dates, values, covariates, step, inserted = _regular(path, dates, values, covariates,
                                                             lines, options.fill, "")
    if options.fill != "none":
        values, covariates = _fill(values, options.fill), _fill(covariates, options.fill)
        notes += _filled_note((bad, inserted), options.fill)
    series = [Series(table.header[at], values[:, k].copy(), covariates, dates)
              for k, at in enumerate(targets)]
    return SeriesSet(series, names, step, str(path.resolve()), "CSV with dates"
                     if dates is not None else "CSV", notes)


def _read_long(path: Path, text: str, options: SeriesOptions) -> SeriesSet:
    table = _read_table(path, text)
    folded = [h.strip().lower() for h in table.header]
    at_id = next((folded.index(n) for n in ID_NAMES if n in folded), None)
    at_ds = table.column(options.date_column) if options.date_column else next(
        (folded.index(n) for n in DATE_NAMES if n in folded), None)
    at_y = table.column(options.target[0]) if options.target else next(
        (folded.index(n) for n in VALUE_NAMES if n in folded), None)
    if None in (at_id, at_ds, at_y):
        raise UserError(f"{path}: the long layout needs unique_id, ds and y columns (the header "
                        f"has {', '.join(map(repr, table.header))})")
    wanted = options.covariates or []
    if wanted == ["all"]:
        wanted = [h for i, h in enumerate(table.header) if i not in (at_id, at_ds, at_y)]
    values, bad = _numbers(table, at_y, options.fill)
    covariates, names, missing = _covariate_block(table, wanted, options.fill)
    bad += missing
    ds_cells = table.cells(at_ds)
    fmt = None if all(_number(c) is not None and not math.isnan(_number(c))
                      for c in ds_cells[:500]) else _date_format(ds_cells)
    if fmt is None:  # integer time steps
        numbers = np.array([_number(c) for c in ds_cells], dtype=float)
        if np.isnan(numbers).any() or (numbers != np.round(numbers)).any():
            raise UserError(f"{path}: column {table.header[at_ds]!r} holds neither dates nor "
                            "whole-number time steps")
        stamps = numbers.astype("int64").astype("datetime64[s]")
    else:
        stamps = _parse_dates(ds_cells, fmt, path, table.lines, table.header[at_ds])
    groups: dict[str, list[int]] = {}
    for i, cell in enumerate(table.cells(at_id)):
        groups.setdefault(cell.strip(), []).append(i)
    series, steps, dropped, inserted = [], set(), 0, 0
    for name, rows in groups.items():
        sub = _Table(table.header, [table.rows[i] for i in rows],
                     [table.lines[i] for i in rows], path)
        d, v, c, lines, repeats = _order_by_date(sub, stamps[rows], values[rows],
                                                 covariates[rows])
        dropped += repeats
        d, v, c, step, added = _regular(path, d, v, c, lines, options.fill,
                                        f" of series {name!r}")
        inserted += added
        if options.fill != "none":
            v, c = _fill(v, options.fill), _fill(c, options.fill)
        steps.add(step)
        series.append(Series(name, v, c, d if fmt else None))
    notes = [f"{dropped:,} rows repeated an earlier row exactly: dropped"] if dropped else []
    if options.fill != "none":
        notes += _filled_note((bad, inserted), options.fill)
    step = steps.pop() if len(steps) == 1 and fmt else None
    return SeriesSet(series, names, step, str(path.resolve()), "long unique_id/ds/y", notes)


def _read_m4(path: Path, text: str, options: SeriesOptions) -> SeriesSet:
    """A row per series: its id, then its values; rows end early (padded with empty cells)."""
    table = _read_table(path, text)
    series, bad = [], 0
    for row, line in zip(table.rows, table.lines):
        cells = list(row[1:])
        while cells and not cells[-1].strip():
            cells.pop()
        values = np.empty(len(cells))
        for i, cell in enumerate(cells):
            value = _number(cell)
            if value is None or math.isnan(value):
                if options.fill == "none":
                    raise UserError(f"{path}, line {line}: {cell.strip()!r} at value {i + 1} of "
                                    f"series {row[0].strip()!r} is not a number (pass --fill "
                                    "to fill such cells)")
                value, bad = math.nan, bad + 1
            values[i] = value
        if options.fill != "none":
            values = _fill(values, options.fill)
        if len(values):
            series.append(Series(row[0].strip(), values, np.zeros((len(values), 0))))
    notes = _filled_note((bad, 0), options.fill) if options.fill != "none" else []
    return SeriesSet(series, [], None, str(path.resolve()), "M4 wide", notes)


def _read_lines(path: Path, text: str, options: SeriesOptions) -> SeriesSet:
    lines = split_lines(text)
    name, start = path.stem, 0
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and math.isnan(_number(lines[first]) or 0.0):
        name, start = lines[first].strip(), first + 1  # a header naming the series
    values, numbers, bad = [], [], 0
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        value = _number(line)
        if value is None or math.isnan(value):
            if options.fill == "none":
                raise UserError(f"{path}, line {number}: {line.strip()!r} is not a number "
                                "(one number per line; pass --fill to fill such lines)")
            value, bad = math.nan, bad + 1
        values.append(value)
        numbers.append(number)
    array = np.array(values, dtype=float)
    if options.fill != "none":
        array = _fill(array, options.fill)
    notes = _filled_note((bad, 0), options.fill) if options.fill != "none" else []
    return SeriesSet([Series(name, array, np.zeros((len(array), 0)))], [], None,
                     str(path.resolve()), "one number per line", notes)


_READERS = {"csv": _read_csv, "long": _read_long, "m4": _read_m4, "lines": _read_lines}


def detect_format(path: Path, text: str) -> str:
    first = next((line for line in split_lines(text) if line.strip()), "")
    cells = [c.strip().strip('"').lower() for c in re.split(r"[,\t]", first)]
    if len(cells) == 1:
        return "lines"
    if cells and all(re.fullmatch(r"v\d+", c) for c in cells):
        return "m4"
    if {"unique_id", "ds", "y"} <= set(cells):
        return "long"
    return "csv"


def read_series(path: str | Path, options: SeriesOptions | None = None) -> SeriesSet:
    """The series in ``path``, whichever layout it is in (``options.format``)."""
    options = options or SeriesOptions()
    path = Path(path)
    text = read_text(path, options.encoding)
    if not text.strip():
        raise UserError(f"{path} is empty")
    layout = detect_format(path, text) if options.format == "auto" else options.format
    data = _READERS[layout](path, text, options)
    if not data.series or not any(len(s) for s in data.series):
        raise UserError(f"{path} holds no values")
    return data


# ------------------------------------------------------------------------------ built in
SYNTHETIC = ("sines", "mackey-glass")


@dataclass
class SyntheticOptions:
    """``--synthetic NAME``: series generated from a seed, no file needed."""

    name: str = "sines"
    series: int = 10_000
    length: int = 60
    seed: int = 42

    def __post_init__(self) -> None:
        if self.name not in SYNTHETIC:
            raise UserError(f"unknown --synthetic {self.name!r}: choose one of "
                            f"{', '.join(SYNTHETIC)}")
        for name in ("series", "length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name} must be a positive whole number, got {value!r}")


def sine_sums(count: int, length: int, seed: int = 42) -> np.ndarray:
    """The generator of Hands-On Machine Learning (Géron), chapter 15: the sum of two sine
    waves of random frequency and phase, plus uniform noise; (count, length). With NumPy's
    legacy generator seeded as the book's notebook does, the same numbers."""
    rng = np.random.RandomState(seed)
    freq1, freq2, offsets1, offsets2 = rng.rand(4, count, 1)
    time = np.linspace(0, 1, length)
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rng.rand(count, length) - 0.5)
    return series.astype(np.float32).astype(np.float64)


def mackey_glass(length: int, seed: int = 42, tau: float = 17, a: float = 0.2, b: float = 0.1,
                 n: float = 10, x0: float = 1.2, h: float = 1.0) -> np.ndarray:
    """The Mackey–Glass delay equation dx/dt = a x(t−τ) / (1 + x(t−τ)ⁿ) − b x(t), with the
    reservoir-computing literature's τ = 17, a = 0.2, b = 0.1, n = 10, integrated by
    fourth-order Runge–Kutta with step ``h`` from a history near ``x0`` (seeded)."""
    def slope(x: float, delayed: float) -> float:
        return a * delayed / (1 + delayed ** n) - b * x

    rng = np.random.default_rng(seed)
    history = list(x0 + 0.2 * (rng.random(int(tau / h)) - 0.5))
    x, out = x0, np.empty(length)
    for i in range(length):
        out[i] = x
        delayed = history.pop(0) if history else 0.0
        history.append(x)
        k1 = h * slope(x, delayed)
        k2 = h * slope(x + k1 / 2, delayed)
        k3 = h * slope(x + k2 / 2, delayed)
        k4 = h * slope(x + k3, delayed)
        x += (k1 + 2 * k2 + 2 * k3 + k4) / 6
    return out


def synthetic_series(options: SyntheticOptions) -> SeriesSet:
    if options.name == "mackey-glass":
        values = np.stack([mackey_glass(options.length, options.seed + i)
                           for i in range(options.series)])
    else:
        values = sine_sums(options.series, options.length, options.seed)
    empty = np.zeros((options.length, 0))
    return SeriesSet([Series(f"sines{i}", row, empty) for i, row in enumerate(values)], [],
                     None, f"synthetic {options.name} (seed {options.seed})",
                     f"synthetic {options.name}")
