"""Batched log-likelihood scoring of (context, continuation) requests, as lm-evaluation-harness does it.

Tokenization follows lm-eval's HF model: trailing spaces of the context move to the continuation,
`context + continuation` is encoded as a whole and split at the length of the encoded context (so a
token straddling the boundary is attributed to the continuation), no special tokens are added unless
`add_bos_token` asks for it, and an empty context becomes the BOS (else EOS) token. Inputs longer than
`max_length + 1` tokens are truncated from the left. Requests run longest-first in right-padded
batches; only the continuation positions' log-softmax is computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tqdm import tqdm

DEFAULT_MAX_LENGTH = 2048
_TOKENIZER_INFINITY = 10**20


def encode(tokenizer: Any, text: str, add_bos_token: bool | None = False) -> list[int]:
    """Token ids of `text`; False: no special tokens, None: the tokenizer's default, True: with them."""
    if add_bos_token is None:
        return list(tokenizer.encode(text))
    return list(tokenizer.encode(text, add_special_tokens=add_bos_token))


def prefix_token_id(tokenizer: Any) -> int:
    """The token standing in for an empty context: BOS, else EOS (lm-eval's `prefix_token_id`)."""
    for tid in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has neither a BOS nor an EOS token to stand in for an empty context")


def encode_pair(
    tokenizer: Any, context: str, continuation: str, add_bos_token: bool | None = False
) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) split the way lm-eval's `_encode_pair` splits them."""
    if context == "":
        return [prefix_token_id(tokenizer)], encode(tokenizer, continuation, add_bos_token)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(tokenizer, context + continuation, add_bos_token)
    ctx = encode(tokenizer, context, add_bos_token)
    return ctx, whole[len(ctx) :]


def resolve_max_length(model: Any, tokenizer: Any | None = None, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The model's context length as lm-eval resolves it: config n_positions / max_position_embeddings /
    n_ctx, else the tokenizer's model_max_length (unless unset), else `default`."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < _TOKENIZER_INFINITY:
        return tok_max
    return default


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def forward_logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits `[B, T, V]` of a causal LM for `input_ids` `[B, T]`, without building a cache."""
    out = model(input_ids=input_ids, use_cache=False)
    return out.logits if hasattr(out, "logits") else out[0]


@torch.no_grad()
def loglikelihood_tokens(
    model: torch.nn.Module,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 8,
    max_length: int = DEFAULT_MAX_LENGTH,
    pad_token_id: int = 0,
    progress: bool = True,
    desc: str = "loglikelihood",
) -> list[tuple[float, bool]]:
    """For each (context ids, continuation ids): (sum of continuation log-probs, continuation is greedy).

    Requests are sorted longest-first and run in right-padded batches of `batch_size`; right padding
    never changes a causal model's outputs at the real positions, so no attention mask is passed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = model_device(model)
    prepared = []
    for i, (ctx, cont) in enumerate(requests):
        if len(ctx) == 0 or len(cont) == 0:
            raise ValueError(f"request {i}: context and continuation must both be non-empty token lists")
        if len(cont) > max_length:
            raise ValueError(
                f"request {i}: continuation of {len(cont)} tokens exceeds max_length {max_length}"
            )
        inp = (list(ctx) + list(cont))[-(max_length + 1) :][:-1]
        prepared.append((i, inp, list(cont)))
    prepared.sort(key=lambda r: (-len(r[1]), r[0]))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(prepared)
    starts = range(0, len(prepared), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, unit="batch"):
        chunk = prepared[start : start + batch_size]
        width = len(chunk[0][1])
        batch = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)  # [B, T]
        for row, (_, inp, _) in enumerate(chunk):
            batch[row, : len(inp)] = torch.tensor(inp, dtype=torch.long)
        logits = forward_logits(model, batch.to(device))  # [B, T, V]
        for row, (idx, inp, cont) in enumerate(chunk):
            n = len(cont)
            logp = torch.log_softmax(logits[row, len(inp) - n : len(inp)].float(), dim=-1)  # [n, V]
            target = torch.tensor(cont, dtype=torch.long, device=logp.device)  # [n]
            ll = logp.gather(-1, target[:, None]).squeeze(-1)  # [n]
            greedy = bool((logp.argmax(-1) == target).all())
            results[idx] = (float(ll.sum()), greedy)
    return results


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std with n-1 over sqrt(n)), as lm-eval's `mean_stderr`.

    For 0/1 accuracies this is the binomial standard error sqrt(p(1-p)/(n-1)). NaN when n < 2.
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mu = sum(values) / n
    if n < 2:
        return mu, math.nan
    var = sum((v - mu) ** 2 for v in values) / (n - 1)
    return mu, math.sqrt(var / n)


def argmax_first(values: Sequence[float]) -> int:
    """Index of the largest value, the first one on ties (numpy.argmax's rule)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best
