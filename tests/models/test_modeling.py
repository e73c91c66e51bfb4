"""Model: presets and parameter counts, config errors, losses, save/load in any dtype, bad checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, LlamaForCausalLM

from mmfree import MMFreeConfig, MMFreeForCausalLM, MMFreeModel, baseline_config
from mmfree.layers import BitLinear
from mmfree.models.checkpoint import CheckpointError

from .conftest import tiny_config


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("preset", "paper"), [("370m", 0.374e9), ("1.3b", 1.364e9), ("2.7b", 2.701e9)])
def test_preset_parameter_counts_match_paper(preset: str, paper: float) -> None:
    with torch.device("meta"):
        mm = MMFreeForCausalLM(MMFreeConfig.from_preset(preset))
        llama = LlamaForCausalLM(baseline_config(preset))
    assert abs(_count(mm) / paper - 1) < 0.01
    assert abs(_count(llama) / _count(mm) - 1) < 0.05


def test_unknown_preset_and_inconsistent_config() -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'tiny'.*debug"):
        MMFreeConfig.from_preset("tiny")
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MMFreeConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        MMFreeConfig(hidden_size=0)
    with pytest.raises(ValueError, match="gate_form"):
        MMFreeConfig(gate_form="other")


def test_auto_classes_registered() -> None:
    cfg = tiny_config()
    assert isinstance(AutoConfig.for_model("mmfree", hidden_size=32), MMFreeConfig)
    assert isinstance(AutoModelForCausalLM.from_config(cfg), MMFreeForCausalLM)
    assert isinstance(AutoModel.from_config(cfg), MMFreeModel)


@pytest.mark.parametrize("ternary_head", [True, False])
def test_fused_loss_equals_full_logits_loss(ternary_head: bool) -> None:
    cfg = tiny_config(ternary_lm_head=ternary_head)
    model = MMFreeForCausalLM(cfg)
    assert isinstance(model.lm_head, BitLinear) == ternary_head
    ids = torch.randint(0, cfg.vocab_size, (3, 17))
    labels = ids.clone()
    labels[0, 5] = -100
    fused = model(ids, labels=labels)
    assert fused.logits is None
    logits = model(ids).logits
    ref = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    torch.testing.assert_close(fused.loss, ref, atol=1e-5, rtol=1e-5)


def test_initial_loss_near_uniform_and_all_params_get_grads() -> None:
    cfg = tiny_config()
    model = MMFreeForCausalLM(cfg)
    ids = torch.randint(0, cfg.vocab_size, (4, 33))
    loss = model(ids, labels=ids).loss
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_paper_gate_form_and_no_lower_bound() -> None:
    cfg = tiny_config(gate_form="paper", use_lower_bound=False)
    model = MMFreeForCausalLM(cfg)
    names = {n for n, _ in model.named_parameters()}
    assert not any("g_norm" in n or "lower_bounds" in n for n in names)
    assert model(torch.randint(0, 61, (1, 5))).logits.shape == (1, 5, 61)


def test_reset_equals_separate_documents_through_model() -> None:
    model = MMFreeForCausalLM(tiny_config()).double().eval()  # fp64: no int8 rounding-tie flips
    a, b = torch.randint(3, 61, (1, 6)), torch.randint(3, 61, (1, 9))
    packed = torch.cat([a, b], 1)
    reset = torch.zeros(1, 15, dtype=torch.bool)
    reset[0, 6] = True
    with torch.no_grad():
        joint = model(packed, reset=reset).logits
        via_cu = model(packed, cu_seqlens=torch.tensor([0, 6, 15])).logits
        sep = torch.cat([model(a).logits, model(b).logits], 1)
    torch.testing.assert_close(joint, sep, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(via_cu, sep, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_save_and_load_roundtrip_any_dtype(tmp_path, dtype: torch.dtype) -> None:
    model = MMFreeForCausalLM(tiny_config()).to(dtype).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.dtype == dtype
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    ids = torch.randint(0, 61, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, loaded(ids).logits)


def _saved(tmp_path, **overrides: object):
    model = MMFreeForCausalLM(tiny_config(**overrides))
    model.save_pretrained(tmp_path)
    return model


def test_missing_unexpected_and_misshaped_tensors_are_refused(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    _saved(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    bad = dict(state)
    bad.pop("model.layers.1.attn.o_proj.weight")
    bad["model.extra.weight"] = torch.zeros(2)
    bad["model.norm.weight"] = torch.zeros(7)
    save_file(bad, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        MMFreeForCausalLM.from_pretrained(tmp_path)
    msg = str(err.value)
    assert "missing tensors: model.layers.1.attn.o_proj.weight" in msg
    assert "unexpected tensors: model.extra.weight" in msg
    assert "model.norm.weight: checkpoint [7] vs model [32]" in msg


def test_config_inconsistent_with_weights_is_refused(tmp_path) -> None:
    _saved(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["gate_form"] = "paper"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"unexpected tensors: .*g_norm"):
        MMFreeForCausalLM.from_pretrained(tmp_path)


def test_wrong_model_type_and_corrupt_file(tmp_path) -> None:
    _saved(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="'llama' model, not an mmfree one"):
        MMFreeForCausalLM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "hgrn_bit"}))
    with pytest.raises(CheckpointError, match="mmfree convert"):
        MMFreeForCausalLM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        MMFreeForCausalLM.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="corrupt"):
        MMFreeForCausalLM.from_pretrained(tmp_path)


def test_inconsistent_saved_config_is_refused(tmp_path) -> None:
    _saved(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "num_heads": 5}))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MMFreeForCausalLM.from_pretrained(tmp_path)


def test_activation_checkpointing_gives_identical_gradients() -> None:
    model = MMFreeForCausalLM(tiny_config()).train()
    ids = torch.randint(0, 61, (2, 16))
    model(ids, labels=ids).loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model(ids, labels=ids).loss.backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_initialization_follows_the_official_scheme() -> None:
    cfg = MMFreeConfig.from_preset("debug")  # d=128, 4 layers
    params = dict(MMFreeForCausalLM(cfg).named_parameters())
    xavier = 2**-2.5 * math.sqrt(2 / (2 * cfg.hidden_size))
    rescale = 1 / math.sqrt(2 * cfg.num_hidden_layers)
    expected = {
        "model.embeddings.weight": 0.02,
        "lm_head.weight": 0.02,
        "model.layers.1.attn.f_proj.weight": xavier,
        "model.layers.1.attn.o_proj.weight": xavier * rescale,
        "model.layers.1.mlp.gate_proj.weight": 0.02,
        "model.layers.1.mlp.down_proj.weight": 0.02 * rescale,
    }
    for name, std in expected.items():
        assert abs(params[name].std().item() / std - 1) < 0.05, name
    assert torch.equal(params["model.layers.2.mlp_norm.weight"], torch.ones(cfg.hidden_size))
    assert torch.equal(params["model.lower_bounds"], torch.zeros(cfg.num_hidden_layers, cfg.hidden_size))
