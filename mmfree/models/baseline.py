"""Transformer++ baseline: a transformers `LlamaConfig` matched to each mmfree preset.

Same width, depth and vocabulary; head_dim 64; the GLU width of the matching MatMul-free model, so the
per-layer parameters are equal (4 d^2 + 3 d I) and the totals agree within 1%. Every comparison in this
project uses transformers' own Llama built from this.
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig

from mmfree.models.configuration import PRESETS, MMFreeConfig


def baseline_config(name: str | MMFreeConfig, **overrides: Any) -> LlamaConfig:
    """The LlamaConfig matched to a preset name or to an MMFreeConfig."""
    cfg = name if isinstance(name, MMFreeConfig) else MMFreeConfig.from_preset(name)
    if cfg.hidden_size % 64 and cfg.hidden_size >= 64:
        raise ValueError(f"baseline_config: hidden_size {cfg.hidden_size} is not a multiple of 64 (head_dim)")
    n_heads = max(1, cfg.hidden_size // 64)
    kwargs: dict[str, Any] = {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_heads,
        "max_position_embeddings": 2048,
        "rms_norm_eps": cfg.rms_norm_eps,
        "initializer_range": cfg.initializer_range,
        "tie_word_embeddings": False,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "attn_implementation": "sdpa",
    }
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


__all__ = ["PRESETS", "baseline_config"]
