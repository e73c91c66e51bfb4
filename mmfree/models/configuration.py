"""`MMFreeConfig`: the model's transformers config (model_type `mmfree`) and its named presets."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from mmfree.layers.glu import glu_intermediate_size
from mmfree.layers.mlgru import GATE_FORMS

# Presets are looked up by exact name. Paper sizes (PAPER.md): 0.374 B, 1.364 B, 2.701 B parameters.
PRESETS: dict[str, dict[str, Any]] = {
    "debug": {"hidden_size": 128, "num_hidden_layers": 4, "vocab_size": 4096},
    "370m": {"hidden_size": 1024, "num_hidden_layers": 24, "vocab_size": 32000},
    "1.3b": {"hidden_size": 2048, "num_hidden_layers": 24, "vocab_size": 32000},
    "2.7b": {"hidden_size": 2560, "num_hidden_layers": 32, "vocab_size": 32000},
    # The paper's 13B-shaped inference configuration (speed and memory studies; never trained here).
    "13b": {"hidden_size": 5120, "num_hidden_layers": 40, "vocab_size": 32000},
}

# Peak learning rates from the paper, per preset (MatMul-free models need large ones to flip ternary values).
PRESET_LR: dict[str, float] = {"debug": 4e-3, "370m": 4e-3, "1.3b": 2.5e-3, "2.7b": 1.5e-3, "13b": 1.5e-3}


class MMFreeConfig(PretrainedConfig):
    """Configuration of a MatMul-free LM.

    Args:
        vocab_size: tokens in the vocabulary (official: 32000, the Mistral tokenizer).
        hidden_size: model width d.
        num_hidden_layers: number of blocks.
        num_heads: MLGRU heads; only a reshape, the recurrence is element-wise (official: 1).
        expand_ratio: MLGRU recurrence width = d * expand_ratio (official: 1).
        hidden_ratio: GLU width factor before the 2/3 rule and rounding to 256 (official: 4).
        intermediate_size: GLU width; None derives it from hidden_ratio (2816 at d=1024).
        hidden_act: GLU activation; only "swish"/"silu" is supported.
        rms_norm_eps: epsilon of the block norms, the final norm and the MLGRU output-gate norm.
        bitlinear_eps: epsilon of each BitLinear's input RMSNorm (1e-6 is what released checkpoints saw).
        use_lower_bound: learned per-layer forget-gate lower bounds (official: True).
        gate_form: "official" (RMSNorm(g) * swish(h), released checkpoints) or "paper" (sigmoid(g) * h).
        ternary_lm_head: LM head as a ternary BitLinear (official) or a full-precision linear.
        initializer_range: std of the normal init of non-token-mixer weights.
        fuse_cross_entropy: with labels, compute the loss in token chunks and never materialize logits.
        use_cache: return the recurrent state for generation.
    """

    model_type = "mmfree"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 1024,
        num_hidden_layers: int = 24,
        num_heads: int = 1,
        expand_ratio: int = 1,
        hidden_ratio: int = 4,
        intermediate_size: int | None = None,
        hidden_act: str = "swish",
        rms_norm_eps: float = 1e-6,
        bitlinear_eps: float = 1e-6,
        use_lower_bound: bool = True,
        gate_form: str = "official",
        ternary_lm_head: bool = True,
        initializer_range: float = 0.02,
        fuse_cross_entropy: bool = True,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        tie_word_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_heads = num_heads
        self.expand_ratio = expand_ratio
        self.hidden_ratio = hidden_ratio
        self.intermediate_size = (
            glu_intermediate_size(hidden_size, hidden_ratio)
            if intermediate_size is None
            else intermediate_size
        )
        self.hidden_act = hidden_act
        self.rms_norm_eps = rms_norm_eps
        self.bitlinear_eps = bitlinear_eps
        self.use_lower_bound = use_lower_bound
        self.gate_form = gate_form
        self.ternary_lm_head = ternary_lm_head
        self.initializer_range = initializer_range
        self.fuse_cross_entropy = fuse_cross_entropy
        self.use_cache = use_cache
        self._validate()
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def _validate(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_heads",
            "expand_ratio",
            "intermediate_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MMFreeConfig.{name} must be a positive integer; got {value!r}")
        if (self.hidden_size * self.expand_ratio) % self.num_heads:
            raise ValueError(
                f"MMFreeConfig: hidden_size * expand_ratio ({self.hidden_size * self.expand_ratio}) must be divisible "
                f"by num_heads ({self.num_heads}); change one of them"
            )
        if self.gate_form not in GATE_FORMS:
            raise ValueError(f"MMFreeConfig.gate_form must be one of {GATE_FORMS}; got {self.gate_form!r}")
        if self.hidden_act not in ("swish", "silu"):
            raise ValueError(f"MMFreeConfig.hidden_act must be 'swish' (or 'silu'); got {self.hidden_act!r}")
        for name in ("rms_norm_eps", "bitlinear_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MMFreeConfig.{name} must be > 0; got {getattr(self, name)!r}")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MMFreeConfig:
        """The config of a named preset (`debug`, `370m`, `1.3b`, `2.7b`, `13b`), with field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})
