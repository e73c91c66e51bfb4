"""Tiny deterministic corpus for the data-pipeline tests (imported by tests/data/*)."""

from __future__ import annotations

import random
import re

WORDS = re.findall(
    r"\w+",
    "the model reads tokens and keeps a recurrent state that forgets old context when a gate closes while "
    "ternary weights make every dense layer cheap on simple hardware so data must be clean deterministic and fast",
)


def make_docs(n: int, seed: int = 0) -> list[str]:
    """`n` distinct pseudo-English documents of a few sentences each (some with non-ASCII characters)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(rng.randint(1, 4))
        ]
        extra = " café ü" if i % 5 == 0 else ""
        docs.append(f"Doc {i}. " + ". ".join(sentences) + "." + extra)
    return docs
