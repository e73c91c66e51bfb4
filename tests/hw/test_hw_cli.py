"""`mmfree hw simulate` / `mmfree hw export` end to end on a trained tiny checkpoint, and their errors."""

from __future__ import annotations

import json

import numpy as np
import torch

from mmfree.cli import main


def test_simulate_reports_everything(checkpoint_dir, corpus, tmp_path, capsys) -> None:
    text = tmp_path / "held_out.txt"
    text.write_bytes(bytes(corpus[1][:400]).decode("utf-8", "ignore").encode())
    out = tmp_path / "sim.json"
    rc = main(["hw", "simulate", str(checkpoint_dir), "--text", str(text), "--max-tokens", "300",
               "--check-tokens", "2", "--output", str(out)])  # fmt: skip
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["bit_exact"] is True and rep["tokenizer"] == "bytes" and rep["tokens"] == 300
    assert rep["mults_ternary"] == 0 and rep["saturations"] == {}
    assert abs(rep["ppl_int"] / rep["ppl_float"] - 1) < 0.02
    assert rep["tokens_per_s"] > 0 and rep["joules_per_token"] > 0
    assert rep["ops_per_token"]["add32"] > 0 and "mul32x32" in rep["ops_per_token"]
    assert rep["bytes_per_token"]["weight_bytes"] > 0


def test_simulate_errors(checkpoint_dir, tmp_path, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text("hello there")
    assert main(["hw", "simulate", str(checkpoint_dir), "--text", str(text), "--cost", "warp_drive=1"]) == 1
    assert "unknown cost-model parameter 'warp_drive'" in capsys.readouterr().err
    assert main(["hw", "simulate", str(tmp_path), "--text", str(text)]) == 1
    assert "no config.json" in capsys.readouterr().err
    assert main(["hw", "simulate", str(checkpoint_dir)]) == 1
    assert "--text" in capsys.readouterr().err


def test_simulate_refuses_full_precision_head(tmp_path, capsys) -> None:
    from mmfree.models import MMFreeConfig, MMFreeForCausalLM

    cfg = MMFreeConfig(
        vocab_size=256, hidden_size=16, num_hidden_layers=1, intermediate_size=32, ternary_lm_head=False
    )
    MMFreeForCausalLM(cfg).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "t.txt").write_text("some text to score")
    assert main(["hw", "simulate", str(tmp_path / "ckpt"), "--text", str(tmp_path / "t.txt")]) == 1
    assert "ternary_lm_head" in capsys.readouterr().err


def test_export_cli_then_engine_from_export(checkpoint_dir, trained_model, tmp_path, capsys) -> None:
    from mmfree.hw.engine import Engine

    assert main(["hw", "export", str(checkpoint_dir), str(tmp_path / "img")]) == 0
    ids = np.frombuffer(b"To be, or not to be", dtype=np.uint8).astype(np.int64)
    np.testing.assert_array_equal(Engine.from_export(tmp_path / "img").forward(ids),
                                  Engine.from_model(trained_model).forward(ids))  # fmt: skip
    assert main(["hw", "export", str(checkpoint_dir), str(tmp_path / "img")]) == 1
    assert "not empty" in capsys.readouterr().err
    assert torch.is_tensor(trained_model.lm_head.weight)
