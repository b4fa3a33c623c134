"""The ``seqgen`` command line: parse options, call the library, print. No logic lives here.

One module per task registers its commands on the shared app (``seqgen.cli.common``).
"""

from seqgen.cli import caption, classify, data, experiment, lm, tools, translate  # noqa: F401
from seqgen.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    app()
