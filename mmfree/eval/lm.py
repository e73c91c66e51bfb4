"""Language-modelling metrics (loss, perplexity, bits per byte) on text, jsonl or prepared token shards.

Sources (`lm:PATH`):
- a text file (`.txt`, any other suffix, optionally `.gz`): one document, the whole file;
- a jsonl file (`.jsonl`/`.json`, optionally `.gz`): one document per line, from its "text" field;
- a prepared-shard directory (`meta.json` with "format": "mmfree-tokens"): the "val" split's raw
  little-endian uint16/uint32 token files, read with numpy.memmap, as one token stream.

Each text document is prefixed with the tokenizer's BOS (else EOS) token so that every one of its
tokens is scored; a shard stream is scored from its second token (shards carry their own separators).

How a document is scored depends on the model:
- "recurrent" (MatMul-free models, `config.model_type == "mmfree"`): consecutive chunks, each call
  carrying the previous call's cache, so every token sees the whole prefix at bounded memory; a model
  that returns no cache is scored in one full forward pass instead.
- "window" (any other causal LM): strided sliding window; window = `window` or the model's context
  length, stride = window // 2; each token is scored exactly once, with at least window - stride
  tokens of context once the first window is passed.

Metrics: loss = mean NLL per scored token (nats), perplexity = exp(loss), bits_per_byte = total NLL /
ln 2 / UTF-8 bytes of the text (comparable across tokenizers). Standard errors treat per-token NLLs as
independent (sample std / sqrt(n)) and propagate to perplexity and bits per byte by the delta method.
With a `limit`, at most that many tokens are scored; bytes then count the decoded scored tokens.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mmfree.eval.scoring import forward_logits, model_device, resolve_max_length
from mmfree.eval.tasks import open_text, read_jsonl


@dataclass
class LMDocument:
    """Token ids fed to the model (every one but the first is scored) and the UTF-8 bytes they cover."""

    ids: np.ndarray
    n_bytes: int


@dataclass
class NLLStats:
    """Running sums of per-token negative log-likelihoods (nats)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    per_doc: list[int] = field(default_factory=list)

    def add(self, nll: torch.Tensor) -> None:
        """Accumulate a 1-D tensor of per-token NLLs."""
        values = nll.double()
        self.n += int(values.numel())
        self.total += float(values.sum())
        self.total_sq += float((values * values).sum())


def _iter_texts(path: Path) -> Iterator[str]:
    """Documents of a text or jsonl file."""
    stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    if stem_suffix in (".jsonl", ".json"):
        for lineno, record in read_jsonl(path):
            if not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{lineno}: expected an object with a string 'text' field")
            yield record["text"]
    else:
        try:
            with open_text(path) as fh:
                yield fh.read()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None


def _prefix_ids(tokenizer: Any) -> list[int]:
    for tid in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tid is not None:
            return [int(tid)]
    return []


def _count_decoded_bytes(tokenizer: Any, ids: np.ndarray) -> int:
    return len(tokenizer.decode([int(t) for t in ids], skip_special_tokens=True).encode("utf-8"))


def load_text_documents(path: Path, tokenizer: Any, limit: int | None = None) -> list[LMDocument]:
    """Tokenize the documents of a text/jsonl file, stopping once `limit` tokens are to be scored."""
    prefix = _prefix_ids(tokenizer)
    docs: list[LMDocument] = []
    budget = limit
    for text in _iter_texts(path):
        full = prefix + list(tokenizer.encode(text, add_special_tokens=False))
        if len(full) < 2:
            continue
        n_bytes = len(text.encode("utf-8"))
        if budget is not None and len(full) - 1 > budget:
            full = full[: budget + 1]
            n_bytes = _count_decoded_bytes(tokenizer, np.asarray(full[len(prefix) :]))
        docs.append(LMDocument(np.asarray(full, dtype=np.int64), n_bytes))
        if budget is not None:
            budget -= len(full) - 1
            if budget <= 0:
                break
    if not docs:
        raise ValueError(f"{path}: no text to evaluate")
    return docs


