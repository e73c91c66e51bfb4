"""Packed ternary checkpoints: pack offline, swap modules at load time (the quantize/convert split).

On disk (`model.safetensors` + `config.json`): every BitLinear `P` becomes `P.weight_packed` (uint8,
2-bit layout of `mmfree.ops.ternary.naive`, or base 3 at 1.6 bits per weight), `P.weight_scale` (fp32,
0-d) and its `P.norm.weight`; every other tensor keeps its dtype. The format is named in the safetensors
metadata (`mmfree_format`, `mmfree_format_version`, `packing`) and in `config.json` (`mmfree_quantization`).
In memory the weights stay packed at 2 bits inside `PackedBitLinear` modules.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmfree.layers.bitlinear import BitLinear
from mmfree.layers.norm import RMSNorm
from mmfree.ops.norm import rms_norm
from mmfree.ops.quant import int8_codes
from mmfree.ops.ternary import (
    cpu_kernel_choice,
    pack_2bit,
    pack_base3,
    packed_cols,
    ternary_matmul,
    unpack_2bit,
    unpack_base3,
)
from mmfree.ops.ternary.cpu import ternary_quant_matmul_cpp

FORMAT_NAME = "packed-ternary"
FORMAT_VERSION = "1"
PACKINGS = ("2bit", "1.6bit")
CONFIG_KEY = "mmfree_quantization"
WEIGHTS_FILE = "model.safetensors"
_COPIED_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
)


class PackedBitLinear(nn.Module):
    """Inference BitLinear with its ternary weight held packed: `[..., in] -> [..., out]`.

    Buffers: `weight_packed` `[out, ceil(in/4)]` uint8 and `weight_scale` fp32 0-d (kept fp32 by `.to`);
    `norm` is the input RMSNorm. Computes `(int8 codes . ternary codes) * g / s` in integers.
    `cpu_kernel` ("cpp", "compiled" or "eager") picks the CPU path (None: $MMFREE_TERNARY_CPU, else cpp).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        eps: float = 1e-6,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.cpu_kernel: str | None = None
        self.register_buffer(
            "weight_packed",
            torch.full((out_features, packed_cols(in_features)), 0x55, dtype=torch.uint8, device=device),
        )
        self.register_buffer("weight_scale", torch.ones((), dtype=torch.float32, device=device))
        self.norm = RMSNorm(in_features, eps=eps)
        if device is not None:
            self.norm.to(device)
        self.bias = nn.Parameter(torch.zeros(out_features, device=device)) if bias else None

    @classmethod
    def from_bitlinear(cls, layer: BitLinear) -> PackedBitLinear:
        """Pack a trained BitLinear (its norm weight and bias are copied)."""
        codes, g = layer.ternary()  # [N, K] int8, []
        out = cls(
            layer.in_features, layer.out_features, layer.bias is not None, layer.norm.eps, device="meta"
        )
        out.weight_packed = pack_2bit(codes)
        out.weight_scale = g.float().reshape(())
        out.norm.weight = nn.Parameter(layer.norm.weight.detach().clone())
        if layer.bias is not None:
            out.bias = nn.Parameter(layer.bias.detach().clone())
        return out

    def _apply(self, fn: Any, recurse: bool = True) -> PackedBitLinear:
        scale = self.weight_scale
        super()._apply(fn, recurse)
        moved = self.weight_scale
        if scale.is_meta or moved.is_meta:
            self.weight_scale = moved.float()
        else:  # the scale is never rounded to bf16
            self.weight_scale = scale.to(moved.device, torch.float32)
        return self

    def codes(self) -> torch.Tensor:
        """The ternary codes `[out, in]` int8 (unpacked; for tests and export)."""
        return unpack_2bit(self.weight_packed, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # [M, K]
        if x2.is_cuda:
            from mmfree.ops.backend import use_triton

            if use_triton("norm_quant", x2):
                from mmfree.ops.bitlinear.triton import norm_quant

                q, s, _ = norm_quant(x2.contiguous(), self.norm.weight, self.norm.eps)  # [M, K], [M]
            else:
                q, s2 = int8_codes(rms_norm(x2, self.norm.weight, self.norm.eps))
                s = s2.squeeze(-1)
        else:
            xn = rms_norm(x2, self.norm.weight, self.norm.eps)  # [M, K]
            if cpu_kernel_choice(self.cpu_kernel) == "cpp":  # quantization fused in the C++ call
                y = ternary_quant_matmul_cpp(
                    xn, self.weight_packed, self.in_features, self.weight_scale, x.dtype
                )
                if y is not None:
                    return self._finish(y, lead)
            q, s2 = int8_codes(xn)  # [M, K], [M, 1]
            s = s2.squeeze(-1)  # [M]
        scale = self.weight_scale / s  # [M]
        y = ternary_matmul(
            q, self.weight_packed, self.in_features, scale, x.dtype, cpu_kernel=self.cpu_kernel
        )
        return self._finish(y, lead)

    def _finish(self, y: torch.Tensor, lead: torch.Size) -> torch.Tensor:
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.view(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=2bit"


def swap_to_packed(model: nn.Module) -> nn.Module:
    """Replace every BitLinear of `model` (in place) by a PackedBitLinear; returns the model.

    On a meta-device model the packed modules are empty placeholders (filled by `load_state_dict(assign=True)`).
    """
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, BitLinear)]
    for name, layer in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if layer.weight.is_meta:
            new = PackedBitLinear(
                layer.in_features, layer.out_features, layer.bias is not None, layer.norm.eps, device="meta"
            )
        else:
            new = PackedBitLinear.from_bitlinear(layer)
        setattr(parent, child, new)
    return model


