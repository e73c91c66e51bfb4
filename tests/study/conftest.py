"""Fixtures of the study tests: a tiny Wikipedia corpus slice and a tiny study config derived from the real one."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

SLICE_BYTES = 200_000
SHARDS = ("AA/wiki_00", "AD/wiki_90")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ~200 KB (whole <doc>s) of AA/wiki_00 and AD/wiki_90 as a corpus folder with a MANIFEST.tsv."""
    from tests.conftest import SHARED

    src = SHARED / "data" / "corpus" / "wikipedia_en_2015"
    if not src.is_dir():
        pytest.skip(f"shared corpus not found at {src} (set MMFREE_SHARED)")
    out = tmp_path_factory.mktemp("corpus")
    rows = ["path\traw_bytes\traw_sha256\tgit_blob\tdocs\tgz_bytes"]
    for name in SHARDS:
        raw = gzip.decompress((src / f"{name}.gz").read_bytes())[:SLICE_BYTES]
        raw = raw[: raw.rfind(b"</doc>") + len(b"</doc>")] + b"\n"
        packed = gzip.compress(raw)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.gz").write_bytes(packed)
        rows.append(f"{name}\t{len(raw)}\t-\t-\t{raw.count(b'</doc>')}\t{len(packed)}")
    (out / "MANIFEST.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def tiny_study() -> dict[str, Any]:
    """The real study config shrunk to two tiny sizes, one LR each, two ablations, an x2 LR check, 5 eval examples."""
    from study.plan import DEFAULT_CONFIG

    study = json.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    study["train"].update(seq_len=32, batch_size=4, eval_tokens=512, log_every=1, checkpoints=1)
    study["tokens"] = {"per_param": 0.02, "max_epochs": 2.0}
    study["sizes"] = {"xs": {"hidden_size": 32, "num_layers": 2}, "ys": {"hidden_size": 64, "num_layers": 2}}
    study["sweep"] = {"size": "xs", "lr": {"mmfree": [1e-2], "transformer": [1e-3]}}
    study["scaling"]["sizes"] = ["xs", "ys"]
    study["ablations"].update(
        size="ys", variants={"gate-paper": {"gate_form": "paper"}, "no-halving": {"lr_halving": False}}
    )
    study["lr_check"] = {"size": "ys", "factors": [2.0]}
    study["eval"].update(limit=5, batch_size=8)
    return study
