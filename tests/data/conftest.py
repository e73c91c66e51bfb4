"""Shared fixtures for the data-pipeline tests: a tiny byte-level BPE tokenizer (vocab 320)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data._data_corpus import make_docs


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer directory trained once per session on 200 tiny documents."""
    from mmfree.data.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(make_docs(200, seed=123), 320, out)
    return out
