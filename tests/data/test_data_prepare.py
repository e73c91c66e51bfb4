"""`prepare` end to end: layout, EOS separation, splits, determinism, resume, bad inputs, meta/shard reading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mmfree.data import prepare as prepare_mod
from mmfree.data.prepare import prepare
from mmfree.data.shards import load_meta, open_split
from mmfree.data.tokenizer import check_tokenizer_matches, load_tokenizer
from tests.data._data_corpus import make_docs


def write_jsonl(path: Path, docs: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return path


def dir_bytes(root: Path) -> dict[str, bytes]:
    """Every file prepare leaves in `root` (tokenizer included), keyed by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def split_at_eos(ids: np.ndarray, eos: int) -> list[list[int]]:
    ends = np.flatnonzero(ids == eos)
    assert len(ends) and ends[-1] == len(ids) - 1  # the stream ends with an EOS
    return [ids[a + 1 : b].tolist() for a, b in zip(np.concatenate([[-1], ends[:-1]]), ends)]


def test_layout_and_eos_separation(tmp_path: Path, tok_dir: Path) -> None:
    docs = make_docs(30)
    src = write_jsonl(tmp_path / "in.jsonl", docs)
    res = prepare([str(src)], tmp_path / "out", tokenizer=str(tok_dir), val_fraction=0.0, shard_bytes=400)
    out = tmp_path / "out"
    meta = json.loads((out / "meta.json").read_text())
    assert meta == load_meta(out) == res.meta
    assert (meta["format"], meta["version"], meta["dtype"], meta["vocab_size"], meta["eos_token_id"]) == (
        "mmfree-tokens",
        1,
        "uint16",
        320,
        2,
    )
    assert meta["tokenizer"] == {
        "name_or_path": str(tok_dir),
        "sha256": hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest(),
    }
    train = meta["splits"]["train"]
    assert len(train["shards"]) > 1
    assert train["shards"] == [f"train-{i:05d}.bin" for i in range(len(train["shards"]))]
    assert meta["splits"]["val"] == {"shards": [], "tokens": 0, "documents": 0, "bytes": 0}
    assert train["documents"] == 30
    assert train["bytes"] == sum(len(d.encode("utf-8")) for d in docs)

    tok = load_tokenizer(out / "tokenizer")
    check_tokenizer_matches(meta, tok)
    raw = np.concatenate([np.fromfile(out / s, dtype="<u2") for s in train["shards"]]).astype(np.int64)
    expected = [tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    assert split_at_eos(raw, 2) == expected
    assert train["tokens"] == len(raw) == sum(len(e) + 1 for e in expected)

    arr = open_split(out, "train")
    assert (len(arr), arr.tokens, arr.bytes, arr.documents) == (len(raw), len(raw), train["bytes"], 30)
    first_len = (out / train["shards"][0]).stat().st_size // 2
    piece = arr[first_len - 3 : first_len + 5]  # crosses a shard boundary
    assert piece.dtype == np.int64 and piece.tolist() == raw[first_len - 3 : first_len + 5].tolist()
    assert arr[-1] == 2 and arr[:].tolist() == raw.tolist()
    assert len(open_split(out, "val")) == 0


def test_split_is_by_document_and_reruns_are_identical(tmp_path: Path, tok_dir: Path) -> None:
    docs = make_docs(60, seed=1)
    src = write_jsonl(tmp_path / "in.jsonl", docs)
    kw = {"tokenizer": str(tok_dir), "val_fraction": 0.3, "shard_bytes": 1500, "show_progress": False}
    prepare([str(src)], tmp_path / "a", **kw)
    prepare([str(src)], tmp_path / "b", **kw)
    assert dir_bytes(tmp_path / "a") == dir_bytes(tmp_path / "b")

    tok = load_tokenizer(tmp_path / "a" / "tokenizer")
    meta = load_meta(tmp_path / "a")
    by_ids = {tuple(tok(d, add_special_tokens=False)["input_ids"]): d for d in docs}
    train = [by_ids[tuple(x)] for x in split_at_eos(open_split(tmp_path / "a", "train")[:], 2)]
    val = [by_ids[tuple(x)] for x in split_at_eos(open_split(tmp_path / "a", "val")[:], 2)]
    assert sorted(train + val) == sorted(docs) and not set(train) & set(val)
    assert 0 < len(val) < 40 and meta["splits"]["val"]["documents"] == len(val)
    # Documents keep their input order within a split.
    assert train == [d for d in docs if d in set(train)]
    # The split depends on the seed, not on the position or the other inputs.
    prepare([str(write_jsonl(tmp_path / "rev.jsonl", docs[::-1]))], tmp_path / "c", **kw)
    assert load_meta(tmp_path / "c")["splits"]["val"]["documents"] == len(val)
    prepare([str(src)], tmp_path / "d", **{**kw, "split_seed": 7})
    assert load_meta(tmp_path / "d")["splits"]["val"]["tokens"] != meta["splits"]["val"]["tokens"]


def test_resume_after_interrupt_matches_uninterrupted(
    tmp_path: Path, tok_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = make_docs(80, seed=2)
    src = write_jsonl(tmp_path / "in.jsonl", docs)
    kw = {"tokenizer": str(tok_dir), "val_fraction": 0.1, "shard_bytes": 1200, "show_progress": False}
    reference = prepare([str(src)], tmp_path / "ref", num_workers=2, **kw)
    assert reference.units_total >= 4

    real_finish = prepare_mod._UnitWriter.finish
    calls = {"n": 0}

    def crash_on_third(self: prepare_mod._UnitWriter, counts: dict[str, int]) -> dict[str, object]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_finish(self, counts)

    monkeypatch.setattr(prepare_mod._UnitWriter, "finish", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare([str(src)], tmp_path / "run", **kw)
    monkeypatch.setattr(prepare_mod._UnitWriter, "finish", real_finish)
    with pytest.raises(FileNotFoundError, match="did not finish: re-run `mmfree data prepare` to resume"):
        load_meta(tmp_path / "run")
    assert len(json.loads((tmp_path / "run" / "progress.json").read_text())["units"]) == 2

    resumed = prepare([str(src)], tmp_path / "run", **kw)
    assert resumed.units_resumed == 2 and resumed.units_total == reference.units_total
    assert dir_bytes(tmp_path / "run") == dir_bytes(tmp_path / "ref")
    again = prepare([str(src)], tmp_path / "run", **kw)  # already complete: nothing to do
    assert again.units_resumed == again.units_total and dir_bytes(tmp_path / "run") == dir_bytes(
        tmp_path / "ref"
    )


def test_changed_settings_need_overwrite(tmp_path: Path, tok_dir: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", make_docs(10))
    prepare([str(src)], tmp_path / "out", tokenizer=str(tok_dir), val_fraction=0.0, show_progress=False)
    with pytest.raises(ValueError, match="different inputs or settings; pass overwrite=True"):
        prepare([str(src)], tmp_path / "out", tokenizer=str(tok_dir), val_fraction=0.2, show_progress=False)
    res = prepare([str(src)], tmp_path / "out", tokenizer=str(tok_dir), val_fraction=0.2, overwrite=True)
    assert res.units_resumed == 0 and load_meta(tmp_path / "out")["splits"]["train"]["documents"] < 10


def test_trains_a_tokenizer_when_none_given(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    for i, doc in enumerate(make_docs(40, seed=3)):
        (tmp_path / "corpus" / f"f{i:02d}.txt").write_text(doc, encoding="utf-8")
    (tmp_path / "corpus" / "empty.txt").write_text("", encoding="utf-8")
    res = prepare(
        [str(tmp_path / "corpus")], tmp_path / "out", vocab_size=300, val_fraction=0.1, show_progress=False
    )
    assert (
        res.meta["vocab_size"] == 300
        and res.meta["splits"]["train"]["documents"] + res.meta["splits"]["val"]["documents"] == 40
    )
    assert res.skipped_files == [str((tmp_path / "corpus" / "empty.txt").resolve())]
    check_tokenizer_matches(res.meta, load_tokenizer(tmp_path / "out" / "tokenizer"))


def test_wikiextractor_and_gzip_through_prepare(tmp_path: Path, tok_dir: Path) -> None:
    import gzip

    with gzip.open(tmp_path / "wiki_00.gz", "wt", encoding="utf-8") as fh:
        for i in range(5):
            fh.write(f'<doc id="{i}" url="u" title="T{i}">\nT{i}\n\nBody {i} text.\n</doc>\n')
    res = prepare(
        [str(tmp_path / "*.gz")],
        tmp_path / "out",
        tokenizer=str(tok_dir),
        val_fraction=0.0,
        strip_wiki_title=True,
    )
    tok = load_tokenizer(tok_dir)
    got = [tok.decode(x) for x in split_at_eos(open_split(tmp_path / "out", "train")[:], 2)]
    assert got == [f"Body {i} text." for i in range(5)] and res.meta["splits"]["train"]["documents"] == 5


def test_bad_inputs(tmp_path: Path, tok_dir: Path) -> None:
    kw = {"tokenizer": str(tok_dir), "show_progress": False}
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        prepare([str(tmp_path / "empty.txt")], tmp_path / "o1", **kw)
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"blank\.txt holds no documents"):
        prepare([str(tmp_path / "blank.txt")], tmp_path / "o2", **kw)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no documents at all"):
        prepare([str(tmp_path / "d")], tmp_path / "o3", **kw)
    with pytest.raises(FileNotFoundError, match="input not found"):
        prepare([str(tmp_path / "missing.jsonl")], tmp_path / "o4", **kw)
    (tmp_path / "x.txt").write_text("ok", encoding="utf-8")
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        prepare([str(tmp_path / "x.txt")], tmp_path / "o5", val_fraction=1.0, **kw)
    with pytest.warns(UserWarning, match="no document fell into the val split"):
        prepare([str(tmp_path / "x.txt")], tmp_path / "o6", val_fraction=0.01, **kw)


def test_meta_and_shard_validation(tmp_path: Path, tok_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="create one with `mmfree data prepare`"):
        load_meta(tmp_path)
    src = write_jsonl(tmp_path / "in.jsonl", make_docs(10))
    out = tmp_path / "out"
    prepare([str(src)], out, tokenizer=str(tok_dir), val_fraction=0.0, show_progress=False)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match="version 99 is not supported"):
        load_meta(out)
    (out / "meta.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="not an mmfree data directory"):
        load_meta(out)
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="split must be one of"):
        open_split(out, "test")
    shard = out / meta["splits"]["train"]["shards"][0]
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"meta\.json says"):
        open_split(out, "train")
