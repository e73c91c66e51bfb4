"""Batched decoding for MMFreeForCausalLM (packed or not): prefill, then a step loop on static buffers.

The state is one fp32 `[B, d']` vector per layer, so memory is constant in the context length (no KV
cache). On CUDA the whole single-token step (embedding, every layer, head) is captured once per batch
size in a CUDA graph that reads a static token buffer and updates static state buffers in place; each
step is then one graph replay. For a packed model (PackedBitLinear layers) at batch sizes up to
FUSED_AUTO_MAX_BATCH the step is the fused one of `mmfree.infer.fused` (four Triton launches per layer;
`fused=True` forces it, `fused=False` disables it). Sampling (`mmfree.infer.sampling`) runs outside the
graph, except greedy decoding without a repetition penalty: there the argmax (`mmfree.ops.argmax`, one
launch chained to the head's) is captured with the step (`Decoder.greedy_step`), so the next step reads
its token where the last one wrote it and the host only copies each token back, off the compute stream.
Text streams out piece by piece through `stream()` (a generator) or an `on_text` callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from mmfree.infer.sampling import SamplingParams, sample_next
from mmfree.models.cache import MMFreeCache
from mmfree.ops.argmax import argmax_rows
from mmfree.ops.backend import log_once

# Largest batch that fused=None (auto) decodes with the fused step. On an H200 (370m, 2026-11-28) the
# fused step took 0.96 ms/token at batch 1 against 1.54 unfused, but 6.42 ms at batch 16 against 2.03:
# its small-batch path broadcasts and sums instead of using tensor cores (BENCHMARKS.md).
FUSED_AUTO_MAX_BATCH = 1
MAX_PROMPT_TOKENS = 1 << 20  # a prompt is prefilled in chunks; this bounds the time one call may take


class TextCodec:
    """`encode(text) -> ids` and `decode(ids) -> text` over a `tokenizers.Tokenizer` or a transformers one."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer

    def encode(self, text: str) -> list[int]:
        out = self.tok.encode(text)
        return list(out.ids) if hasattr(out, "ids") else list(out)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)


class _GraphStep:
    """One captured decode step for a fixed batch size (CUDA only), fused when `fused` is given."""

    def __init__(self, model: nn.Module, batch: int, pool: Any, fused: Any = None) -> None:
        self.model = model
        self.fused = fused
        num_layers = len(model.model.layers)
        width = model.model.layers[0].attn.input_dim
        dev = model.device
        self.tokens = torch.zeros(batch, 1, dtype=torch.long, device=dev)  # [B, 1]
        self.states = [torch.zeros(batch, width, dtype=torch.float32, device=dev) for _ in range(num_layers)]
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(2):
                self._run(self.tokens)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.logits = self._run(self.tokens)  # [B, V]
        self.pool = self.graph.pool()
        # greedy: two more graphs, captured at first use; graph k reads token buffer k, writes its argmax to
        # buffer 1 - k
        self.picks = [torch.zeros(batch, dtype=torch.long, device=dev) for _ in range(2)]  # 2 x [B]
        self.greedy_graphs: list[torch.cuda.CUDAGraph] = []

    def _run(self, tokens: torch.Tensor) -> torch.Tensor:
        """The step on `tokens` `[B, 1]`: the states updated in place, logits `[B, V]` fp32 returned."""
        if self.fused is not None:
            return self.fused(tokens.view(-1), self.states)  # [B, V] fp32, a static buffer
        cache = MMFreeCache(len(self.states))
        cache.states = list(self.states)
        out = self.model(input_ids=tokens, past_key_values=cache, use_cache=True, logits_to_keep=1)
        for buf, new in zip(self.states, cache.states):
            buf.copy_(new)
        return out.logits[:, -1].float()

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.tokens.copy_(tokens.view(-1, 1))
        self.graph.replay()
        return self.logits

    def greedy(self, tokens: torch.Tensor) -> torch.Tensor:
        """Replay the step and its argmax on `tokens` `[B]`; returns the next tokens `[B]` in one of two
        alternating buffers (valid until the call after next overwrites it)."""
        if not self.greedy_graphs:
            dev = self.picks[0].device
            pdl = torch.cuda.get_device_capability(dev)[0] >= 9  # the pick overlaps the head's launch
            argmax_rows(self.logits, out=self.picks[0], pdl=pdl)  # compiled (or set up) outside the capture
            for k in range(2):  # capture records the kernels without running them: the states are untouched
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, pool=self.pool):
                    argmax_rows(self._run(self.picks[k].view(-1, 1)), out=self.picks[1 - k], pdl=pdl)
                self.greedy_graphs.append(g)
        k = 1 if tokens.data_ptr() == self.picks[1].data_ptr() else 0
        if tokens.data_ptr() != self.picks[k].data_ptr():
            self.picks[k].copy_(tokens.view(-1))
        self.greedy_graphs[k].replay()
        return self.picks[1 - k]


