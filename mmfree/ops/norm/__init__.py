"""RMSNorm (reference)."""

from mmfree.ops.norm.naive import rms_norm, rms_norm_swish_gate

__all__ = ["rms_norm", "rms_norm_swish_gate"]
