"""Test helpers: a prepared data directory holding a synthetic, learnable token stream (no tokenizing).

The stream is a fixed function of the seed (NumPy PCG64): documents of 20-80 tokens, each token usually
`(5 * prev + 3) % 97 + 3` and otherwise random in [3, 259), every document followed by EOS (= 2). The
tokenizer is a byte-level BPE trained here on fixed text to exactly `VOCAB` tokens, so `meta.json` and
`tokenizer/` pass the trainer's checks as a real `mmfree data prepare` output would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VOCAB = 300
EOS = 2


def token_stream(num_tokens: int, seed: int) -> np.ndarray:
    """About `num_tokens` uint16 ids: EOS-terminated documents of a noisy deterministic chain."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while len(out) < num_tokens:
        prev = int(rng.integers(3, 100))
        for _ in range(int(rng.integers(20, 80))):
            prev = (5 * prev + 3) % 97 + 3 if rng.random() < 0.8 else int(rng.integers(3, 259))
            out.append(prev)
        out.append(EOS)
    return np.asarray(out, dtype=np.uint16)  # [N]


def tokenizer_text() -> str:
    """Fixed text with enough distinct pairs for a BPE of VOCAB tokens."""
    return " ".join(f"w{(i * 7919) % 10007} x{(i * 31) % 997}" for i in range(4000))


def write_token_dir(root: Path, train_tokens: int = 40_000, val_tokens: int = 4_000, seed: int = 0) -> Path:
    """Write a prepared data directory (meta.json, tokenizer/, one train and one val shard) at `root`."""
    from mmfree.data.tokenizer import tokenizer_fingerprint, train_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer([tokenizer_text()], VOCAB, root / "tokenizer")
    assert len(tok) == VOCAB and tok.eos_token_id == EOS
    splits = {}
    for split, n, s in (("train", train_tokens, seed), ("val", val_tokens, seed + 1)):
        ids = token_stream(n, s)
        (root / f"{split}-00000.bin").write_bytes(ids.astype("<u2").tobytes())
        docs = int((ids == EOS).sum())
        splits[split] = {
            "shards": [f"{split}-00000.bin"],
            "tokens": len(ids),
            "documents": docs,
            "bytes": 3 * len(ids),
        }
    meta = {
        "format": "mmfree-tokens",
        "version": 1,
        "dtype": "uint16",
        "vocab_size": VOCAB,
        "eos_token_id": EOS,
        "tokenizer": {"name_or_path": "tokenizer", "sha256": tokenizer_fingerprint(tok)},
        "splits": splits,
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return root
