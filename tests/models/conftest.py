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
    """In float64: comparisons between computation orders within one pass (parallel vs sequential scan)
    then never flip an int8 activation code at a rounding tie, which in fp32 happens now and then and
    carries along the sequence. Cached steps carry the state in fp32 between calls, so comparisons across
    calls still flip a code now and then (see `test_step_decoding_matches_full_forward`)."""
    return MMFreeForCausalLM(tiny_config()).double().eval()