def set_cpu_kernel(model: nn.Module, cpu_kernel: str | None) -> None:
    """Choose the CPU ternary kernel ("cpp", "compiled" or "eager") of every PackedBitLinear in `model`."""
    for m in model.modules():
        if isinstance(m, PackedBitLinear):
            m.cpu_kernel = cpu_kernel


def _format_record(packing: str) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "version": int(FORMAT_VERSION),
        "packing": packing,
        "layout": "2bit: [N, ceil(K/4)] uint8, byte i = codes of columns i + j*ceil(K/4) in bits 2j..2j+1, "
        "code = w + 1; 1.6bit: [N, ceil(K/5)] uint8, sum_j (w[5i + j] + 1) * 3^j",
    }


EMBEDDING_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def pack_checkpoint(
    src_dir: str | Path, dst_dir: str | Path, bits: str = "2", embedding_dtype: str | None = None
) -> Path:
    """Pack a trained checkpoint directory into a packed-ternary one; returns the destination.

    bits: "2" (2 bits per weight, the in-memory layout) or "1.6" (base 3 on disk, unpacked at load).
    embedding_dtype: None keeps the input embedding as stored; "bfloat16" or "float16" stores it rounded
        to that dtype (half the bytes of fp32; lossy, unlike the ternary layers). It stays in that dtype
        when loaded, and its rows are cast to the model's dtype at lookup.
    """
    from safetensors.torch import save_file

    from mmfree.models import MMFreeForCausalLM

    packing = {"2": "2bit", "2bit": "2bit", "1.6": "1.6bit", "1.6bit": "1.6bit"}.get(str(bits))
    if packing is None:
        raise ValueError(f"unknown packing {bits!r}; use '2' (2bit) or '1.6' (1.6bit)")
    src, dst = Path(src_dir), Path(dst_dir)
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src} is not a checkpoint directory (no config.json)")
    if is_packed_checkpoint(src):
        raise ValueError(f"{src} is already a packed checkpoint; pack the original (unpacked) checkpoint")
    if dst.resolve() == src.resolve():
        raise ValueError("the packed checkpoint must go to a different directory than the source")
    if embedding_dtype is not None and embedding_dtype not in EMBEDDING_DTYPES:
        raise ValueError(
            f"unknown embedding dtype {embedding_dtype!r}; use one of {sorted(EMBEDDING_DTYPES)} (or none to keep it)"
        )
    model = MMFreeForCausalLM.from_pretrained(src, dtype="auto")  # keep the stored dtypes
    emb_key = "model.embeddings.weight"
    if embedding_dtype is not None and model.config.tie_word_embeddings and not model.config.ternary_lm_head:
        raise ValueError(
            f"{src} ties its full-precision LM head to the input embedding, so the embedding cannot be stored "
            "in another dtype alone; pack without --embedding-dtype"
        )
    tensors: dict[str, torch.Tensor] = {}
    bitlinears = {name for name, m in model.named_modules() if isinstance(m, BitLinear)}
    for name, t in model.state_dict().items():
        prefix, _, leaf = name.rpartition(".")
        if prefix in bitlinears and leaf == "weight":
            codes, g = model.get_submodule(prefix).ternary()  # [N, K], []
            tensors[f"{prefix}.weight_packed"] = pack_2bit(codes) if packing == "2bit" else pack_base3(codes)
            tensors[f"{prefix}.weight_scale"] = g.float().reshape(()).clone()
        elif name == emb_key and embedding_dtype is not None:
            tensors[name] = t.detach().to(EMBEDDING_DTYPES[embedding_dtype]).contiguous()
        else:
            tensors[name] = t.detach().contiguous().clone()
    dst.mkdir(parents=True, exist_ok=True)
    meta = {"mmfree_format": FORMAT_NAME, "mmfree_format_version": FORMAT_VERSION, "packing": packing}
    save_file(tensors, str(dst / WEIGHTS_FILE), metadata=meta)
    config = model.config
    setattr(config, CONFIG_KEY, _format_record(packing))
    config.save_pretrained(dst)
    for fname in _COPIED_FILES:
        if (src / fname).is_file():
            shutil.copyfile(src / fname, dst / fname)
    return dst


