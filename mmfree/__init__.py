"""mmfree: MatMul-free language models (ternary BitLinear + MLGRU), trained, evaluated and served.

The ops (`mmfree.ops`) and layers (`mmfree.layers`) import without transformers; the model classes
(`MMFreeConfig`, `MMFreeModel`, `MMFreeForCausalLM`) and `baseline_config` load it on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MMFreeConfig": "mmfree.models.configuration",
    "PRESETS": "mmfree.models.configuration",
    "MMFreeModel": "mmfree.models.modeling",
    "MMFreeForCausalLM": "mmfree.models.modeling",
    "MMFreePreTrainedModel": "mmfree.models.modeling",
    "MMFreeCache": "mmfree.models.cache",
    "baseline_config": "mmfree.models.baseline",
    "convert_official": "mmfree.models.convert",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmfree' has no attribute {name!r}")
