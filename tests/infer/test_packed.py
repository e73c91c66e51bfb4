"""Packing: bit-exact codes, format records, logits equal to the fake-quantized model, memory, errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mmfree.infer.packed import (
    PackedBitLinear,
    is_packed_checkpoint,
    load_packed,
    pack_checkpoint,
    random_packed_model,
    swap_to_packed,
    weight_bytes,
)
from mmfree.layers import BitLinear
from mmfree.models import MMFreeForCausalLM
from tests.infer.conftest import assert_mostly_equal, tiny_config


@pytest.mark.parametrize("fmt", ["2", "1.6"])
def test_pack_load_is_bit_exact(fmt: str, checkpoint, tmp_path) -> None:
    src = MMFreeForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    dst = pack_checkpoint(checkpoint, tmp_path / "p", bits=fmt)
    assert is_packed_checkpoint(dst) and not is_packed_checkpoint(checkpoint)
    packing = "2bit" if fmt == "2" else "1.6bit"
    with safe_open(str(dst / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert meta == {"mmfree_format": "packed-ternary", "mmfree_format_version": "1", "packing": packing}
    record = json.loads((dst / "config.json").read_text())["mmfree_quantization"]
    assert (record["format"], record["version"], record["packing"]) == ("packed-ternary", 1, packing)
    raw = load_file(str(dst / "model.safetensors"))
    assert raw["model.embeddings.weight"].dtype == torch.bfloat16  # non-ternary tensors keep their dtype
    model = load_packed(dst)
    originals = {n: m for n, m in src.named_modules() if isinstance(m, BitLinear)}
    packed = {n: m for n, m in model.named_modules() if isinstance(m, PackedBitLinear)}
    assert set(originals) == set(packed) and not any(isinstance(m, BitLinear) for m in model.modules())
    for name, layer in originals.items():
        codes, g = layer.ternary()
        assert torch.equal(packed[name].codes(), codes), name
        assert packed[name].weight_scale.dtype == torch.float32 and float(packed[name].weight_scale) == float(
            g
        )
        assert torch.equal(packed[name].norm.weight, layer.norm.weight)
        width = 4 if fmt == "2" else 5
        assert raw[f"{name}.weight_packed"].shape == (layer.out_features, -(-layer.in_features // width))


def test_packed_logits_equal_fake_quantized(checkpoint, packed_dir) -> None:
    ref = MMFreeForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    model = load_packed(packed_dir, dtype=torch.float32)
    ids = torch.randint(0, 300, (24, 11))
    with torch.no_grad():
        a = ref(ids).logits
        b = model(ids).logits
    assert_mostly_equal(b, a)


def test_swap_to_packed_and_bf16_keeps_fp32_scales(tiny_model) -> None:
    import copy

    model = swap_to_packed(copy.deepcopy(tiny_model))
    ids = torch.randint(0, 300, (24, 5))
    with torch.no_grad():
        assert_mostly_equal(model(ids).logits, tiny_model(ids).logits)
    model.to(torch.bfloat16)
    scales = [m.weight_scale for m in model.modules() if isinstance(m, PackedBitLinear)]
    assert scales and all(s.dtype == torch.float32 for s in scales)
    assert model.model.embeddings.weight.dtype == torch.bfloat16
    with torch.no_grad():
        assert model(ids).logits.dtype == torch.bfloat16


def test_weight_bytes_at_two_bits(tiny_model, packed_dir) -> None:
    model = load_packed(packed_dir, dtype=torch.float32)
    packed, dense = weight_bytes(model), weight_bytes(tiny_model)
    expected = sum(
        m.out_features * -(-m.in_features // 4) + 4 for m in model.modules() if isinstance(m, PackedBitLinear)
    )
    assert packed["ternary"] == expected
    assert dense["ternary"] >= 15 * packed["ternary"]  # fp32 -> 2 bits (plus one scale per layer)
    # the checkpoint stores a bf16 embedding: loaded into fp32 it keeps its 2-byte storage (nothing to gain)
    emb = model.model.embeddings.weight
    assert emb.dtype == torch.bfloat16 and model.model.norm.weight.dtype == torch.float32
    assert packed["other"] == dense["other"] - emb.numel() * 2


def test_unknown_version_and_bad_input_raise(packed_dir, checkpoint, tmp_path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in packed_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(bad / "model.safetensors"))
    meta = {"mmfree_format": "packed-ternary", "mmfree_format_version": "99", "packing": "2bit"}
    save_file(tensors, str(bad / "model.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="format version '99'"):
        load_packed(bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["mmfree_quantization"]["version"] = 7
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"format version '7'.*re-pack"):
        load_packed(bad)
    with pytest.raises(ValueError, match="already a packed"):
        pack_checkpoint(packed_dir, tmp_path / "again")
    with pytest.raises(ValueError, match="unknown packing"):
        pack_checkpoint(checkpoint, tmp_path / "x", bits="3")
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        pack_checkpoint(tmp_path / "missing", tmp_path / "y")
    with pytest.raises(ValueError, match="not a packed checkpoint"):
        load_packed(checkpoint)


def test_random_packed_model_runs_without_fp_weights() -> None:
    model = random_packed_model(tiny_config(), "cpu", torch.float32)
    assert not any(isinstance(m, BitLinear) for m in model.modules())
    codes = [m.codes() for m in model.modules() if isinstance(m, PackedBitLinear)]
    assert all(set(c.unique().tolist()) <= {-1, 0, 1} for c in codes)
    with torch.no_grad():
        logits = model(torch.randint(0, 300, (1, 4))).logits
    assert torch.isfinite(logits).all()


def test_model_generate_packed_equals_unpacked(checkpoint, packed_dir) -> None:
    ref = MMFreeForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    model = load_packed(packed_dir, dtype=torch.float32)
    ids = torch.tensor([[5, 17, 33, 9]])
    kw = dict(max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
    a = ref.generate(ids, **kw)
    b = model.generate(ids, **kw)
    assert a.shape == (1, 12)
    assert torch.equal(a, b)


def test_from_pretrained_dispatches_packed_checkpoints(tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from mmfree import MMFreeConfig, MMFreeForCausalLM, MMFreeModel
    from mmfree.infer.packed import PackedBitLinear, pack_checkpoint
    from mmfree.models.checkpoint import CheckpointError

    model = MMFreeForCausalLM(
        MMFreeConfig.from_preset("debug", hidden_size=32, num_hidden_layers=2, vocab_size=50)
    )
    model.eval().save_pretrained(tmp_path / "src")
    pack_checkpoint(tmp_path / "src", tmp_path / "packed")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "packed")
    assert isinstance(loaded.lm_head, PackedBitLinear)
    ids = torch.randint(0, 50, (24, 9))
    with torch.no_grad():
        assert_mostly_equal(loaded(ids).logits, model(ids).logits)
    with pytest.raises(CheckpointError, match="packed checkpoint"):
        MMFreeModel.from_pretrained(tmp_path / "packed")


def test_embedding_dtype_halves_an_fp32_embedding(tmp_path) -> None:
    """`embedding_dtype="bfloat16"`: only the input embedding changes (rounded, half the bytes), it stays
    bf16 when loaded into an fp32 model, and the logits move by the rounding alone."""
    src = tmp_path / "src"
    model = MMFreeForCausalLM(tiny_config()).eval()
    with torch.no_grad():
        model.model.embeddings.weight.normal_(0, 1.0)  # fp32 values, not bf16-representable
    model.save_pretrained(src)
    full = pack_checkpoint(src, tmp_path / "full")
    small = pack_checkpoint(src, tmp_path / "small", embedding_dtype="bfloat16")
    raw_full, raw_small = (
        load_file(str(full / "model.safetensors")),
        load_file(str(small / "model.safetensors")),
    )
    key = "model.embeddings.weight"
    assert raw_full[key].dtype == torch.float32 and raw_small[key].dtype == torch.bfloat16
    assert torch.equal(raw_small[key], raw_full[key].to(torch.bfloat16))
    assert raw_full.keys() == raw_small.keys()
    assert all(torch.equal(raw_full[k], raw_small[k]) for k in raw_full if k != key)
    a, b = load_packed(full), load_packed(small, dtype=torch.float32)
    assert b.model.embeddings.weight.dtype == torch.bfloat16 and b.model.norm.weight.dtype == torch.float32
    saved = weight_bytes(a)["other"] - weight_bytes(b)["other"]
    assert saved == raw_full[key].numel() * 2 and weight_bytes(a)["ternary"] == weight_bytes(b)["ternary"]
    ids = torch.randint(0, 300, (8, 11))
    with torch.no_grad():
        la, lb = a(ids).logits, b(ids).logits  # [8, 11, V]
    assert lb.dtype == torch.float32
    err = (lb - la).norm() / la.norm()
    assert 0 < err < 0.05, err
    assert load_packed(small, dtype=torch.bfloat16).model.embeddings.weight.dtype == torch.bfloat16


def test_embedding_dtype_refuses_a_tied_head_and_unknown_names(tmp_path) -> None:
    model = MMFreeForCausalLM(tiny_config(ternary_lm_head=False, tie_word_embeddings=True))
    model.save_pretrained(tmp_path / "tied")
    with pytest.raises(ValueError, match="ties its full-precision LM head"):
        pack_checkpoint(tmp_path / "tied", tmp_path / "out", embedding_dtype="bfloat16")
    with pytest.raises(ValueError, match="unknown embedding dtype 'int8'"):
        pack_checkpoint(tmp_path / "tied", tmp_path / "out", embedding_dtype="int8")