def _shard_dtype(meta: dict[str, Any], files: list[Path], n_tokens: int, meta_path: Path) -> np.dtype:
    declared = meta.get("dtype") or meta.get("token_dtype")
    if declared is not None:
        if str(declared) not in ("uint16", "uint32"):
            raise ValueError(f"{meta_path}: dtype {declared!r} must be 'uint16' or 'uint32'")
        return np.dtype(str(declared)).newbyteorder("<")
    size = sum(f.stat().st_size for f in files)
    for cand in ("uint16", "uint32"):
        if size == n_tokens * np.dtype(cand).itemsize:
            return np.dtype(cand).newbyteorder("<")
    vocab = meta.get("vocab_size")
    if isinstance(vocab, int):
        return np.dtype("uint16" if vocab <= 65536 else "uint32").newbyteorder("<")
    raise ValueError(f'{meta_path}: cannot tell the token dtype; add "dtype": "uint16" or "uint32"')


def load_shard_documents(
    directory: Path, tokenizer: Any, limit: int | None = None, split: str = "val"
) -> list[LMDocument]:
    """The `split` of a prepared-token directory as one memory-mapped token stream."""
    meta_path = directory / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: malformed JSON ({exc.msg})") from None
    if meta.get("format") != "mmfree-tokens":
        raise ValueError(f"{meta_path}: 'format' is {meta.get('format')!r}, expected 'mmfree-tokens'")
    splits = meta.get("splits") or {}
    if split not in splits:
        raise ValueError(
            f"{meta_path}: no {split!r} split (has {sorted(splits)}); prepare one or pass a text file"
        )
    info = splits[split]
    files = [directory / str(s) for s in info.get("shards", [])]
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        raise FileNotFoundError(f"{meta_path}: shard files missing: {missing or 'none listed'}")
    n_tokens = int(info.get("tokens", 0))
    dtype = _shard_dtype(meta, files, n_tokens, meta_path)
    arrays = [np.memmap(f, dtype=dtype, mode="r") for f in files]
    stream = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    n_bytes = info.get("bytes")
    if limit is not None and limit + 1 < len(stream):
        stream = stream[: limit + 1]
        n_bytes = _count_decoded_bytes(tokenizer, stream)
    if not isinstance(n_bytes, int) or n_bytes <= 0:
        n_bytes = _count_decoded_bytes(tokenizer, stream)
    return [LMDocument(np.asarray(stream, dtype=np.int64), int(n_bytes))]


def load_lm_documents(
    path: str | os.PathLike[str], tokenizer: Any, limit: int | None = None
) -> list[LMDocument]:
    """Documents of `lm:PATH` (text, jsonl or prepared-shard directory), tokenized."""
    p = Path(path).expanduser()
    if p.is_dir():
        if not (p / "meta.json").is_file():
            raise FileNotFoundError(
                f"{p} is a directory without meta.json; lm:PATH takes a text/jsonl file or shards"
            )
        return load_shard_documents(p, tokenizer, limit)
    if not p.is_file():
        raise FileNotFoundError(f"lm task file not found: {p}")
    return load_text_documents(p, tokenizer, limit)


def _cache_kwarg(model: torch.nn.Module) -> str:
    """The forward argument carrying the cache: `cache` (transformers >= 5 naming) or `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(out: Any) -> Any:
    for name in ("cache", "past_key_values"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    return None


def _token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position NLL `[T]` of `targets` `[T]` under `logits` `[T, V]`."""
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")


@torch.no_grad()
def score_recurrent(
    model: torch.nn.Module, ids: torch.Tensor, chunk_size: int = 1024, progress: bool = False
) -> torch.Tensor:
    """NLL of ids[1:] `[L-1]`, feeding ids[:-1] in chunks and carrying the model's cache between calls."""
    device = model_device(model)
    inputs, targets = ids[:-1], ids[1:]  # [L-1], [L-1]
    key = _cache_kwarg(model)
    cache = None
    pieces = []
    starts = range(0, inputs.numel(), chunk_size)
    for start in tqdm(starts, desc="lm chunks", disable=not progress or len(starts) < 2, unit="chunk"):
        chunk = inputs[start : start + chunk_size][None].to(device)  # [1, C]
        out = model(input_ids=chunk, use_cache=True, **{key: cache})
        logits = out.logits if hasattr(out, "logits") else out[0]  # [1, C, V]
        pieces.append(_token_nll(logits[0], targets[start : start + chunk_size].to(logits.device)).cpu())
        cache = _output_cache(out)
        if cache is None and start + chunk_size < inputs.numel():
            logits = forward_logits(model, inputs[None].to(device))  # [1, L-1, V]: no cache, one full pass
            return _token_nll(logits[0], targets.to(logits.device)).cpu()
    return torch.cat(pieces)


