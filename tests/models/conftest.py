"""Tiny models for the model tests."""

from __future__ import annotations

import pytest

import mmfree.models  # noqa: F401  (registers the Auto classes)
from mmfree import MMFreeConfig, MMFreeForCausalLM


def tiny_config(**overrides: object) -> MMFreeConfig:
    """A debug-sized config small enough for many forward passes per test."""
    fields = {"hidden_size": 32, "num_hidden_layers": 2, "vocab_size": 61, "pad_token_id": 0, **overrides}
    return MMFreeConfig.from_preset("debug", **fields)


@pytest.fixture
def tiny_model() -> MMFreeForCausalLM:
    return MMFreeForCausalLM(tiny_config()).eval()
