"""Model, loss and optimizer of a run: the MatMul-free LM or its like-for-like Transformer++ (Llama) baseline.

Both see the same `[B, T + 1]` token windows: the whole window is the input and its own label tensor (the
models shift labels inside), so positions 0..T-1 are scored against tokens 1..T and the last is ignored.
The MatMul-free model gets `reset` at document starts (after each EOS), so its recurrent state never
carries over between documents; the baseline attends over the whole window, as in the paper's setup.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmfree.train.config import TrainConfig


def model_config(cfg: TrainConfig, vocab_size: int, eos_token_id: int, bos_token_id: int | None) -> Any:
    """The MMFreeConfig (arch mmfree) or LlamaConfig (arch transformer) of the run."""
    from mmfree.models import MMFreeConfig, baseline_config

    overrides: dict[str, Any] = {"vocab_size": vocab_size, "eos_token_id": eos_token_id}
    if bos_token_id is not None:
        overrides["bos_token_id"] = bos_token_id
    if cfg.hidden_size:
        overrides["hidden_size"] = cfg.hidden_size
    if cfg.num_layers:
        overrides["num_hidden_layers"] = cfg.num_layers
    if cfg.arch == "transformer":
        return baseline_config(MMFreeConfig.from_preset(cfg.preset, **overrides))
    return MMFreeConfig.from_preset(
        cfg.preset,
        gate_form=cfg.gate_form,
        use_lower_bound=cfg.use_lower_bound,
        ternary_lm_head=cfg.ternary_lm_head,
        **overrides,
    )


def build_model(cfg: TrainConfig, vocab_size: int, eos_token_id: int, bos_token_id: int | None) -> nn.Module:
    """A freshly initialized model in fp32 on CPU (seed torch first for a reproducible init)."""
    from transformers import LlamaForCausalLM

    from mmfree.models import MMFreeForCausalLM

    mcfg = model_config(cfg, vocab_size, eos_token_id, bos_token_id)
    model = MMFreeForCausalLM(mcfg) if cfg.arch == "mmfree" else LlamaForCausalLM(mcfg)
    if cfg.activation_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def block_types() -> tuple[type, ...]:
    """The per-block module classes (FSDP2 shards each of them)."""
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from mmfree.layers import MMFreeBlock

    return (MMFreeBlock, LlamaDecoderLayer)


def window_loss(model: nn.Module, window: torch.Tensor, arch: str, eos_token_id: int) -> torch.Tensor:
    """Mean next-token loss of `window [B, T + 1]` (T scored positions per row)."""
    if arch == "mmfree":
        from mmfree.ops import reset_from_eos

        reset = reset_from_eos(window, eos_token_id)  # [B, T + 1]
        return model(input_ids=window, labels=window, reset=reset, use_cache=False).loss
    return model(input_ids=window, labels=window, use_cache=False).loss


def no_decay(name: str, param: nn.Parameter) -> bool:
    """True for parameters without weight decay: norms, biases (1-D), embeddings and MLGRU lower_bounds."""
    return param.ndim < 2 or "lower_bounds" in name or "embed" in name or "norm" in name


def make_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW at the peak LR with two groups: weight decay on matrices, none on the rest."""
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if no_decay(name, param) else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    kwargs: dict[str, Any] = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, **kwargs)
