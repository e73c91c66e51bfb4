"""Tokenizer training, loading, fingerprinting and the shard/tokenizer match check."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from mmfree.data.tokenizer import (
    check_tokenizer_matches,
    load_tokenizer,
    tokenizer_fingerprint,
    train_tokenizer,
)
from tests.data._data_corpus import make_docs


def test_trained_tokenizer_loads_with_autotokenizer(tok_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert len(tok) == 320
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    text = "the gate closes, café ü! 123"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8"))  # merges were learned from the corpus


def test_fingerprint_is_stable_and_matches_the_file(tok_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(tok_dir)
    file_sha = hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert tokenizer_fingerprint(tok) == file_sha
    tok.save_pretrained(str(tmp_path / "copy"))
    assert tokenizer_fingerprint(load_tokenizer(tmp_path / "copy")) == file_sha


def test_train_from_files_and_texts(tmp_path: Path) -> None:
    docs = make_docs(60, seed=5)
    plain = tmp_path / "a.txt"
    plain.write_text("\n".join(docs[:30]), encoding="utf-8")
    zipped = tmp_path / "b.txt.gz"
    with gzip.open(zipped, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(docs[30:]))
    from_files = train_tokenizer([plain, zipped], 300, tmp_path / "f")
    from_texts = train_tokenizer(["\n".join(docs[:30]), "\n".join(docs[30:])], 300, tmp_path / "t")
    assert tokenizer_fingerprint(from_files) == tokenizer_fingerprint(from_texts)
    assert (tmp_path / "f" / "tokenizer.json").is_file()


def test_train_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too small for a byte-level BPE"):
        train_tokenizer(["abc"], 100, tmp_path / "x")
    with pytest.raises(ValueError, match="got no texts"):
        train_tokenizer([], 300, tmp_path / "y")
    with pytest.raises(FileNotFoundError, match="training file not found"):
        train_tokenizer([tmp_path / "missing.txt"], 300, tmp_path / "z")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        load_tokenizer("./no/such/dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no tokenizer\.json"):
        load_tokenizer(tmp_path / "empty")
    with pytest.raises(
        OSError, match=r"could not load tokenizer 'no-such-org/no-such-tokenizer'.*local tokenizer"
    ):
        load_tokenizer("no-such-org/no-such-tokenizer", local_files_only=True)


def test_check_tokenizer_matches(tok_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(tok_dir)
    file_sha = hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest()
    meta = {"vocab_size": 320, "eos_token_id": 2, "tokenizer": {"name_or_path": "t", "sha256": file_sha}}
    check_tokenizer_matches(meta, tok)
    same_size = train_tokenizer(make_docs(50, seed=9), 320, tmp_path / "other")
    with pytest.raises(ValueError, match=r"fingerprint .* does not match"):
        check_tokenizer_matches(meta, same_size)
    other_size = train_tokenizer(make_docs(50, seed=9), 300, tmp_path / "small")
    with pytest.raises(ValueError, match="vocab size 300 does not match the data's vocab_size 320"):
        check_tokenizer_matches(meta, other_size)
