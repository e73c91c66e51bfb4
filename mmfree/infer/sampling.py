"""Sampling settings and the token sampler: temperature, top-k, top-p, repetition penalty (batched)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingParams:
    """How to pick each next token and when to stop.

    temperature 0 means greedy; top_k 0 and top_p 1 disable those filters; repetition_penalty 1 disables it
    (CTRL rule: a seen token's positive logit is divided by it, a negative one multiplied). Generation stops
    at max_new_tokens, at an EOS id, or when the text contains a stop string (cut before it).
    """

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    eos_token_id: tuple[int, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(s for s in self.stop if s)
        if isinstance(self.eos_token_id, int):
            self.eos_token_id = (self.eos_token_id,)
        self.eos_token_id = tuple(int(e) for e in (self.eos_token_id or ()))
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0; got {self.max_new_tokens!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy); got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off); got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off); got {self.top_p!r}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = off); got {self.repetition_penalty!r}")


def apply_repetition_penalty(logits: torch.Tensor, history: torch.Tensor, penalty: float) -> torch.Tensor:
    """logits `[B, V]` fp32; history `[B, T]` token ids (negative ids are ignored) -> penalized `[B, V]`."""
    if penalty == 1.0 or history.numel() == 0:
        return logits
    ids = history.clamp(min=0)  # [B, T]
    seen = logits.gather(1, ids)  # [B, T]
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    valid = history >= 0  # [B, T]
    return logits.scatter(1, ids, torch.where(valid, seen, logits.gather(1, ids)))


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set logits outside the top-k and the top-p nucleus to -inf. logits `[B, V]` fp32."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # [B, V]
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability mass strictly before each token
        drop = before >= top_p  # always keeps the most likely token
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    history: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next tokens `[B]` from last-position logits `[B, V]` and the ids seen so far `[B, T]` (for the penalty)."""
    x = logits.float()
    if history is not None:
        x = apply_repetition_penalty(x, history, params.repetition_penalty)
    if params.temperature == 0:
        return x.argmax(-1)
    x = filter_logits(x / params.temperature, params.top_k, params.top_p)
    probs = x.softmax(-1)  # [B, V]
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
