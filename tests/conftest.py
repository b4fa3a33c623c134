from pathlib import Path

import pytest
from helpers import SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own token cache, so no test sees another's files."""
    monkeypatch.setenv("SEQGEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def shakespeare_slice(tmp_path) -> Path:
    """The first 20k characters of Tiny Shakespeare from ../shared/data."""
    source = SHARED_DATA / "tinyshakespeare" / "input.txt"
    if not source.exists():
        pytest.skip("../shared/data is not beside the project")
    path = tmp_path / "shakespeare.txt"
    path.write_text(source.read_text(encoding="utf-8")[:20000], encoding="utf-8")
    return path


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 20, encoding="utf-8")
    return path
