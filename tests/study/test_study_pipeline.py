"""End to end on CPU: corpus slice -> tokenizer and shards -> every batch of a tiny study -> report and plot."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from study.prepare import prepare_study_data
from study.report import main as report_main
from study.run import main as run_main
from tests.study.conftest import tiny_study


@pytest.fixture(scope="module")
def study_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepare the tiny data and run all batches of the tiny study once; returns the work folder."""
    from tests.conftest import SHARED

    work = tmp_path_factory.mktemp("study")
    info = prepare_study_data(
        work / "data",
        corpus=tiny_corpus,
        train="AA/wiki_00",
        val="AD/wiki_90",
        vocab_size=320,
        tokenizer_mb=1,
    )
    assert info["splits"]["train"]["shards"] == "AA/wiki_00"
    (work / "study.json").write_text(json.dumps(tiny_study()), encoding="utf-8")
    args = [
        "--config", str(work / "study.json"), "--data-dir", str(work / "data"),
        "--eval-dir", str(SHARED / "data" / "eval"), "--runs-dir", str(work / "runs"),
        "--results-dir", str(work / "results"), "--device", "cpu", "--threads", "2",
    ]  # fmt: skip
    (work / "args.json").write_text(json.dumps(args), encoding="utf-8")
    assert run_main(["--batch", "all", *args, "--bundle", str(work / "out" / "results.tgz")]) == 0
    return work


def _result(work: Path, name: str) -> dict[str, Any]:
    return json.loads((work / "results" / f"{name}.json").read_text(encoding="utf-8"))


def test_every_run_has_a_complete_result(study_run: Path) -> None:
    names = [
        "sweep-mmfree-xs-lr1e-2",
        "sweep-transformer-xs-lr1e-3",
        "mmfree-ys",
        "transformer-ys",
        "abl-gate-paper",
        "abl-no-halving",
        "lrcheck-mmfree-ys-x2",
        "lrcheck-transformer-ys-x2",
    ]
    for name in names:
        res = _result(study_run, name)
        assert res["status"] == "ok", res.get("error")
        assert 0 < res["val"]["loss"] < 10 and res["val"]["bpb"] > 0
        assert abs(res["saved_model_check"]["val_loss"] - res["val"]["loss"]) < 0.25  # saved = trained
        assert res["train"]["tokens_per_s"] > 0 and res["tokens"] == res["train"]["steps"] * 4 * 32
        assert set(res["eval"]) == {
            "lambada",
            "arc_easy",
            "arc_challenge",
            "hellaswag",
            "openbookqa",
            "piqa",
            "winogrande",
        }
        assert all(task["num_examples"] == 5 for task in res["eval"].values())
        assert res["data"]["train"]["shards"] == "AA/wiki_00" and res["data"]["val"]["shards"] == "AD/wiki_90"
        v, d = res["data"]["vocab_size"], res["hidden_size"]
        assert res["flops"]["param_flops"] == 6 * (res["params"]["non_embedding"] + d * v) * res["tokens"]
    assert _result(study_run, "mmfree-ys")["lr"] == 1e-2  # the best (only) sweep LR of MatMul-free
    assert _result(study_run, "lrcheck-mmfree-ys-x2")["lr"] == pytest.approx(2e-2)  # twice the sweep's LR
    assert _result(study_run, "lrcheck-transformer-ys-x2")["lr"] == pytest.approx(2e-3)
    same_size = {_result(study_run, n)["tokens"] for n in ("mmfree-ys", "transformer-ys", "abl-gate-paper")}
    assert len(same_size) == 1  # both architectures and the ablations train on the same tokens
    assert _result(study_run, "transformer-ys")["flops"]["attention_flops"] > 0
    summary = json.loads((study_run / "results" / "summary.json").read_text(encoding="utf-8"))
    assert {row["name"] for row in summary["runs"]} == set(names)
    with tarfile.open(study_run / "out" / "results.tgz") as tar:
        assert any(m.name.endswith("abl-no-halving.json") for m in tar.getmembers())


