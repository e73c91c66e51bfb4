"""mmfree.data: tokenizers, `mmfree data prepare` (raw text -> token shards), shard reading and batches.

Names are loaded on first use, so importing `mmfree.data` pulls in neither transformers nor torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "prepare": "mmfree.data.prepare",
    "PrepareResult": "mmfree.data.prepare",
    "load_meta": "mmfree.data.shards",
    "open_split": "mmfree.data.shards",
    "TokenArray": "mmfree.data.shards",
    "train_tokenizer": "mmfree.data.tokenizer",
    "load_tokenizer": "mmfree.data.tokenizer",
    "tokenizer_fingerprint": "mmfree.data.tokenizer",
    "check_tokenizer_matches": "mmfree.data.tokenizer",
    "stdlib_corpus": "mmfree.data.embedded",
    "TokenBatches": "mmfree.data.loader",
    "iter_eval_windows": "mmfree.data.loader",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmfree.data' has no attribute {name!r}")
