"""Input resolution and document reading: every format, gzip, directories, globs, WikiExtractor, bad inputs."""

from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path

import pytest

from mmfree.data.sources import iter_documents, parse_hf_spec, resolve_inputs


def docs_of(inputs: list[str], **opts: object) -> list[str]:
    return [doc for src in resolve_inputs(inputs) for doc in iter_documents(src, **opts)]


def test_txt_is_one_document_per_file_unless_separated(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("first para\nline two\n\n\nsecond para\n  \nthird\n", encoding="utf-8")
    assert docs_of([str(path)]) == ["first para\nline two\n\n\nsecond para\n  \nthird\n"]
    assert docs_of([str(path)], doc_separator="blank") == ["first para\nline two", "second para", "third"]
    assert docs_of([str(path)], doc_separator="line") == ["first para", "line two", "second para", "third"]
    assert docs_of([str(path)], doc_separator="para") == [
        "first ",
        "\nline two\n\n\nsecond ",
        "\n  \nthird\n",
    ]


def test_jsonl_json_and_text_field(tmp_path: Path) -> None:
    rows = [{"text": "alpha", "body": "x"}, {"text": None, "body": "y"}, {"text": "beta", "body": "z"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert docs_of([str(tmp_path / "a.jsonl")]) == ["alpha", "beta"]
    assert docs_of([str(tmp_path / "a.jsonl")], text_field="body") == ["x", "y", "z"]
    (tmp_path / "b.json").write_text(json.dumps(rows), encoding="utf-8")
    assert docs_of([str(tmp_path / "b.json")]) == ["alpha", "beta"]
    (tmp_path / "c.json").write_text(json.dumps(["one", "two"]), encoding="utf-8")
    assert docs_of([str(tmp_path / "c.json")]) == ["one", "two"]
    (tmp_path / "d.json").write_text('{"text": "l1"}\n{"text": "l2"}\n', encoding="utf-8")
    assert docs_of([str(tmp_path / "d.json")]) == ["l1", "l2"]


def test_gzip_versions(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("zipped text ü")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write('{"text": "zipped row"}\n')
    assert docs_of([str(tmp_path / "a.txt.gz"), str(tmp_path / "b.jsonl.gz")]) == [
        "zipped text ü",
        "zipped row",
    ]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["p1", None, "p2"], "n": [1, 2, 3]}), tmp_path / "a.parquet")
    assert docs_of([str(tmp_path / "a.parquet")]) == ["p1", "p2"]
    with pytest.raises(ValueError, match="no column 'body'"):
        docs_of([str(tmp_path / "a.parquet")], text_field="body")


def test_directories_and_globs_recurse_sorted(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("A", encoding="utf-8")
    (tmp_path / "b" / "deep" / "c.txt").write_text("C", encoding="utf-8")
    (tmp_path / "b" / "wiki_00").write_text("B", encoding="utf-8")
    (tmp_path / "b" / "MANIFEST.tsv").write_text("not text input", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("H", encoding="utf-8")
    assert docs_of([str(tmp_path)]) == ["A", "C", "B"]
    assert docs_of([str(tmp_path / "**" / "*.txt")]) == ["A", "C"]
    # The same file reached twice (explicitly and through the directory) is read once.
    assert docs_of([str(tmp_path / "a.txt"), str(tmp_path)]) == ["A", "C", "B"]


WIKI = (
    '<doc id="12" url="http://x/wiki?curid=12" title="Anarchism">\nAnarchism\n\nAnarchism is a philosophy.\n'
    "History.\nIt began long ago.\n</doc>\n"
    '<doc id="25" url="http://x/wiki?curid=25" title="Autism">\nAutism\n\nAutism is a condition.\n</doc>\n'
)


def test_wikiextractor_markup(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "wiki_00.gz", "wt", encoding="utf-8") as fh:
        fh.write(WIKI)
    docs = docs_of([str(tmp_path / "wiki_00.gz")])
    assert docs == [
        "Anarchism\n\nAnarchism is a philosophy.\nHistory.\nIt began long ago.",
        "Autism\n\nAutism is a condition.",
    ]
    assert docs_of([str(tmp_path)], strip_wiki_title=True) == [
        "Anarchism is a philosophy.\nHistory.\nIt began long ago.",
        "Autism is a condition.",
    ]
    assert len(docs_of([str(tmp_path)], markup="none")) == 1


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input not found"):
        resolve_inputs([str(tmp_path / "nope.txt")])
    with pytest.raises(FileNotFoundError, match="matched no files"):
        resolve_inputs([str(tmp_path / "*.jsonl")])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"abc")
    with pytest.raises(FileNotFoundError, match="holds no readable files"):
        resolve_inputs([str(tmp_path / "d")])
    with pytest.raises(ValueError, match="no inputs"):
        resolve_inputs([])


def test_binary_and_non_utf8_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(ValueError, match=r"bin\.txt looks like a binary file"):
        docs_of([str(tmp_path / "bin.txt")])
    (tmp_path / "latin.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.txt is not valid UTF-8.*iconv"):
        docs_of([str(tmp_path / "latin.txt")])
    (tmp_path / "fake.txt.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match=r"fake\.txt\.gz: cannot decompress"):
        docs_of([str(tmp_path / "fake.txt.gz")])


def test_bad_json_rows_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "ok"}\n{"text": broken}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.jsonl:2: invalid JSON"):
        docs_of([str(tmp_path / "a.jsonl")])
    (tmp_path / "b.jsonl").write_text('{"content": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"b\.jsonl:1: no field 'text' \(fields: 'content'\)"):
        docs_of([str(tmp_path / "b.jsonl")])


def test_hf_spec_parsing() -> None:
    assert parse_hf_spec("hf:wikitext:wikitext-2-raw-v1@validation") == (
        "wikitext",
        "wikitext-2-raw-v1",
        "validation",
    )
    assert parse_hf_spec("hf:roneneldan/TinyStories") == ("roneneldan/TinyStories", None, "train")
    with pytest.raises(ValueError, match="expected hf:NAME"):
        parse_hf_spec("hf:@train")


def test_hf_without_datasets_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="needs the `datasets` package: pip install datasets"):
        docs_of(["hf:roneneldan/TinyStories"])


def test_hf_streaming_and_network_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def load_dataset(name: str, config: str | None, split: str, streaming: bool) -> list[dict[str, str]]:
        calls.append((name, config, split, streaming))
        return [{"text": "row one"}, {"text": "row two"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert docs_of(["hf:org/set:cfg@val"]) == ["row one", "row two"]
    assert calls == [("org/set", "cfg", "val", True)]

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(
        ConnectionError, match=r"could not stream Hugging Face dataset 'hf:org/set'.*no network"
    ):
        docs_of(["hf:org/set"])
