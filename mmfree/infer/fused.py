"""The fused single-token decode step of a packed MMFreeForCausalLM: four fused calls per layer.

Per layer (`mmfree.ops.ternary.fused`): (1) attn_norm + the i/f/g BitLinears + the MLGRU recurrence,
in place in the fp32 state; (2) the output gate + o_proj + the residual add; (3) mlp_norm + gate/up +
SiLU(gate) * up; (4) down_proj + the residual add. Around them: one embedding gather and one call for
the final norm + the ternary head. Each call does its BitLinear's RMSNorm and int8 quantization (in the
GEMV's prologue, or at batch 1 with the default "prequant" option in a small kernel of its own just
before it), so the step is the model's own single-token forward (same rounding to the model dtype at
every point the unfused path stores a tensor) in 4L + 2 calls of one or two launches each.

`FusedDecodeStep` snapshots what it needs once (module tensors by reference, the per-layer lower bounds
computed once), keeps one workspace per batch size and does no host sync and no allocation per step
once a batch size was seen, so a CUDA graph can capture it. Weights changed after construction are
seen (tensors are held by reference) except `lower_bounds`, whose derived bounds are computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def fused_unsupported_reason(model: nn.Module) -> str | None:
    """Why the fused step cannot run `model` (None when it can): packed layers, no biases, a device."""
    from mmfree.infer.packed import PackedBitLinear
    from mmfree.ops.backend import interpret_mode, triton_available

    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if inner is None or layers is None or not hasattr(model, "lm_head"):
        return "not an MMFreeForCausalLM"
    if not triton_available():
        return "Triton is not installed"
    dev = inner.embeddings.weight.device
    if dev.type != "cuda" and not (dev.type == "cpu" and interpret_mode()):
        return f"the model is on {dev.type}; the fused kernels need CUDA (or TRITON_INTERPRET=1 on CPU)"
    for what, t in (("model", inner.norm.weight), ("embedding", inner.embeddings.weight)):
        if t.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            return f"unsupported {what} dtype {t.dtype}"
    for idx, layer in enumerate(layers):
        projs = {
            "i_proj": layer.attn.i_proj,
            "f_proj": layer.attn.f_proj,
            "g_proj": layer.attn.g_proj,
            "o_proj": layer.attn.o_proj,
            "gate_proj": layer.mlp.gate_proj,
            "down_proj": layer.mlp.down_proj,
        }
        for name, p in projs.items():
            if not isinstance(p, PackedBitLinear):
                return f"layer {idx} {name} is {type(p).__name__}, not PackedBitLinear (pack the model first)"
            if p.bias is not None:
                return f"layer {idx} {name} has a bias (the fused kernels have none)"
    head = model.lm_head
    if isinstance(head, PackedBitLinear):
        if head.bias is not None:
            return "the LM head has a bias"
    elif type(head) is not nn.Linear:
        return f"the LM head is {type(head).__name__}, neither PackedBitLinear nor nn.Linear"
    return None


def _proj(p: nn.Module) -> Any:
    from mmfree.ops.ternary.fused import TernaryProj

    return TernaryProj(p.weight_packed, p.norm.weight, float(p.norm.eps), p.weight_scale)


class FusedDecodeStep:
    """One decode step of a packed MMFreeForCausalLM in 4 fused calls per layer (+ embedding and head).

    Call `step(tokens [B] long, states)` with one fp32 `[B, d']` contiguous state per layer: the states are
    updated in place and the logits `[B, V]` fp32 are returned in a buffer owned by this object (overwritten
    by the next call with the same batch size; clone it to keep it).
    """

    def __init__(self, model: nn.Module) -> None:
        reason = fused_unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"FusedDecodeStep cannot run this model: {reason}")
        from mmfree.infer.packed import PackedBitLinear

        inner = model.model
        self.model = model
        self.embed = inner.embeddings.weight  # [V, d], possibly stored narrower than the model dtype
        self.dtype = inner.norm.weight.dtype
        self.device = self.embed.device
        self.hidden = self.embed.shape[1]
        self.width = inner.layers[0].attn.input_dim
        self.intermediate = inner.layers[0].mlp.intermediate_size
        with torch.no_grad():
            bounds = inner.layer_lower_bounds()
        self.layers: list[dict[str, Any]] = []
        for layer, lb in zip(inner.layers, bounds):
            attn, mlp = layer.attn, layer.mlp
            official = attn.gate_form == "official"
            self.layers.append(
                {
                    "attn_norm": (layer.attn_norm.weight, float(layer.attn_norm.eps)),
                    "i": _proj(attn.i_proj),
                    "f": _proj(attn.f_proj),
                    "g": _proj(attn.g_proj),
                    "o": _proj(attn.o_proj),
                    "g_norm": (attn.g_norm.weight, float(attn.g_norm.eps)) if official else None,
                    "lb": None if lb is None else lb.detach().float().contiguous(),
                    "official": official,
                    "mlp_norm": (layer.mlp_norm.weight, float(layer.mlp_norm.eps)),
                    "gate": _proj(mlp.gate_proj),
                    "down": _proj(mlp.down_proj),
                }
            )
        self.final_norm = (inner.norm.weight, float(inner.norm.eps))
        head = model.lm_head
        self.head = _proj(head) if isinstance(head, PackedBitLinear) else None
        self.head_weight = None if isinstance(head, PackedBitLinear) else head.weight  # [V, d]
        self.vocab = head.out_features
        self._work: dict[int, dict[str, torch.Tensor]] = {}

    def workspace(self, batch: int) -> dict[str, torch.Tensor]:
        """The buffers of one batch size (allocated at its first use): residual, gate, GLU, logits, and the
        "prequant" code buffers the kernels add at the first step."""
        ws = self._work.get(batch)
        if ws is None:
            kw = {"dtype": self.dtype, "device": self.device}
            ws = self._work[batch] = {
                "x": torch.empty(batch, self.hidden, **kw),  # [B, d]
                "go": torch.empty(batch, self.width, **kw),  # [B, d']
                "u": torch.empty(batch, self.intermediate, **kw),  # [B, I]
                "logits": torch.empty(batch, self.vocab, dtype=torch.float32, device=self.device),  # [B, V]
            }
            if self.embed.dtype != self.dtype:  # the gathered rows in the embedding's own dtype
                ws["e"] = torch.empty(
                    batch, self.hidden, dtype=self.embed.dtype, device=self.device
                )  # [B, d]
        return ws

    def _silu_buffer(self, ws: dict[str, torch.Tensor], batch: int) -> torch.Tensor | None:
        """The `[B, d']` fp32 buffer through which the MLGRU calls pass SiLU(h) to the output gate's calls
        ("silu" option, official gate form, both calls on the prequant path), or None."""
        from mmfree.ops.ternary.fused import silu_ready

        first = self.layers[0]
        mlgru = tuple(first[k].packed for k in ("i", "f", "g"))
        if not (first["official"] and silu_ready(batch, mlgru, first["o"].packed)):
            return None
        if "sh" not in ws:
            ws["sh"] = torch.empty(batch, self.width, dtype=torch.float32, device=self.device)  # [B, d']
        return ws["sh"]

    def _check(self, tokens: torch.Tensor, states: Sequence[torch.Tensor]) -> None:
        if tokens.ndim != 1 or tokens.dtype not in (torch.long, torch.int32) or tokens.device != self.device:
            raise ValueError(
                f"tokens must be a 1-D [B] integer tensor on {self.device}; "
                f"got {tuple(tokens.shape)} {tokens.dtype} on {tokens.device}"
            )
        if len(states) != len(self.layers):
            raise ValueError(f"need one state per layer ({len(self.layers)}); got {len(states)}")
        want = (tokens.shape[0], self.width)
        for idx, s in enumerate(states):
            if (
                tuple(s.shape) != want
                or s.dtype != torch.float32
                or s.device != self.device
                or not s.is_contiguous()
            ):
                raise ValueError(
                    f"state {idx} must be a contiguous fp32 {list(want)} tensor on {self.device}; "
                    f"got {tuple(s.shape)} {s.dtype} on {s.device}"
                )

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """tokens `[B]` -> logits `[B, V]` fp32 (a reused buffer); each `[B, d']` state is updated in place."""
        from mmfree.ops.ternary.fused import bitlinear_step, glu_input_step, mlgru_input_step

        self._check(tokens, states)
        ws = self.workspace(tokens.shape[0])
        x, go, u, logits = ws["x"], ws["go"], ws["u"], ws["logits"]
        if "e" in ws:
            x.copy_(torch.index_select(self.embed, 0, tokens, out=ws["e"]))  # [B, d]
        else:
            torch.index_select(self.embed, 0, tokens, out=x)  # [B, d]
        sh = self._silu_buffer(ws, tokens.shape[0])
        for p, h in zip(self.layers, states):
            mlgru_input_step(
                x, p["attn_norm"], p["i"], p["f"], p["g"], p["lb"], h, go, p["official"], ws, silu_out=sh
            )
            gate = (p["g_norm"][0], p["g_norm"][1], h if sh is None else sh) if p["official"] else None
            bitlinear_step(go, p["o"], x, residual=True, gate=gate, scratch=ws, gate_silu=sh is not None)
            glu_input_step(x, p["mlp_norm"], p["gate"], u, ws)
            bitlinear_step(u, p["down"], x, residual=True, scratch=ws)
        if self.head is not None:
            bitlinear_step(x, self.head, logits, pre_norm=self.final_norm, scratch=ws)
        else:
            from mmfree.ops.norm import rms_norm

            hn = rms_norm(x, self.final_norm[0], self.final_norm[1])  # [B, d]
            logits.copy_(F.linear(hn, self.head_weight))
        return logits

    __call__ = step
