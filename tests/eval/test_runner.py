"""run_eval / evaluate end to end on a saved tiny model, JSON output, the table, and the lm-eval helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mmfree.eval import PAPER_TASKS, evaluate, format_results, harness_command, run_eval
from mmfree.eval.harness import lm_eval_available


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "evaldata"
    (root / "arc_easy").mkdir(parents=True)
    (root / "winogrande").mkdir()
    arc = [
        {
            "query": "Question: Which gas do plants take in?",
            "choices": ["carbon dioxide", "oxygen", "dog"],
            "gold": 0,
        },
        {
            "query": "Question: What does the fox do?",
            "choices": ["jumps", "sleeps over the lazy dog"],
            "gold": 1,
        },
        {"query": "Question: How do you boil water?", "choices": ["heat it", "cool it", "stone"], "gold": 0},
    ]
    (root / "arc_easy" / "arc_easy.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in arc), encoding="utf-8"
    )
    wino = [
        {
            "sentence": "Sarah beat Maria so _ got hard cases.",
            "option1": "Sarah",
            "option2": "Maria",
            "answer": "2",
        }
    ]
    (root / "winogrande" / "dev.jsonl").write_text(json.dumps(wino[0]) + "\n", encoding="utf-8")
    (root / "text.txt").write_text("The quick brown fox jumps over the lazy dog.", encoding="utf-8")
    return root


def test_run_eval_writes_json_matching_in_process_evaluate(
    saved_model_dir: Path, model: torch.nn.Module, tokenizer: Any, data_dir: Path, tmp_path: Path
) -> None:
    tasks = ["arc_easy", "winogrande", f"lm:{data_dir / 'text.txt'}"]
    out = tmp_path / "res" / "eval.json"
    res = run_eval(
        str(saved_model_dir), tasks, limit=2, data_dir=str(data_dir), batch_size=2, output=str(out)
    )
    saved = json.loads(out.read_text())
    assert saved["model_dir"] == str(saved_model_dir.resolve()) and saved["limit"] == 2 and "date" in saved
    arc = saved["results"]["arc_easy"]
    assert arc["num_examples"] == 2 and set(arc["metrics"]) == {"acc", "acc_norm"} == set(arc["stderr"])
    assert saved["results"]["winogrande"]["num_examples"] == 1 and set(
        saved["results"]["winogrande"]["metrics"]
    ) == {"acc"}
    assert set(saved["results"][tasks[2]]["metrics"]) == {"loss", "perplexity", "bits_per_byte"}
    direct = evaluate(model, tokenizer, tasks, limit=2, data_dir=str(data_dir), batch_size=3, progress=False)
    for task in tasks:
        for metric, value in direct["results"][task]["metrics"].items():
            assert math.isclose(res["results"][task]["metrics"][metric], value, rel_tol=1e-4), (task, metric)
    table = format_results(res)
    assert "arc_easy" in table and "acc_norm" in table and "bits_per_byte" in table and "limit: 2" in table


def test_bad_tasks_fail_before_loading_the_model(data_dir: Path, tmp_path: Path) -> None:
    missing_model = str(tmp_path / "no_model")
    with pytest.raises(ValueError, match="unknown task 'boolq'"):
        run_eval(missing_model, ["arc_easy", "boolq"], data_dir=str(data_dir))
    with pytest.raises(FileNotFoundError, match=r"no data file for task 'piqa'"):
        run_eval(missing_model, ["piqa"], data_dir=str(data_dir))
    with pytest.raises(FileNotFoundError, match="lm task file not found"):
        run_eval(missing_model, [f"lm:{tmp_path / 'nope.txt'}"], data_dir=str(data_dir))
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        run_eval(missing_model, ["arc_easy"], data_dir=str(data_dir))


def test_harness_command_reproduces_paper_table() -> None:
    cmd = harness_command("/ckpt/mmfree-370m", list(PAPER_TASKS))
    assert cmd.startswith("python -m mmfree.eval.harness")
    assert "--model mmfree" in cmd and "pretrained=/ckpt/mmfree-370m,add_bos_token=False" in cmd
    assert (
        "--tasks arc_easy,arc_challenge,hellaswag,openbookqa,piqa,winogrande" in cmd
        and "--num_fewshot 0" in cmd
    )
    assert "lambada_openai" in harness_command("d", ["lambada"])
    with pytest.raises(ValueError, match="mmfree-only task"):
        harness_command("d", ["lm:/x.txt"])


def test_lm_eval_model_type_needs_lm_eval() -> None:
    import mmfree.eval.harness as harness

    if lm_eval_available():
        from lm_eval.models.huggingface import HFLM

        assert issubclass(harness.MMFreeLM, HFLM)
    else:
        with pytest.raises(ImportError, match=r"pip install 'mmfree\[eval\]'"):
            harness.MMFreeLM  # noqa: B018


def test_cli_arguments_run_and_print_table(
    saved_model_dir: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfree.cli import main

    out = tmp_path / "cli.json"
    argv = ["eval", str(saved_model_dir), "--tasks", "arc_easy", "--limit", "1", "--data-dir", str(data_dir)]
    assert main([*argv, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "arc_easy" in printed and "acc_norm" in printed
    assert json.loads(out.read_text())["results"]["arc_easy"]["num_examples"] == 1
    assert main([*argv, "--harness-command"]) == 0
    assert "--model_args" in capsys.readouterr().out
