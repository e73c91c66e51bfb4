"""The embedded standard-library corpus: deterministic, capped, text only, no tests or site-packages."""

from __future__ import annotations

import pytest

from mmfree.data.embedded import stdlib_corpus, stdlib_root


def test_stdlib_corpus_is_deterministic_text() -> None:
    root = stdlib_root()
    files = stdlib_corpus()
    assert files == stdlib_corpus()
    rels = [p.relative_to(root).as_posix() for p in files]
    assert rels == sorted(rels) and len(set(rels)) == len(rels)
    assert "os.py" in rels and "json/decoder.py" in rels
    for rel in rels:
        parts = rel.split("/")
        assert not {"test", "tests", "site-packages", "__pycache__"} & set(parts), rel
        assert rel.endswith((".py", ".txt", ".rst"))
    total = sum(p.stat().st_size for p in files)
    assert 1_000_000 < total < 100_000_000
    assert all(p.stat().st_size > 0 for p in files)


def test_stdlib_corpus_cap() -> None:
    capped = stdlib_corpus(max_bytes=2_000_000)
    assert capped == stdlib_corpus(max_bytes=2_000_000)
    size = sum(p.stat().st_size for p in capped)
    assert 1_500_000 < size <= 2_000_000
    assert set(capped) < set(stdlib_corpus())
    # A hash-spread sample, not just the alphabetical start of the library.
    assert len({p.relative_to(stdlib_root()).parts[0][:1].lower() for p in capped}) > 10
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        stdlib_corpus(max_bytes=0)
