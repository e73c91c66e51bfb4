"""Convert a released MMfreeLM checkpoint (official `hgrn_bit` format) into an mmfree checkpoint.

The official layout (ridger/MMfreeLM-370M / 1.3B / 2.7B) is config.json plus model.safetensors or
pytorch_model.bin (sharded or not). Tensor names already match mmfree's, so conversion maps the config,
checks every tensor's presence and shape, and writes a safetensors checkpoint atomically.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from mmfree.models.checkpoint import CheckpointError, compare_state, read_config, weight_files
from mmfree.models.configuration import MMFreeConfig
from mmfree.models.modeling import MMFreeForCausalLM

# hgrn_bit config fields carried over unchanged.
_SAME_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_heads",
    "expand_ratio",
    "hidden_ratio",
    "intermediate_size",
    "hidden_act",
    "rms_norm_eps",
    "use_lower_bound",
    "initializer_range",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ConvertArgs:
    """Settings of `mmfree convert`."""

    src: str  # directory of an official hgrn_bit checkpoint (config.json + model.safetensors or pytorch_model.bin)
    dst: str  # output directory of the mmfree checkpoint (must not exist, unless --overwrite)
    dtype: str = "keep"  # keep the source dtype, or one of float32, bfloat16, float16
    overwrite: bool = False  # replace an existing DST


def official_config(raw: dict[str, Any]) -> MMFreeConfig:
    """The MMFreeConfig equivalent to an official hgrn_bit config dict."""
    model_type = raw.get("model_type")
    if model_type == "mmfree":
        raise CheckpointError("this is already an mmfree checkpoint; load it with from_pretrained directly")
    if model_type != "hgrn_bit":
        raise CheckpointError(
            f"expected an official checkpoint with model_type 'hgrn_bit'; found {model_type!r}"
        )
    if raw.get("use_short_conv"):
        raise CheckpointError(
            "the checkpoint uses a short convolution (use_short_conv), which mmfree does not support"
        )
    fields = {k: raw[k] for k in _SAME_FIELDS if k in raw}
    # The official fused BitLinear normalizes with eps 1e-6 whatever its norm module declares; the released
    # checkpoints use the official (swapped) output gate and a ternary LM head.
    return MMFreeConfig(**fields, bitlinear_eps=1e-6, gate_form="official", ternary_lm_head=True)


def load_official_state(src: Path) -> dict[str, torch.Tensor]:
    """All tensors of an official checkpoint directory (safetensors or PyTorch .bin, sharded or not)."""
    files = weight_files(src)
    state: dict[str, torch.Tensor] = {}
    if files:
        for file in files:
            try:
                state.update(load_file(str(file)))
            except Exception as err:  # safetensors raises its own error types for corrupt files
                raise CheckpointError(f"{file} could not be read ({err}); re-download it") from None
        return state
    bin_index = src / "pytorch_model.bin.index.json"
    bins = (
        sorted({src / n for n in json.loads(bin_index.read_text())["weight_map"].values()})
        if bin_index.is_file()
        else [src / "pytorch_model.bin"]
    )
    for file in bins:
        if not file.is_file():
            raise CheckpointError(
                f"{src} has no model.safetensors or pytorch_model.bin ({file.name} missing)"
            )
        try:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
        except Exception as err:  # torch raises several types for truncated or foreign pickles
            raise CheckpointError(f"{file} could not be read ({err}); re-download it") from None
    return state


def convert_official(src: str | Path, dst: str | Path, dtype: str = "keep", overwrite: bool = False) -> Path:
    """Write an mmfree checkpoint at `dst` equivalent to the official checkpoint at `src`; returns dst."""
    src, dst = Path(src), Path(dst)
    config = official_config(read_config(src))
    if dtype != "keep" and dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose keep, {', '.join(DTYPES)}")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; choose another DST or pass --overwrite")
    state = load_official_state(src)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in MMFreeForCausalLM(config).state_dict().items()}
    compare_state(
        expected,
        {k: list(v.shape) for k, v in state.items()},
        str(src),
        "is it a complete hgrn_bit checkpoint?",
    )
    target = DTYPES[dtype] if dtype != "keep" else next(iter(state.values())).dtype
    model = MMFreeForCausalLM(config).to(target)
    model.load_state_dict({k: v.to(target) for k, v in state.items()}, strict=True)
    tmp = dst.with_name(dst.name + ".tmp-convert")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def convert(args: ConvertArgs) -> int:
    """CLI: `mmfree convert SRC DST`."""
    out = convert_official(args.src, args.dst, args.dtype, args.overwrite)
    print(f"wrote mmfree checkpoint to {out}")
    return 0
