"""`mmfree data prepare` and `mmfree tokenizer train` through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmfree.cli import main
from mmfree.data.shards import load_meta
from mmfree.data.tokenizer import load_tokenizer
from tests.data._data_corpus import make_docs


def test_prepare_and_tokenizer_train_commands(
    tmp_path: Path, tok_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "corpus.txt"
    src.write_text("\n\n".join(make_docs(20)), encoding="utf-8")
    argv = ["data", "prepare", str(src), str(tmp_path / "out"), "--tokenizer", str(tok_dir)]
    assert main([*argv, "--doc-separator", "blank", "--val-fraction", "0", "--no-progress"]) == 0
    assert load_meta(tmp_path / "out")["splits"]["train"]["documents"] == 20
    assert main(["tokenizer", "train", f"{src},{src}", str(tmp_path / "tok"), "--vocab-size", "300"]) == 0
    assert len(load_tokenizer(tmp_path / "tok")) == 300
    assert main(["data", "prepare", str(tmp_path / "missing.txt"), str(tmp_path / "o2")]) == 1
    assert "input not found" in capsys.readouterr().err
