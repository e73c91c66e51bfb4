"""Study plan and shard selection: run lists, parameter counts against the formula, token budgets, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.plan import count_params, flops, load_study, lr_tag, plan_runs, token_budget
from study.prepare import Shard, describe_shards, read_manifest, select_shards
from study.run import main as run_main

MANIFEST = [Shard(f"{d}/wiki_{i:02d}", 1000 + i, 400 + i, 3) for d in ("AA", "AB") for i in range(5)]


def test_select_and_describe_shards() -> None:
    chosen = select_shards("AA/wiki_03..AB/wiki_01, AB/wiki_04", MANIFEST)
    assert [s.name for s in chosen] == ["AA/wiki_03", "AA/wiki_04", "AB/wiki_00", "AB/wiki_01", "AB/wiki_04"]
    assert describe_shards(chosen, MANIFEST) == "AA/wiki_03..AB/wiki_01,AB/wiki_04"
    assert describe_shards(select_shards("AA/wiki_02", MANIFEST), MANIFEST) == "AA/wiki_02"
    with pytest.raises(ValueError, match="not in the manifest"):
        select_shards("AA/wiki_07", MANIFEST)
    with pytest.raises(ValueError, match="runs backwards"):
        select_shards("AB/wiki_01..AA/wiki_03", MANIFEST)


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"MANIFEST\.tsv"):
        read_manifest(tmp_path)
    (tmp_path / "MANIFEST.tsv").write_text("path\traw_bytes\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lacks one of the columns"):
        read_manifest(tmp_path)


def test_study_config_plans_every_batch() -> None:
    study = load_study()
    names = [r.name for r in plan_runs(study, "all")]
    n_sweep = sum(len(v) for v in study["sweep"]["lr"].values())
    n_sizes = len(study["scaling"]["archs"]) * (len(study["scaling"]["sizes"]) - 1)
    n_check = len(study["scaling"]["archs"]) * len(study["lr_check"]["factors"])
    assert len(names) == n_sweep + n_sizes + len(study["ablations"]["variants"]) + n_check
    assert len(set(names)) == len(names)
    assert "sweep-mmfree-s-lr1.5e-3" in names and "transformer-l" in names and "abl-no-halving" in names
    assert all(r.reference == "mmfree-m" for r in plan_runs(study, "ablations"))
    check = plan_runs(study, "lrcheck")
    assert {(r.reference, r.lr_factor, r.lr) for r in check if r.arch == "mmfree"} == {
        ("mmfree-l", 0.5, None),
        ("mmfree-l", 2.0, None),
    }
    assert lr_tag(0.0003) == "3e-4"
    with pytest.raises(ValueError, match="unknown batch"):
        plan_runs(study, "everything")


@pytest.mark.parametrize(("d", "layers"), [(256, 6), (512, 6)])
def test_transformer_params_match_the_formula(d: int, layers: int) -> None:
    from mmfree.layers.glu import glu_intermediate_size

    inter = glu_intermediate_size(d, 4)
    counts = count_params("transformer", d, layers, 16384)
    per_layer = 4 * d * d + 3 * d * inter + 2 * d  # q, k, v, o; gate, up, down; two norms
    assert counts["non_embedding"] == layers * per_layer + d  # + the final norm
    assert counts["embedding"] == counts["lm_head"] == 16384 * d
    mm = count_params("mmfree", d, layers, 16384)
    assert abs(mm["non_embedding"] - counts["non_embedding"]) / counts["non_embedding"] < 0.01


def test_token_budget_is_capped_by_the_data() -> None:
    study = {"train": {"batch_size": 8, "seq_len": 16}, "tokens": {"per_param": 20, "max_epochs": 2.0}}
    free = token_budget(study, non_embedding=1000, train_tokens=10**6)
    assert free["tokens"] == (20_000 // 128) * 128 and not free["data_capped"]
    capped = token_budget(study, non_embedding=10**6, train_tokens=50_000)
    assert capped["data_capped"] and capped["tokens"] <= 100_000 and capped["epochs"] <= 2.0
    assert capped["tokens"] % 128 == 0
    with pytest.raises(ValueError, match="less than one step"):
        token_budget(study, non_embedding=1, train_tokens=10)
    fl = flops("transformer", {"non_embedding": 1000}, 32, 2, 100, 64, 512)
    assert fl["param_flops"] == 6 * (1000 + 32 * 100) * 512
    assert fl["attention_flops"] == 6 * 2 * 64 * 32 * 512


def test_run_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--batch", "all", "--plan", "--data-dir", str(tmp_path / "none")]) == 2
    assert "study.prepare" in capsys.readouterr().err
    assert run_main(["--batch", "sizes", "--lr", "rnn=1e-3", "--plan", "--train-tokens", "1000000"]) == 2
    assert "ARCH=VALUE" in capsys.readouterr().err
    assert run_main(["--batch", "sizes", "--config", str(tmp_path / "missing.json")]) == 2
    assert "not found" in capsys.readouterr().err
