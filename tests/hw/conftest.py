"""Fixtures of the integer-engine tests: a tiny byte-level MMFreeForCausalLM trained for a few seconds."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

SHAKESPEARE = (
    Path(os.environ.get("MMFREE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    / "data/corpus/tinyshakespeare/input.txt"
)


def _corpus() -> bytes:
    """The first 52 KB of tinyshakespeare, or a synthetic repetitive text when the shared data is absent."""
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_bytes()[:52_000]
    rng = random.Random(0)
    words = ["the", "king", "queen", "speaks", "to", "a", "lord", "and", "his", "sword", "falls", "softly"]
    return " ".join(rng.choice(words) for _ in range(12_000)).encode()[:52_000]


@pytest.fixture(scope="session")
def corpus() -> tuple[list[int], list[int]]:
    """(train bytes, held-out bytes)."""
    data = list(_corpus())
    return data[:50_000], data[50_000:52_000]


@pytest.fixture(scope="session")
def trained_model(corpus: tuple[list[int], list[int]]):
    """hidden 64, 2 layers, vocab 256, GLU 128; 200 AdamW steps on 48-byte windows (a few seconds on CPU)."""
    from mmfree.models import MMFreeConfig, MMFreeForCausalLM

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend
    cfg = MMFreeConfig(
        vocab_size=256, hidden_size=64, num_hidden_layers=2, intermediate_size=128, fuse_cross_entropy=False
    )
    model = MMFreeForCausalLM(cfg)
    data = torch.tensor(corpus[0])
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.0)
    for _ in range(200):
        starts = torch.randint(0, data.numel() - 49, (12,), generator=gen)
        batch = torch.stack([data[s : s + 48] for s in starts.tolist()])  # [12, 48]
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="session")
def checkpoint_dir(trained_model, tmp_path_factory) -> Path:
    """The trained model saved with save_pretrained (no tokenizer: byte tokens)."""
    path = tmp_path_factory.mktemp("hw_ckpt")
    trained_model.save_pretrained(path)
    return path