@torch.no_grad()
def score_sliding_window(
    model: torch.nn.Module,
    ids: torch.Tensor,
    window: int,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> torch.Tensor:
    """NLL of ids[1:] `[L-1]` with a strided sliding window: window k covers ids[k*stride : k*stride +
    window] and scores the tokens that no earlier window reached."""
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    stride = stride or max(1, window // 2)
    device = model_device(model)
    length = ids.numel()
    spans = []  # (begin, end, first scored index)
    prev_end, begin = 1, 0
    while prev_end < length:
        end = min(begin + window, length)
        spans.append((begin, end, prev_end))
        prev_end, begin = end, begin + stride
    nll = torch.empty(length - 1)
    groups = range(0, len(spans), batch_size)
    for s in tqdm(groups, desc="lm windows", disable=not progress or len(groups) < 2, unit="batch"):
        group = spans[s : s + batch_size]
        width = max(e - b for b, e, _ in group)
        batch = torch.zeros(len(group), width, dtype=torch.long)  # [B, W]
        for row, (b, e, _) in enumerate(group):
            batch[row, : e - b] = ids[b:e]
        logits = forward_logits(model, batch.to(device))  # [B, W, V]
        for row, (b, e, first) in enumerate(group):
            pos = slice(first - 1 - b, e - 1 - b)  # logits at position j predict token b + j + 1
            target = ids[first:e].to(logits.device)
            nll[first - 1 : e - 1] = _token_nll(logits[row, pos], target).cpu()
    return nll


def lm_mode_for(model: torch.nn.Module) -> str:
    """'recurrent' for MatMul-free models, 'window' for everything else."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return "recurrent" if model_type == "mmfree" else "window"


def evaluate_lm(
    model: torch.nn.Module,
    tokenizer: Any,
    path: str | os.PathLike[str],
    limit: int | None = None,
    batch_size: int = 8,
    mode: str = "auto",
    window: int | None = None,
    chunk_size: int = 1024,
    progress: bool = True,
) -> dict[str, Any]:
    """Loss, perplexity and bits per byte of `model` on `lm:PATH` (see the module docstring)."""
    if mode not in ("auto", "recurrent", "window"):
        raise ValueError(f"lm mode must be 'auto', 'recurrent' or 'window', got {mode!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 token for an lm task, got {limit}")
    mode = lm_mode_for(model) if mode == "auto" else mode
    docs = load_lm_documents(path, tokenizer, limit)
    win = window or resolve_max_length(model, tokenizer)
    stats = NLLStats()
    n_bytes = 0
    for doc in tqdm(docs, desc=f"lm {Path(path).name}", disable=not progress or len(docs) < 2, unit="doc"):
        ids = torch.from_numpy(doc.ids)  # [L]
        if ids.numel() < 2:
            continue
        if mode == "recurrent":
            nll = score_recurrent(model, ids, chunk_size, progress=progress)
        else:
            nll = score_sliding_window(model, ids, win, max(1, win // 2), batch_size, progress=progress)
        stats.add(nll)
        stats.per_doc.append(int(nll.numel()))
        n_bytes += doc.n_bytes
    if stats.n == 0:
        raise ValueError(f"{path}: nothing to score (every document is shorter than two tokens)")
    loss = stats.total / stats.n
    var = max(stats.total_sq / stats.n - loss * loss, 0.0) * stats.n / max(stats.n - 1, 1)
    se = math.sqrt(var / stats.n)
    scale = stats.n / math.log(2) / n_bytes
    return {
        "metrics": {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": loss * scale},
        "stderr": {"loss": se, "perplexity": math.exp(loss) * se, "bits_per_byte": se * scale},
        "num_examples": len(stats.per_doc),
        "num_tokens": stats.n,
        "num_bytes": n_bytes,
        "total_nll": stats.total,
        "mode": mode,
        **({"window": win, "stride": max(1, win // 2)} if mode == "window" else {"chunk_size": chunk_size}),
    }