class Decoder:
    """Prefill + step-loop generation.

    Args:
        model: an MMFreeForCausalLM (PackedBitLinear layers or fake-quantized BitLinear).
        tokenizer: a `tokenizers.Tokenizer` or transformers tokenizer (needed for text in/out).
        cuda_graph: capture the step in a CUDA graph (default: on when the model is on CUDA).
        prefill_chunk: prompt tokens per prefill forward (bounds activation memory for long prompts).
        max_prompt_tokens: longest prompt accepted.
        fused: run the step through the fused Triton kernels (`mmfree.infer.fused`) at every batch size;
            None (default) does so on CUDA when the model is packed and the batch is at most
            FUSED_AUTO_MAX_BATCH; an unsupported model falls back to the unfused step with one logged
            message (a warning when fused=True was asked for).
        lookahead: launch each next step before the host reads the sampled token back (default: on
            CUDA), so the host's per-token work (the read-back, EOS and stop-string checks, the next launch)
            runs while the GPU computes instead of between steps. The tokens are the same either way; when
            generation ends, one step was computed for nothing.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any | None = None,
        cuda_graph: bool | None = None,
        prefill_chunk: int = 2048,
        max_prompt_tokens: int = MAX_PROMPT_TOKENS,
        fused: bool | None = None,
        lookahead: bool | None = None,
    ) -> None:
        self.model = model.eval()
        self.codec = TextCodec(tokenizer) if tokenizer is not None else None
        on_cuda = next(model.parameters()).is_cuda
        self.cuda_graph = on_cuda if cuda_graph is None else (cuda_graph and on_cuda)
        if prefill_chunk < 1 or max_prompt_tokens < 1:
            raise ValueError("prefill_chunk and max_prompt_tokens must be >= 1")
        self.prefill_chunk = prefill_chunk
        self.max_prompt_tokens = max_prompt_tokens
        self._graphs: dict[int, _GraphStep] = {}
        self._pool: Any = None
        self.fused_step = self._make_fused(fused, on_cuda)
        self._fused_max_batch = None if fused else FUSED_AUTO_MAX_BATCH
        self.lookahead = on_cuda if lookahead is None else lookahead

    def _fused_for(self, batch: int) -> Any:
        """The fused step for this batch size, or None for the unfused one."""
        if self.fused_step is None or (self._fused_max_batch is not None and batch > self._fused_max_batch):
            return None
        return self.fused_step

    def _make_fused(self, fused: bool | None, on_cuda: bool) -> Any:
        """The FusedDecodeStep to use, or None (unfused), logging once why a fused step was not built."""
        if fused is False or (fused is None and not on_cuda):
            return None
        from mmfree.infer.fused import FusedDecodeStep, fused_unsupported_reason

        reason = fused_unsupported_reason(self.model)
        if reason is not None:
            level = logging.WARNING if fused else logging.INFO
            log_once(
                f"decode|{level}", f"fused decode step unavailable ({reason}); using the unfused step", level
            )
            return None
        return FusedDecodeStep(self.model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MMFreeCache]:
        """Run the prompt `[B, T]` (left padding marked 0 in attention_mask) -> last logits `[B, V]`, cache."""
        T = input_ids.shape[1]
        if T == 0:
            raise ValueError("the prompt is empty; give at least one token")
        if self.max_prompt_tokens < T:
            raise ValueError(
                f"the prompt has {T} tokens, more than max_prompt_tokens={self.max_prompt_tokens}; shorten it "
                "or raise the limit"
            )
        cache = MMFreeCache(len(self.model.model.layers))
        logits = None
        for start in range(0, T, self.prefill_chunk):
            end = min(T, start + self.prefill_chunk)
            mask = None if attention_mask is None else attention_mask[:, start:end]
            out = self.model(
                input_ids=input_ids[:, start:end],
                attention_mask=mask,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            logits = out.logits[:, -1].float()  # [B, V]
        return logits, cache

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, cache: MMFreeCache) -> torch.Tensor:
        """Feed one token per row `[B]`; updates `cache` in place; returns logits `[B, V]` fp32."""
        B = tokens.shape[0]
        if self.cuda_graph:
            g = self._graph_for(B, cache)
            logits = g(tokens)
            cache.states = list(g.states)
            cache.seen_tokens += 1
            return logits
        fused = self._fused_for(B)
        if fused is not None:
            width = fused.width
            states = [
                torch.zeros(B, width, dtype=torch.float32, device=self.device)
                if s is None
                else s.to(torch.float32, copy=True).contiguous()
                for s in cache.states
            ]  # L x [B, d']
            logits = fused(tokens.view(-1), states).clone()  # [B, V]
            cache.states = states
            cache.seen_tokens += 1
            return logits
        out = self.model(input_ids=tokens.view(-1, 1), past_key_values=cache, use_cache=True)
        return out.logits[:, -1].float()

    def greedy_step(self, tokens: torch.Tensor, cache: MMFreeCache) -> torch.Tensor:
        """Feed one token per row `[B]`; updates `cache` in place; returns the greedy next tokens `[B]`.

        With CUDA graphs the argmax is part of the replayed graph and the result lives in one of two
        buffers that alternate: it stays valid until the call after next (feed it straight back in)."""
        if not self.cuda_graph:
            return self.step(tokens, cache).argmax(-1)
        g = self._graph_for(tokens.shape[0], cache)
        nxt = g.greedy(tokens)
        cache.states = list(g.states)
        cache.seen_tokens += 1
        return nxt

    def _graph_for(self, B: int, cache: MMFreeCache) -> _GraphStep:
        """The captured step for batch B, its state buffers holding `cache`'s states."""
        g = self._graphs.get(B)
        if g is None:
            g = self._graphs[B] = _GraphStep(self.model, B, self._pool, self._fused_for(B))
            self._pool = g.pool
        for buf, s in zip(g.states, cache.states):
            if s is not None and s.data_ptr() != buf.data_ptr():
                buf.copy_(s)
        return g

    def _encode_batch(
        self, prompts: Sequence[str] | Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows: list[list[int]] = []
        for p in prompts:
            if isinstance(p, str):
                if self.codec is None:
                    raise ValueError("text prompts need a tokenizer; pass tokenizer= to Decoder")
                ids = self.codec.encode(p)
            else:
                ids = [int(t) for t in p]
            if not ids:
                raise ValueError("a prompt encodes to zero tokens; give a non-empty prompt")
            rows.append(ids)
        width = max(len(r) for r in rows)
        pad = 0
        ids_t = torch.full((len(rows), width), pad, dtype=torch.long)  # [B, T]
        mask = torch.zeros(len(rows), width, dtype=torch.long)  # [B, T]
        for b, r in enumerate(rows):
            ids_t[b, width - len(r) :] = torch.tensor(r)
            mask[b, width - len(r) :] = 1
        return ids_t.to(self.device), mask.to(self.device)

    def _token_iter(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], params: SamplingParams
    ) -> Iterator[list[int | None]]:
        """Yield, after each decode step, the new token of every row (None for rows already finished)."""
        if not prompts:
            raise ValueError("no prompts given")
        ids, mask = self._encode_batch(prompts)
        B = ids.shape[0]
        gen = None
        if params.seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(params.seed)
        with torch.no_grad():
            logits, cache = self.prefill(ids, None if bool(mask.all()) else mask)
        track = params.repetition_penalty != 1.0  # the ids seen so far matter only to the penalty
        history = ids.masked_fill(mask == 0, -1) if track else None  # [B, T]
        eos = set(params.eos_token_id)
        done = [False] * B
        texts: list[list[int]] = [[] for _ in range(B)]
        # greedy without a penalty: the argmax runs in the step (`greedy_step`), `pick` holds its tokens
        fast = params.temperature == 0 and not track
        pick: torch.Tensor | None = None
        # with lookahead on CUDA: a pinned buffer for each token's read-back and an event marking its copy,
        # which in the greedy form runs on a side stream so that the next step need not wait for it
        pinned = self.lookahead and self.device.type == "cuda"
        host = torch.empty(B, dtype=torch.long, pin_memory=True) if pinned else None
        ready = torch.cuda.Event() if pinned else None
        side = torch.cuda.Stream(self.device) if pinned and fast and self.cuda_graph else None
        for step in range(params.max_new_tokens):
            nxt = pick if pick is not None else sample_next(logits, params, history, gen)  # [B]
            last = step == params.max_new_tokens - 1
            if self.lookahead:  # queue the next step first; the host reads this token while it runs
                if host is not None and ready is not None:
                    self._read_back(nxt, host, ready, side)
                if not last:
                    if fast:
                        pick = self.greedy_step(nxt, cache)
                    else:
                        history, logits = self._advance(nxt, history, cache)
            if ready is not None:
                ready.synchronize()  # the copy only: the step queued after it keeps running
            emitted: list[int | None] = []
            for b, tok in enumerate(host.tolist() if host is not None else nxt.tolist()):
                if done[b] or tok in eos:
                    done[b] = True
                    emitted.append(None)
                    continue
                texts[b].append(tok)
                emitted.append(tok)
                if params.stop and self.codec is not None:
                    done[b] = _cut_at_stop(self.codec.decode(texts[b]), params.stop)[1]
            yield emitted
            if all(done) or last:
                break
            if not self.lookahead:
                if fast:
                    pick = self.greedy_step(nxt, cache)
                else:
                    history, logits = self._advance(nxt, history, cache)

    @staticmethod
    def _read_back(
        nxt: torch.Tensor, host: torch.Tensor, ready: torch.cuda.Event, side: torch.cuda.Stream | None
    ) -> None:
        """Queue the copy of the tokens `[B]` to pinned `host` memory and record `ready` after it: on `side`
        (after the step that wrote them) when given, else on the current stream."""
        if side is None:
            host.copy_(nxt, non_blocking=True)
            ready.record()
            return
        side.wait_stream(torch.cuda.current_stream(nxt.device))
        with torch.cuda.stream(side):
            host.copy_(nxt, non_blocking=True)
            ready.record(side)

    def _advance(
        self, nxt: torch.Tensor, history: torch.Tensor | None, cache: MMFreeCache
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Append the sampled tokens `[B]` to the history (when tracked) and run the next step."""
        if history is not None:
            history = torch.cat([history, nxt[:, None]], dim=1)  # [B, T + 1]
        return history, self.step(nxt, cache)

    def generate_ids(
        self,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        params: SamplingParams,
        on_token: Callable[[int, int], None] | None = None,
    ) -> list[list[int]]:
        """Generate for a batch of prompts; `on_token(row, token_id)` is called for each new token.

        Returns the new token ids per row (EOS excluded; text is cut at stop strings by `generate`).
        """
        out: list[list[int]] = [[] for _ in prompts]
        for emitted in self._token_iter(prompts, params):
            for b, tok in enumerate(emitted):
                if tok is not None:
                    out[b].append(tok)
                    if on_token is not None:
                        on_token(b, tok)
        return out

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[str]:
        """Text in, text out (cut before the first stop string), for a batch of prompts."""
        if self.codec is None:
            raise ValueError("generate() needs a tokenizer; pass tokenizer= to Decoder")
        rows = self.generate_ids(prompts, params)
        return [_cut_at_stop(self.codec.decode(r), params.stop)[0] for r in rows]

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        """Yield the generated text of one prompt in pieces as tokens arrive (cut before a stop string).

        The pieces concatenate to `generate([prompt], params)[0]`; a trailing partial UTF-8 character or
        a tail that may become a stop string is held back until it resolves.
        """
        if self.codec is None:
            raise ValueError("stream() needs a tokenizer; pass tokenizer= to Decoder")
        ids: list[int] = []
        sent = 0
        text = ""
        for emitted in self._token_iter([prompt], params):
            if emitted[0] is None:
                break
            ids.append(emitted[0])
            text, stopped = _cut_at_stop(self.codec.decode(ids), params.stop)
            safe = len(text) if stopped else _safe_prefix_len(text, params.stop)
            if safe > sent:
                yield text[sent:safe]
                sent = safe
            if stopped:
                return
        if len(text) > sent:
            yield text[sent:]


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one occurred."""
    cuts = [text.find(s) for s in stop if s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _safe_prefix_len(text: str, stop: Sequence[str]) -> int:
    """How much of `text` can be emitted now: hold back a trailing partial UTF-8 character ('\ufffd') and
    any tail that could still grow into a stop string."""
    n = len(text)
    while n and text[n - 1] == "\ufffd":
        n -= 1
    for s in stop:
        for k in range(min(len(s) - 1, n), 0, -1):
            if text[:n].endswith(s[:k]):
                n -= k
                break
    return max(n, 0)
