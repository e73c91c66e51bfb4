"""Ops: plain-PyTorch references (`naive.py`) and Triton kernels behind one dispatch point each.

Import without transformers. `MMFREE_BACKEND=auto|triton|torch` forces the backend.
"""

from mmfree.ops.backend import requested_backend, use_triton
from mmfree.ops.bitlinear import bitlinear
from mmfree.ops.mlgru import mlgru, reset_from_cu_seqlens, reset_from_eos
from mmfree.ops.norm import rms_norm, rms_norm_swish_gate
from mmfree.ops.quant import act_quant, int8_codes, ternary_codes, weight_quant

__all__ = [
    "act_quant",
    "bitlinear",
    "int8_codes",
    "mlgru",
    "requested_backend",
    "reset_from_cu_seqlens",
    "reset_from_eos",
    "rms_norm",
    "rms_norm_swish_gate",
    "ternary_codes",
    "use_triton",
    "weight_quant",
]
