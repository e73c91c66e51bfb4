"""Language-modelling metrics checked against hand computations (full pass, per-token windows)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from mmfree.eval.lm import evaluate_lm, lm_mode_for, score_sliding_window

TEXT = "The quick brown fox jumps over the lazy dog. Caf\u00e9 na\u00efve r\u00e9sum\u00e9!\nThe dog sleeps."


def full_pass_nll(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """Per-token NLL of ids[1:] from one forward pass over everything (float64)."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]


def test_bits_per_byte_matches_hand_computation(
    model: torch.nn.Module, tokenizer: Any, tmp_path: Path
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    ids = [tokenizer.bos_token_id, *tokenizer(TEXT, add_special_tokens=False)["input_ids"]]
    nll = full_pass_nll(model, ids)
    n_bytes = len(TEXT.encode("utf-8"))
    assert n_bytes > len(TEXT)  # non-ASCII text: bytes, not characters
    for mode, extra in (("window", {}), ("recurrent", {"chunk_size": 7})):
        res = evaluate_lm(model, tokenizer, path, mode=mode, progress=False, **extra)
        assert res["num_tokens"] == len(ids) - 1 and res["num_bytes"] == n_bytes
        assert math.isclose(
            res["metrics"]["bits_per_byte"], float(nll.sum()) / math.log(2) / n_bytes, rel_tol=1e-4
        )
        assert math.isclose(res["metrics"]["loss"], float(nll.mean()), rel_tol=1e-4)
        assert math.isclose(res["metrics"]["perplexity"], math.exp(float(nll.mean())), rel_tol=1e-4)
        se = float(nll.std()) / math.sqrt(nll.numel())
        assert math.isclose(res["stderr"]["loss"], se, rel_tol=1e-3)


def test_sliding_window_scores_each_token_once_with_its_window(
    model: torch.nn.Module, tokenizer: Any
) -> None:
    ids = [tokenizer.bos_token_id, *tokenizer(TEXT, add_special_tokens=False)["input_ids"]]
    window, stride = 8, 4
    got = score_sliding_window(model, torch.tensor(ids), window, stride, batch_size=3)
    assert got.numel() == len(ids) - 1
    for t in range(1, len(ids)):
        # token t is scored by the first window reaching it: k = 0 if t < window, else (t - window) // stride + 1
        begin = 0 if t < window else ((t - window) // stride + 1) * stride
        with torch.no_grad():
            logits = model(torch.tensor([ids[begin:t]])).logits[0, -1].double()
        ref = -float(torch.log_softmax(logits, dim=-1)[ids[t]])
        assert math.isclose(float(got[t - 1]), ref, rel_tol=1e-4, abs_tol=1e-4), t


class NoCacheModel(torch.nn.Module):
    """Wraps a causal LM and returns logits only (no cache), like a model without incremental state."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = SimpleNamespace(model_type="mmfree")
        self.calls: list[int] = []

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        self.calls.append(input_ids.shape[1])
        return SimpleNamespace(logits=self.inner(input_ids, use_cache=False).logits)


def test_recurrent_falls_back_to_one_full_pass_without_cache(
    model: torch.nn.Module, tokenizer: Any, tmp_path: Path
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    wrapped = NoCacheModel(model)
    assert lm_mode_for(wrapped) == "recurrent"
    res = evaluate_lm(wrapped, tokenizer, path, chunk_size=5, progress=False)
    ids = [tokenizer.bos_token_id, *tokenizer(TEXT, add_special_tokens=False)["input_ids"]]
    assert res["mode"] == "recurrent" and wrapped.calls == [5, len(ids) - 1]
    assert math.isclose(res["metrics"]["loss"], float(full_pass_nll(model, ids).mean()), rel_tol=1e-4)


def test_jsonl_documents_and_token_limit(model: torch.nn.Module, tokenizer: Any, tmp_path: Path) -> None:
    texts = ["The quick brown fox.", "In my palm is a clear stone."]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    nlls = [full_pass_nll(model, [1, *tokenizer(t, add_special_tokens=False)["input_ids"]]) for t in texts]
    res = evaluate_lm(model, tokenizer, path, progress=False)
    total = float(sum(n.sum() for n in nlls))
    assert res["num_examples"] == 2 and res["num_tokens"] == sum(n.numel() for n in nlls)
    assert math.isclose(res["total_nll"], total, rel_tol=1e-4)
    assert res["num_bytes"] == sum(len(t.encode()) for t in texts)
    limited = evaluate_lm(model, tokenizer, path, limit=3, progress=False)
    assert limited["num_tokens"] == 3 and math.isclose(
        limited["total_nll"], float(nlls[0][:3].sum()), rel_tol=1e-4
    )
    assert limited["num_bytes"] == len(tokenizer.decode(tokenizer(texts[0])["input_ids"][:3]).encode())


def test_prepared_shards(model: torch.nn.Module, tokenizer: Any, tmp_path: Path) -> None:
    ids = tokenizer(TEXT + " " + TEXT, add_special_tokens=False)["input_ids"]
    half = len(ids) // 2
    np.asarray(ids[:half], dtype="<u2").tofile(tmp_path / "val_000.bin")
    np.asarray(ids[half:], dtype="<u2").tofile(tmp_path / "val_001.bin")
    meta = {
        "format": "mmfree-tokens",
        "splits": {"val": {"shards": ["val_000.bin", "val_001.bin"], "tokens": len(ids), "bytes": 1234}},
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    res = evaluate_lm(model, tokenizer, tmp_path, mode="window", window=16, progress=False)
    assert res["num_tokens"] == len(ids) - 1 and res["num_bytes"] == 1234
    ref = score_sliding_window(model, torch.tensor(ids), 16, 8)
    assert math.isclose(res["total_nll"], float(ref.sum()), rel_tol=1e-5)
    meta["format"] = "other"
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ValueError, match=r"meta\.json: 'format' is 'other'"):
        evaluate_lm(model, tokenizer, tmp_path, progress=False)


def test_lm_bad_input(model: torch.nn.Module, tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="lm task file not found"):
        evaluate_lm(model, tokenizer, tmp_path / "missing.txt", progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected an object with a string 'text' field"):
        evaluate_lm(model, tokenizer, bad, progress=False)


def test_mmfree_model_recurrent_pass_equals_full_pass(tokenizer: Any, tmp_path: Path) -> None:
    from mmfree.models import MMFreeConfig, MMFreeForCausalLM

    torch.manual_seed(0)
    config = MMFreeConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, intermediate_size=64
    )
    mm = MMFreeForCausalLM(config).eval()
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    res = evaluate_lm(mm, tokenizer, path, chunk_size=6, progress=False)
    ids = [tokenizer.bos_token_id, *tokenizer(TEXT, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = mm(input_ids=torch.tensor([ids]), use_cache=False).logits[0].double()
    nll = -torch.log_softmax(logits, -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    assert res["mode"] == "recurrent"
    assert math.isclose(res["total_nll"], float(nll.sum()), rel_tol=1e-4)
