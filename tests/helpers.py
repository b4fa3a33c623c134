"""Shared test helpers: the real data folder and the CLI runner."""

import socket
import sys
import threading
import time
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


class Running:
    """A uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
