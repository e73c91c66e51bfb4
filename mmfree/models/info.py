"""`mmfree info`: architecture and parameter counts (ternary vs full precision) of a preset or checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmfree.layers.bitlinear import BitLinear
from mmfree.models.checkpoint import read_config
from mmfree.models.configuration import PRESETS, MMFreeConfig
from mmfree.models.modeling import MMFreeForCausalLM


@dataclass
class InfoArgs:
    """Settings of `mmfree info`."""

    target: str  # a preset name (debug, 370m, 1.3b, 2.7b, 13b) or a checkpoint directory


def model_summary(config: MMFreeConfig) -> dict[str, Any]:
    """Parameter counts and weight bytes of a config, computed on the meta device (no memory used)."""
    with torch.device("meta"):
        model = MMFreeForCausalLM(config)
    ternary = sum(m.weight.numel() for m in model.modules() if isinstance(m, BitLinear))
    n_bitlinear = sum(1 for m in model.modules() if isinstance(m, BitLinear))
    total = sum(p.numel() for p in model.parameters())
    full = total - ternary
    return {
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "intermediate_size": config.intermediate_size,
        "vocab_size": config.vocab_size,
        "gate_form": config.gate_form,
        "ternary_lm_head": config.ternary_lm_head,
        "params_total": total,
        "params_ternary": ternary,
        "params_full_precision": full,
        "bitlinear_layers": n_bitlinear,
        "bytes_bf16": 2 * total,
        # 2 bits per ternary weight plus one fp32 scale per BitLinear; the rest stays bf16.
        "bytes_packed_2bit": ternary // 4 + 4 * n_bitlinear + 2 * full,
        "state_numbers_per_token_stream": config.num_hidden_layers * config.hidden_size * config.expand_ratio,
    }


def _config_of(target: str) -> MMFreeConfig:
    if target in PRESETS:
        return MMFreeConfig.from_preset(target)
    if Path(target).is_dir():
        raw = read_config(target)
        if raw.get("model_type") == "hgrn_bit":
            from mmfree.models.convert import official_config

            return official_config(raw)
        if raw.get("model_type") != "mmfree":
            raise ValueError(f"{target} holds a {raw.get('model_type')!r} model, not an mmfree one")
        return MMFreeConfig.from_dict(raw)
    raise ValueError(f"{target!r} is neither a preset ({', '.join(PRESETS)}) nor a checkpoint directory")


def info(args: InfoArgs) -> int:
    """CLI: print the summary as an aligned table."""
    s = model_summary(_config_of(args.target))
    rows = [
        ("width x depth", f"{s['hidden_size']} x {s['num_hidden_layers']} (GLU {s['intermediate_size']})"),
        ("vocabulary", f"{s['vocab_size']}"),
        (
            "output gate / LM head",
            f"{s['gate_form']} / {'ternary' if s['ternary_lm_head'] else 'full precision'}",
        ),
        ("parameters", f"{s['params_total'] / 1e6:,.1f} M"),
        ("  ternary (BitLinear)", f"{s['params_ternary'] / 1e6:,.1f} M in {s['bitlinear_layers']} layers"),
        ("  full precision", f"{s['params_full_precision'] / 1e6:,.1f} M"),
        ("weights at bf16", f"{s['bytes_bf16'] / 2**20:,.1f} MiB"),
        ("weights packed (2-bit)", f"{s['bytes_packed_2bit'] / 2**20:,.1f} MiB"),
        ("recurrent state", f"{s['state_numbers_per_token_stream']:,} fp32 numbers per sequence"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"mmfree model: {args.target}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    return 0
