from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own token cache, so no test sees another's files."""
    monkeypatch.setenv("SEQGEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 20, encoding="utf-8")
    return path
