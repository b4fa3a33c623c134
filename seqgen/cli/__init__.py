"""The ``seqgen`` command line: parse options, call the library, print. No logic lives here.

One module per task registers its commands on the shared app (``seqgen.cli.common``).
"""

from seqgen.cli import (  # noqa: F401
    caption,
    classify,
    data,
    experiment,
    forecast,
    lm,
    tools,
    translate,
)
from seqgen.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    app()
