"""Reading the text a user gives: files and standard input, decoded with ``--encoding``, cut
into lines at line feeds only.

Line feeds only, because ``str.splitlines`` also breaks at U+2028, U+0085, \\x1c–\\x1e and
form feeds: a translation pair holding a Unicode line separator would be cut in two, and a
cp1252 file read as Latin-1 would lose its "…" (byte 0x85). Every text format seqgen reads
(pairs, labelled text, caption files, series) goes through here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqgen.errors import UserError


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


def split_lines(text: str) -> list[str]:
    """Lines split at line feeds (and CR LF), nowhere else; a final line feed ends the last
    line rather than starting an empty one."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """A text file's lines (see ``split_lines``)."""
    return split_lines(read_text(path, encoding))


def read_stdin_lines(encoding: str = "utf-8") -> list[str]:
    """Every line of standard input, decoded with ``--encoding`` (not the locale's)."""
    return split_lines(decode_text(sys.stdin.buffer.read(), encoding, "standard input"))


def stdin_line_stream(encoding: str = "utf-8"):
    """Lines of standard input one at a time, as they are typed (an interactive session)."""
    for raw in iter(sys.stdin.buffer.readline, b""):
        yield decode_text(raw, encoding, "standard input").rstrip("\r\n")
