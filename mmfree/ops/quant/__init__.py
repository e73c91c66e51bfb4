"""BitLinear quantizers: ternary weights (absmean) and int8 activations (absmax), with STE."""

from mmfree.ops.quant.naive import act_quant, int8_codes, ternary_codes, weight_quant

__all__ = ["act_quant", "int8_codes", "ternary_codes", "weight_quant"]
