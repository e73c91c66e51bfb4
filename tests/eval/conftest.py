"""Shared fixtures for the eval tests: a tiny byte-level BPE tokenizer and a tiny random Llama."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

CORPUS = [
    "Question: Which gas do plants take in?\nAnswer: carbon dioxide",
    "The quick brown fox jumps over the lazy dog. The dog sleeps.",
    "Sarah was a much better surgeon than Maria so Maria always got the harder cases.",
    "How do you boil water? Put a pot on the stove and heat it until it bubbles.",
    "In my palm is a clear stone, and inside it is a small ivory statuette. Caf\u00e9 na\u00efve r\u00e9sum\u00e9.",
] * 4


def build_tokenizer(vocab_size: int = 320) -> Any:
    """A byte-level BPE (specials <unk>=0, <s>=1, </s>=2) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build_llama(vocab_size: int, seed: int = 0, max_positions: int = 256) -> torch.nn.Module:
    """A 2-layer, 32-wide LlamaForCausalLM with random weights (eval mode, float32)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # larger logits than the default init, so choices differ clearly
        model.lm_head.weight.mul_(20.0)
    return model


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return build_tokenizer()


@pytest.fixture(scope="session")
def model(tokenizer: Any) -> torch.nn.Module:
    return build_llama(len(tokenizer))


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any, model: torch.nn.Module) -> Path:
    path = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
