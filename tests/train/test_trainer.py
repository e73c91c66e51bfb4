"""The training loop end to end on a tiny model (in-process): outputs, resume, guards, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from mmfree.train import TrainingError, run_training
from mmfree.train import trainer as trainer_mod
from mmfree.train.checkpoint import checkpoints
from mmfree.train.metrics import read_log


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_run_writes_logs_checkpoints_and_a_loadable_model(tiny: Any) -> None:
    cfg = tiny(max_steps=12, eval_every=6, save_every=4, keep=2, tensorboard=True)
    result = run_training(cfg)
    out = Path(cfg.out)
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 13))
    for r in records:
        assert {"step", "loss", "lr", "tokens", "tokens_per_s"} <= set(r)
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert evals[-1]["val_ppl"] == pytest.approx(torch.tensor(evals[-1]["val_loss"]).exp().item(), rel=1e-6)
    assert records[-1]["tokens"] == 12 * 4 * 32
    assert records[-1]["loss"] < records[0]["loss"]
    assert [p.name for p in checkpoints(out)] == ["step-00000008", "step-00000012"]
    assert (out / "loss.png").stat().st_size > 0 and any((out / "tb").iterdir())
    from transformers import AutoModelForCausalLM

    import mmfree.models

    model = AutoModelForCausalLM.from_pretrained(out / "final")
    assert isinstance(model, mmfree.models.MMFreeForCausalLM) and model.config.vocab_size == 300
    assert (out / "final" / "tokenizer.json").is_file()
    assert result.val is not None and result.val.loss == pytest.approx(evals[-1]["val_loss"])
    assert result.unigram_loss > 0 and result.sample.startswith("def")


def test_transformer_baseline_trains_with_the_same_loop(tiny: Any) -> None:
    cfg = tiny(arch="transformer", hidden_size=64, max_steps=4, sample_prompt="")
    run_training(cfg)
    config = json.loads((Path(cfg.out) / "final" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 300
    assert config["num_attention_heads"] == 1


def test_resume_continues_exactly(tiny: Any, tmp_path: Path) -> None:
    straight = tiny(max_steps=6, save_every=3, out=str(tmp_path / "a"))
    run_training(straight)
    broken = tiny(max_steps=6, save_every=3, keep=5, out=str(tmp_path / "b"))
    run_training(broken)
    # pretend the process died after the step-3 checkpoint: drop everything written later
    import shutil

    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000006")
    shutil.rmtree(tmp_path / "b" / "final")
    result = run_training(tiny(max_steps=6, save_every=3, keep=5, out=str(tmp_path / "b"), resume=True))
    assert result.resumed_from == 3
    a = [(r["step"], r["loss"], r["lr"]) for r in read_log(tmp_path / "a" / "log.jsonl")]
    b = [(r["step"], r["loss"], r["lr"]) for r in read_log(tmp_path / "b" / "log.jsonl")]
    assert a == b


def test_grad_accum_matches_a_bigger_batch(tiny: Any, tmp_path: Path) -> None:
    # micro-steps take consecutive windows of the same permutation, so 2 x 2 sees what 1 x 4 sees
    run_training(tiny(max_steps=3, batch_size=4, out=str(tmp_path / "big"), sample_prompt=""))
    run_training(tiny(max_steps=3, batch_size=2, grad_accum=2, out=str(tmp_path / "acc"), sample_prompt=""))
    big, acc = read_log(tmp_path / "big" / "log.jsonl"), read_log(tmp_path / "acc" / "log.jsonl")
    assert [r["tokens"] for r in acc] == [r["tokens"] for r in big]
    assert [r["loss"] for r in acc] == pytest.approx([r["loss"] for r in big], rel=1e-5)


def test_fresh_run_into_non_empty_dir_is_refused(tiny: Any, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--resume"):
        run_training(tiny(out=str(out)))
    assert _snapshot(out) == {"notes.txt": b"mine"}


def test_resume_with_other_config_changes_nothing(tiny: Any) -> None:
    cfg = tiny(max_steps=3, save_every=3, sample_prompt="")
    run_training(cfg)
    before = _snapshot(Path(cfg.out))
    with pytest.raises(ValueError, match="different config"):
        run_training(tiny(max_steps=3, batch_size=8, resume=True))
    assert _snapshot(Path(cfg.out)) == before


def test_nan_loss_stops_without_a_bad_checkpoint(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = trainer_mod.window_loss
    calls = {"n": 0}

    def poisoned(*args: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(trainer_mod, "window_loss", poisoned)
    cfg = tiny(max_steps=10, save_every=2, eval_every=0)
    with pytest.raises(TrainingError, match="diverged at step 5") as info:
        run_training(cfg)
    assert "step-00000004" in str(info.value)
    assert [p.name for p in checkpoints(Path(cfg.out))] == ["step-00000002", "step-00000004"]
    assert not (Path(cfg.out) / "final").exists()


def test_out_of_memory_names_the_fix(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(*args: Any) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(trainer_mod, "window_loss", oom)
    with pytest.raises(
        TrainingError, match=r"lower --batch-size or --seq-len.*--grad-accum.*--activation-checkpointing"
    ):
        run_training(tiny(max_steps=2))


def test_activation_checkpointing_gives_the_same_loss(tiny: Any, tmp_path: Path) -> None:
    plain = run_training(tiny(max_steps=2, out=str(tmp_path / "p"), sample_prompt=""))
    ckpt = run_training(
        tiny(max_steps=2, out=str(tmp_path / "c"), activation_checkpointing=True, sample_prompt="")
    )
    assert ckpt.final_loss == pytest.approx(plain.final_loss, rel=1e-5)


@pytest.mark.parametrize(
    "content,error,match",
    [
        (None, FileNotFoundError, "no-such"),
        (b"", ValueError, "empty"),
        (b"\x00\x01\x02binary\x00" * 100, ValueError, "binary"),
        ("caf\xe9 ".encode("latin-1") * 200, ValueError, "UTF-8"),
    ],
)
def test_bad_raw_inputs(tiny: Any, tmp_path: Path, content: bytes | None, error: type, match: str) -> None:
    path = tmp_path / ("no-such.txt" if content is None else "input.txt")
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "run"
    with pytest.raises(error, match=match):
        run_training(tiny(data=[str(path)], vocab_size=300, out=str(out)))
    assert not out.exists()


def test_tokenizer_or_vocab_mismatch(tiny: Any, tmp_path: Path) -> None:
    from mmfree.data.tokenizer import train_tokenizer

    train_tokenizer(["other text " * 50, "more words here"], 270, tmp_path / "tok")
    with pytest.raises(ValueError, match="tokenizer"):
        run_training(tiny(tokenizer=str(tmp_path / "tok")))
    with pytest.raises(ValueError, match="--vocab-size 512"):
        run_training(tiny(vocab_size=512))


def test_raw_text_is_prepared_into_the_run(tiny: Any, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"d{i:02d}.txt").write_text(f"document {i} says hello world number {i * 7}. " * 20)
    cfg = tiny(data=[str(docs)], vocab_size=280, max_steps=2, val_fraction=0.2, sample_prompt="")
    run_training(cfg)
    meta = json.loads((Path(cfg.out) / "data" / "meta.json").read_text())
    assert meta["vocab_size"] == 280
    assert json.loads((Path(cfg.out) / "final" / "config.json").read_text())["vocab_size"] == 280


def test_cli_reports_errors_and_summary(
    token_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfree.cli import main

    assert (
        main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--no-progress"])
        == 1
    )
    assert "mmfree train: error:" in capsys.readouterr().err
    args = ["train", "--data", str(token_dir), "--out", str(tmp_path / "ok"), "--hidden-size", "32", "--num-layers",
            "2", "--batch-size", "4", "--seq-len", "32", "--max-steps", "2", "--eval-tokens", "128", "--no-progress",
            "--no-tensorboard", "--sample-tokens", "3"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "validation loss" in text and "unigram baseline" in text and "sample: 'def" in text


def test_a_saved_model_that_differs_from_the_trained_one_fails_the_run(
    tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final model is reloaded and must compute the trained model's loss (the check that catches a
    weight cache gone stale, a wrong state dict or a lossy save)."""
    real = trainer_mod._save_final

    def lossy(out: Path, model: Any, state: dict[str, Any], tokenizer: Any) -> Path:
        head = state["lm_head.weight"]  # rows swapped: every logit moves to another token
        return real(out, model, {**state, "lm_head.weight": head.flip(0)}, tokenizer)

    monkeypatch.setattr(trainer_mod, "_save_final", lossy)
    with pytest.raises(TrainingError, match="the saved weights are not what was trained"):
        run_training(tiny(max_steps=2, sample_prompt=""))