def test_ablations_change_what_they_say(study_run: Path) -> None:
    final = json.loads(
        (study_run / "runs" / "abl-gate-paper" / "final" / "config.json").read_text(encoding="utf-8")
    )
    assert final["gate_form"] == "paper"
    base = json.loads(
        (study_run / "runs" / "mmfree-ys" / "final" / "config.json").read_text(encoding="utf-8")
    )
    assert base["gate_form"] == "official"
    ref = {row[0]: row[3] for row in _result(study_run, "mmfree-ys")["train"]["curve"]}
    flat = {row[0]: row[3] for row in _result(study_run, "abl-no-halving")["train"]["curve"]}
    steps = max(ref)
    late = [s for s in ref if s > steps // 2 + 1 and ref[s] > 0]
    assert late and all(flat[s] == pytest.approx(2 * ref[s]) for s in late)  # no halving: twice the LR
    early = [s for s in ref if 1 < s <= steps // 2]
    assert all(flat[s] == pytest.approx(ref[s]) for s in early)


def test_rerun_skips_finished_runs_and_report_is_written(
    study_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = json.loads((study_run / "args.json").read_text(encoding="utf-8"))
    before = {
        p.name: p.stat().st_mtime_ns
        for p in (study_run / "results").glob("*.json")
        if p.name != "summary.json"
    }
    assert run_main(["--batch", "sizes", *args]) == 0
    assert capsys.readouterr().out.count("skipped") == 2
    after = {
        p.name: p.stat().st_mtime_ns
        for p in (study_run / "results").glob("*.json")
        if p.name != "summary.json"
    }
    assert before == after
    out, png = study_run / "study.md", study_run / "study_scaling.png"
    code = report_main(
        [
            "--results",
            str(study_run / "results"),
            "--out",
            str(out),
            "--plot",
            str(png),
            "--config",
            str(study_run / "study.json"),
        ]
    )
    assert code == 0
    text = out.read_text(encoding="utf-8")
    assert "Fewer than 3 sizes" in text and "no fit" in text
    assert "| mmfree-ys | MatMul-free |" in text and "| transformer-ys | Transformer++ |" in text
    assert "train shards `AA/wiki_00`" in text
    assert "- sweep: 2 of 2 runs done." in text
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_gpus_runs_children_in_parallel_after_their_sweep(
    study_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--gpus 2`: child processes, one run per slot; a run needing the sweep LR starts after the sweep."""
    args = json.loads((study_run / "args.json").read_text(encoding="utf-8"))
    results = tmp_path / "results"
    args[args.index("--results-dir") + 1] = str(results)
    args[args.index("--runs-dir") + 1] = str(tmp_path / "runs")
    only = [
        "--only",
        "sweep-mmfree-xs-lr1e-2",
        "--only",
        "mmfree-ys",
        "--only",
        "sweep-transformer-xs-lr1e-3",
    ]
    assert run_main(["--batch", "all", "--gpus", "2", *only, *args]) == 0
    out = capsys.readouterr().out
    sweep_done = out.index("[study] sweep-mmfree-xs-lr1e-2 (GPU")
    assert out.index("[study] mmfree-ys: started") > sweep_done
    started = [line.split(":")[0] for line in out.splitlines() if ": started on GPU" in line]
    assert started[:2] == ["[study] sweep-mmfree-xs-lr1e-2", "[study] sweep-transformer-xs-lr1e-3"]
    for name in ("sweep-mmfree-xs-lr1e-2", "sweep-transformer-xs-lr1e-3", "mmfree-ys"):
        res = json.loads((results / f"{name}.json").read_text(encoding="utf-8"))
        assert res["status"] == "ok", res.get("error")
        assert (tmp_path / "runs" / f"{name}.log").stat().st_size > 0
    ref = _result(study_run, "mmfree-ys")
    res = json.loads((results / "mmfree-ys.json").read_text(encoding="utf-8"))
    assert res["lr"] == ref["lr"] == 1e-2
    # The same run: same steps and LR schedule, same first batch on the same initial weights. Later losses
    # agree only to float noise: two CPU processes at once need not sum in the same order, and ternary
    # rounding turns a last-bit difference into a visible one within a few steps (seen: 8e-4 relative).
    assert res["train"]["steps"] == ref["train"]["steps"] and res["tokens"] == ref["tokens"]
    assert [row[3] for row in res["train"]["curve"]] == pytest.approx(
        [row[3] for row in ref["train"]["curve"]]
    )
    assert res["train"]["curve"][0][2] == pytest.approx(ref["train"]["curve"][0][2], rel=1e-5)
    assert res["val"]["loss"] == pytest.approx(ref["val"]["loss"], rel=5e-3)
    assert "transformer-ys" not in out


def test_gpus_rejects_bad_lists(capsys: pytest.CaptureFixture[str]) -> None:
    from study.parallel import parse_gpus

    assert parse_gpus("3") == ["0", "1", "2"] and parse_gpus("0,2") == ["0", "2"]
    for bad in ("0", "a,b", "1,1", ""):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(bad)


def test_a_result_at_another_lr_than_the_best_sweep_lr_is_stale(study_run: Path) -> None:
    """Once an extended sweep picks another LR, the runs that took the old one are run again."""
    from study.plan import load_study, plan_runs
    from study.run import Options, has_result

    study = load_study(study_run / "study.json")
    opts = Options(
        data_dir=study_run / "data", eval_dir=study_run, runs_dir=study_run / "runs",
        results_dir=study_run / "results", tasks=[], eval_limit=None, eval_batch_size=1, eval_dtype="float32",
    )  # fmt: skip
    results = json.loads((study_run / "results" / "summary.json").read_text(encoding="utf-8"))["runs"]
    results = [_result(study_run, row["name"]) for row in results]
    spec = next(s for s in plan_runs(study, "sizes") if s.name == "mmfree-ys")
    assert has_result(spec, opts, results)
    better = dict(_result(study_run, "sweep-mmfree-xs-lr1e-2"), name="sweep-mmfree-xs-lr5e-3", lr=5e-3)
    better["val"] = dict(better["val"], loss=better["val"]["loss"] - 1.0)
    assert not has_result(spec, opts, [*results, better])
    fixed = next(s for s in plan_runs(study, "sweep") if s.arch == "mmfree")
    assert has_result(fixed, opts, [*results, better])  # a sweep run's own LR never goes stale
    opts.force = True
    assert not has_result(spec, opts, results)