def is_packed_checkpoint(path: str | Path) -> bool:
    """True when `path` is a directory whose config.json names a packed-ternary format."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        record = json.loads(cfg.read_text()).get(CONFIG_KEY)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and record.get("format") == FORMAT_NAME


def _check_format(path: Path) -> str:
    """Validate the format records of a packed checkpoint; returns its packing."""
    from safetensors import safe_open

    record = json.loads((path / "config.json").read_text()).get(CONFIG_KEY) or {}
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"packed checkpoint {path} has no {WEIGHTS_FILE}")
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("mmfree_format") != FORMAT_NAME:
        raise ValueError(
            f"{weights} is not a packed-ternary file (metadata mmfree_format={meta.get('mmfree_format')!r})"
        )
    for where, version in (
        ("config.json", str(record.get("version"))),
        (WEIGHTS_FILE, meta.get("mmfree_format_version")),
    ):
        if version != FORMAT_VERSION:
            raise ValueError(
                f"packed checkpoint {path}: {where} says format version {version!r}, but this mmfree reads version "
                f"{FORMAT_VERSION}; upgrade mmfree, or re-pack the original checkpoint with `mmfree pack`"
            )
    packing = meta.get("packing")
    if packing not in PACKINGS:
        raise ValueError(f"packed checkpoint {path}: unknown packing {packing!r}; expected one of {PACKINGS}")
    return packing


def _empty_packed_model(config: Any) -> nn.Module:
    from mmfree.models import MMFreeForCausalLM

    with torch.device("meta"):
        model = MMFreeForCausalLM(config)
    return swap_to_packed(model)


def load_packed(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> nn.Module:
    """Load a packed checkpoint as an `MMFreeForCausalLM` whose BitLinears are PackedBitLinear modules.

    dtype converts the floating tensors (embeddings, norms, bounds), never the fp32 weight scales, nor an
    input embedding stored narrower than dtype (`pack_checkpoint(embedding_dtype=...)`: it keeps its
    smaller storage, and its rows are cast at lookup); None keeps the dtypes stored on disk.
    """
    from safetensors.torch import load_file

    from mmfree.models import MMFreeConfig

    path = Path(path)
    if not is_packed_checkpoint(path):
        raise ValueError(f"{path} is not a packed checkpoint (config.json has no {CONFIG_KEY} record)")
    packing = _check_format(path)
    config = MMFreeConfig.from_pretrained(path)
    model = _empty_packed_model(config)
    state = load_file(str(path / WEIGHTS_FILE), device="cpu")
    if packing == "1.6bit":
        for name, m in model.named_modules():
            if isinstance(m, PackedBitLinear) and f"{name}.weight_packed" in state:
                codes = unpack_base3(state[f"{name}.weight_packed"], m.in_features)  # [N, K]
                state[f"{name}.weight_packed"] = pack_2bit(codes)
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"packed checkpoint {path} does not match its config: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.to(device)
    if dtype is not None:
        emb = model.model.embeddings.weight.data  # [V, d]
        model.to(dtype)
        if emb.element_size() < dtype.itemsize:
            model.model.embeddings.weight.data = emb
    model.eval()
    return model


def random_packed_model(
    config: Any, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A packed model with random ternary codes, built without ever materializing fp weights (benchmarks)."""
    model = _empty_packed_model(config)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.dtype == torch.uint8:
                codes = torch.randint(0, 3, (4, *t.shape), dtype=torch.uint8, device=device)  # [4, N, Kq]
                t.copy_(codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6))
            elif name.endswith("weight_scale"):
                t.fill_(0.02)
            elif name.endswith("norm.weight"):
                t.fill_(1.0)
            elif "lower_bounds" in name:
                t.zero_()
            else:
                t.normal_(0.0, config.initializer_range)
    model.to(dtype)
    model.eval()
    return model


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes held by the model's weights: `ternary` (packed buffers + scales, or BitLinear weights), `other`,
    `total`. The recurrent state is separate (`MMFreeCache.memory_bytes`) and constant in context length."""
    ternary = other = 0
    seen: set[int] = set()
    for m in model.modules():
        tensors = [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]
        for name, t in tensors:
            if t.data_ptr() in seen and t.data_ptr() != 0:
                continue
            seen.add(t.data_ptr())
            nbytes = t.numel() * t.element_size()
            is_ternary = (isinstance(m, PackedBitLinear) and name in ("weight_packed", "weight_scale")) or (
                isinstance(m, BitLinear) and name == "weight"
            )
            if is_ternary:
                ternary += nbytes
            else:
                other += nbytes
    return {"ternary": ternary, "other": other, "total": ternary + other}
