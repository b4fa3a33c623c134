"""Shared test helpers: the real data folder and the CLI runner."""

import sys
from pathlib import Path
from unittest import mock

from typer.testing import CliRunner

from seqgen.cli import app

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
runner = CliRunner()


def invoke(*args, **kwargs):
    """Run ``seqgen ARGS...`` in-process; paths and numbers may be passed as they are.

    ``sys.argv`` is what a shell would give, since checkpoints record the command."""
    argv = [str(a) for a in args]
    with mock.patch.object(sys, "argv", ["seqgen", *argv]):
        return runner.invoke(app, argv, **kwargs)


def assert_user_error(result, text):
    """A user's mistake: exit code 2, one line on stderr naming it, no traceback."""
    assert result.exit_code == 2, result.output
    assert text in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
