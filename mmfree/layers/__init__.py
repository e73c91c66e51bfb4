"""Layers of the MatMul-free LM (importable without transformers)."""

from mmfree.layers.bitlinear import BitLinear
from mmfree.layers.block import MMFreeBlock
from mmfree.layers.glu import GLU, glu_intermediate_size
from mmfree.layers.mlgru import GATE_FORMS, MLGRU
from mmfree.layers.norm import RMSNorm

__all__ = ["GATE_FORMS", "GLU", "MLGRU", "BitLinear", "MMFreeBlock", "RMSNorm", "glu_intermediate_size"]
