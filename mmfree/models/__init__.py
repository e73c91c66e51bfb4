"""transformers integration: config, models, cache, Auto* registration (on import)."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from mmfree.models.baseline import baseline_config
from mmfree.models.cache import MMFreeCache
from mmfree.models.configuration import PRESET_LR, PRESETS, MMFreeConfig
from mmfree.models.modeling import MMFreeForCausalLM, MMFreeModel, MMFreePreTrainedModel

AutoConfig.register("mmfree", MMFreeConfig, exist_ok=True)
AutoModel.register(MMFreeConfig, MMFreeModel, exist_ok=True)
AutoModelForCausalLM.register(MMFreeConfig, MMFreeForCausalLM, exist_ok=True)

__all__ = [
    "PRESETS",
    "PRESET_LR",
    "MMFreeCache",
    "MMFreeConfig",
    "MMFreeForCausalLM",
    "MMFreeModel",
    "MMFreePreTrainedModel",
    "baseline_config",
]
