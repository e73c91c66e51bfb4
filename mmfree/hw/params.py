"""The integer engine's parameters: a trained `MMFreeForCausalLM` converted to fixed point.

Conversion rounds each float parameter into its declared format and refuses (FixedPointRangeError, a
ValueError) any value the format cannot hold, naming the tensor and the range, so nothing wraps.
A checkpoint whose LM head is a full-precision `nn.Linear` (`ternary_lm_head=False`) or whose
BitLinears carry a bias is refused: the engine is ternary-only (see docs/hw.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmfree.hw import units
from mmfree.hw.counts import ModelDims


class FixedPointRangeError(ValueError):
    """A value does not fit its fixed-point format (raised at conversion, or at run time when strict)."""


@dataclass
class BitLinearParams:
    """One ternary layer: codes `[N, K]` in {-1, 0, 1}, Q24 scale, Q16 input-norm weight `[K]`."""

    codes: np.ndarray  # [N, K] int8
    scale_q24: int
    norm_w: np.ndarray  # [K] int64 (values fit int32)

    def __post_init__(self) -> None:
        self.codes_t = self.codes.T.astype(np.float64)  # [K, N]: exact for int8 x {-1,0,1} sums < 2^53


@dataclass
class LayerParams:
    """One block in fixed point."""

    attn_norm: np.ndarray  # [d]
    i_proj: BitLinearParams
    f_proj: BitLinearParams
    g_proj: BitLinearParams
    o_proj: BitLinearParams
    g_norm: np.ndarray | None  # [d'] (official gate form)
    lower_bound: np.ndarray | None  # [d'] Q15 (layers > 0 with learned bounds)
    mlp_norm: np.ndarray  # [d]
    gate_proj: BitLinearParams
    down_proj: BitLinearParams


@dataclass
class HwParams:
    """All fixed-point tensors and constants of a model."""

    dims: ModelDims
    eps_norm_q32: int
    eps_bitlinear_q32: int
    embedding: np.ndarray  # [V, d] Q16
    layers: list[LayerParams]
    norm: np.ndarray  # [d] Q16
    lm_head: BitLinearParams
    sigmoid_table: np.ndarray  # [513] Q15

    def validate(self) -> None:
        """Shape checks (an export read from disk goes through here)."""
        d, dp, I, V = self.dims.hidden, self.dims.inner, self.dims.intermediate, self.dims.vocab
        if max(d, dp, I) >= 1 << 15:
            raise ValueError(
                f"widths up to 32767 are supported by the RMSNorm unit; got d={d}, d'={dp}, I={I}"
            )
        _shape("embedding", self.embedding, (V, d))
        _shape("norm", self.norm, (d,))
        _shape("lm_head.codes", self.lm_head.codes, (V, d))
        for idx, lp in enumerate(self.layers):
            p = f"layers.{idx}"
            for name, bl, shape in (("i_proj", lp.i_proj, (dp, d)), ("f_proj", lp.f_proj, (dp, d)),
                                    ("g_proj", lp.g_proj, (dp, d)), ("o_proj", lp.o_proj, (d, dp)),
                                    ("gate_proj", lp.gate_proj, (2 * I, d)),
                                    ("down_proj", lp.down_proj, (d, I))):  # fmt: skip
                _shape(f"{p}.{name}.codes", bl.codes, shape)
                _shape(f"{p}.{name}.norm", bl.norm_w, (shape[1],))
            if (lp.g_norm is None) != (self.dims.gate_form != "official"):
                raise ValueError(f"{p}: g_norm must be present exactly for the official gate form")


def _shape(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(arr.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(arr.shape)}")


def to_fixed(name: str, values: Any, frac: int, bits: int, signed: bool = True) -> np.ndarray:
    """Round float values to `int(value * 2^frac)`, refusing any that overflow `bits`."""
    x = np.asarray(values, dtype=np.float64) * float(1 << frac)
    q = np.round(x)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if q.size and (q.min() < lo or q.max() > hi or not np.isfinite(q).all()):
        kind = "s" if signed else "u"
        raise FixedPointRangeError(
            f"{name} does not fit its fixed-point format {kind}{bits} Q{frac} (range "
            f"[{lo / (1 << frac):g}, {hi / (1 << frac):g}]); its values span [{x.min() / (1 << frac):g}, "
            f"{x.max() / (1 << frac):g}]. The checkpoint is outside what the integer engine supports."
        )
    return q.astype(np.int64)


def _bitlinear(name: str, module: Any) -> BitLinearParams:
    from mmfree.layers import BitLinear

    if not isinstance(module, BitLinear):
        raise ValueError(
            f"{name} is a {type(module).__name__}, not a ternary BitLinear: the integer engine runs ternary "
            "layers only (for the LM head, train with config.ternary_lm_head=True)"
        )
    if module.bias is not None:
        raise ValueError(f"{name} has a bias; the integer engine supports bias-free BitLinears only")
    codes, scale = module.ternary()
    scale_q = to_fixed(f"{name} scale", float(scale), units.SCALE_FRAC, 32)
    if int(scale_q) < 1:
        raise FixedPointRangeError(f"{name} scale {float(scale):g} underflows Q24")
    norm_w = to_fixed(
        f"{name}.norm.weight", module.norm.weight.detach().double().numpy(), units.NORM_W_FRAC, 32
    )
    return BitLinearParams(codes.numpy().astype(np.int8), int(scale_q), norm_w)


def _eps_q32(name: str, eps: float) -> int:
    q = round(eps * (1 << units.EPS_FRAC))
    if q < 1 or q >= 1 << 63:
        raise FixedPointRangeError(f"{name}={eps:g} is outside the Q32 epsilon range [2^-32, 2^31)")
    return q


def params_from_model(model: Any) -> HwParams:
    """Convert an `MMFreeForCausalLM` (float) into fixed-point `HwParams`."""
    import torch

    config = model.config
    dims = ModelDims.from_config(config)
    inner = model.model
    with torch.no_grad():
        emb = to_fixed(
            "model.embeddings.weight", inner.embeddings.weight.double().numpy(), units.ACT_FRAC, 32
        )
        bounds = inner.layer_lower_bounds()
        layers = []
        for idx, block in enumerate(inner.layers):
            p = f"model.layers.{idx}"
            attn = block.attn
            lb = bounds[idx]
            layers.append(
                LayerParams(
                    attn_norm=to_fixed(
                        f"{p}.attn_norm.weight", block.attn_norm.weight.double().numpy(), 16, 32
                    ),
                    i_proj=_bitlinear(f"{p}.attn.i_proj", attn.i_proj),
                    f_proj=_bitlinear(f"{p}.attn.f_proj", attn.f_proj),
                    g_proj=_bitlinear(f"{p}.attn.g_proj", attn.g_proj),
                    o_proj=_bitlinear(f"{p}.attn.o_proj", attn.o_proj),
                    g_norm=(
                        to_fixed(f"{p}.attn.g_norm.weight", attn.g_norm.weight.double().numpy(), 16, 32)
                        if attn.gate_form == "official"
                        else None
                    ),
                    lower_bound=(
                        None
                        if lb is None
                        else to_fixed(
                            f"{p} lower bound", lb.double().numpy(), units.GATE_FRAC, 16, signed=False
                        )
                    ),
                    mlp_norm=to_fixed(f"{p}.mlp_norm.weight", block.mlp_norm.weight.double().numpy(), 16, 32),
                    gate_proj=_bitlinear(f"{p}.mlp.gate_proj", block.mlp.gate_proj),
                    down_proj=_bitlinear(f"{p}.mlp.down_proj", block.mlp.down_proj),
                )
            )
        params = HwParams(
            dims=dims,
            eps_norm_q32=_eps_q32("rms_norm_eps", config.rms_norm_eps),
            eps_bitlinear_q32=_eps_q32("bitlinear_eps", config.bitlinear_eps),
            embedding=emb,
            layers=layers,
            norm=to_fixed("model.norm.weight", inner.norm.weight.double().numpy(), units.NORM_W_FRAC, 32),
            lm_head=_bitlinear("lm_head", model.lm_head),
            sigmoid_table=np.asarray(units.sigmoid_table(), dtype=np.int64),
        )
    params.validate()
    return params
