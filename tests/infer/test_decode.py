"""Decoder: greedy equals model.generate, batching, sampling filters, stop strings, streaming, errors."""

from __future__ import annotations

import pytest
import torch

from mmfree.infer.decode import Decoder
from mmfree.infer.packed import load_packed
from mmfree.infer.sampling import SamplingParams, apply_repetition_penalty, filter_logits, sample_next


def _greedy(n: int, **kw) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0.0, **kw)


@pytest.mark.parametrize("packed", [False, True])
def test_greedy_matches_model_generate(packed: bool, tiny_model, packed_dir, tokenizer) -> None:
    model = load_packed(packed_dir, dtype=torch.float32) if packed else tiny_model
    prompt = [7, 41, 3, 99, 12]
    ref = model.generate(
        torch.tensor([prompt]), max_new_tokens=9, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    got = Decoder(model, tokenizer).generate_ids([prompt], _greedy(9))
    assert got == [ref[0, len(prompt) :].tolist()]


def test_batched_equals_one_by_one(packed_dir, tokenizer) -> None:
    model = load_packed(packed_dir, dtype=torch.float32)
    dec = Decoder(model, tokenizer, prefill_chunk=3)  # chunked prefill too
    prompts = ["the cat sat", "a quick brown fox jumps over", "héllo"]
    batched = dec.generate_ids(prompts, _greedy(6))
    single = [dec.generate_ids([p], _greedy(6))[0] for p in prompts]
    assert batched == single and all(len(r) == 6 for r in batched)


def test_sampling_filters() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5], [0.0, 0.1, 5.0, -1.0]])
    top2 = filter_logits(logits, top_k=2, top_p=1.0)
    assert torch.isinf(top2).sum(1).tolist() == [2, 2] and top2[0, 1] == 3.0 and top2[0, 2] == 2.0
    nucleus = filter_logits(logits, top_k=0, top_p=0.5)
    assert torch.isfinite(nucleus).sum(1).tolist() == [1, 1]
    pen = apply_repetition_penalty(logits, torch.tensor([[1, -1], [3, 2]]), 2.0)
    assert pen[0].tolist() == [1.0, 1.5, 2.0, 0.5] and torch.allclose(
        pen[1], torch.tensor([0.0, 0.1, 2.5, -2.0])
    )
    gen = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits[:1], SamplingParams(top_k=1), None, gen)) for _ in range(20)}
    assert draws == {1}
    hot = SamplingParams(temperature=5.0)
    seen = {int(sample_next(logits[:1], hot, None, gen)) for _ in range(200)}
    assert seen == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"max_new_tokens": -2}, "max_new_tokens"),
    ],
)
def test_sampling_params_out_of_range(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SamplingParams(**kw)


def test_seeded_sampling_is_reproducible(tiny_model, tokenizer) -> None:
    dec = Decoder(tiny_model, tokenizer)
    p = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.9, top_k=50, repetition_penalty=1.3, seed=3)
    assert dec.generate_ids(["the dog"], p) == dec.generate_ids(["the dog"], p)


def test_eos_stop_strings_and_streaming(tiny_model, tokenizer) -> None:
    dec = Decoder(tiny_model, tokenizer)
    base = dec.generate_ids(["the cat"], _greedy(12))[0]
    full = tokenizer.decode(base)
    # EOS: make the 4th greedy token the EOS id -> exactly 3 tokens come out
    assert dec.generate_ids(["the cat"], _greedy(12, eos_token_id=base[3]))[0] == base[:3]
    pieces = list(dec.stream("the cat", _greedy(12)))
    assert len(pieces) > 1 and "".join(pieces) == full == dec.generate(["the cat"], _greedy(12))[0]
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = full[: full.find(stop)]
    assert dec.generate(["the cat"], _greedy(12, stop=(stop,)))[0] == cut
    assert "".join(dec.stream("the cat", _greedy(12, stop=(stop,)))) == cut


def test_prompt_errors(tiny_model, tokenizer) -> None:
    dec = Decoder(tiny_model, tokenizer, max_prompt_tokens=4)
    with pytest.raises(ValueError, match="max_prompt_tokens=4"):
        dec.generate(["the cat sat on the mat and the dog"], _greedy(2))
    with pytest.raises(ValueError, match="zero tokens"):
        dec.generate([""], _greedy(2))
    with pytest.raises(ValueError, match="tokenizer"):
        Decoder(tiny_model).generate(["x"], _greedy(2))


@pytest.mark.parametrize(
    "params",
    [
        _greedy(10),
        SamplingParams(max_new_tokens=9, temperature=0.8, top_k=40, repetition_penalty=1.3, seed=5),
        _greedy(12, stop=("e",)),
        _greedy(1),
    ],
)
def test_lookahead_gives_the_same_tokens(params: SamplingParams, tiny_model, tokenizer) -> None:
    # the step queued before the host reads the token back (the CUDA default) changes nothing but timing
    prompts = ["the cat", "a quick brown fox", "x"]
    ahead = Decoder(tiny_model, tokenizer, lookahead=True)
    plain = Decoder(tiny_model, tokenizer, lookahead=False)
    assert ahead.generate_ids(prompts, params) == plain.generate_ids(prompts, params)
    assert ahead.generate(prompts, params) == plain.generate(prompts, params)
    assert list(ahead.stream(prompts[0], params)) == list(plain.stream(prompts[0], params))


def _steps_run(model, tokenizer, ahead: bool, params: SamplingParams) -> tuple[list[int], int]:
    # the tokens of one generation and how many decode steps it ran
    dec = Decoder(model, tokenizer, lookahead=ahead)
    run, count = dec.step, [0]

    def counted(tokens: torch.Tensor, cache):
        count[0] += 1
        return run(tokens, cache)

    dec.step = counted
    return dec.generate_ids(["the cat"], params)[0], count[0]


def test_lookahead_runs_one_spare_step_when_stopped_early(tiny_model, tokenizer) -> None:
    base = Decoder(tiny_model, tokenizer, lookahead=False).generate_ids(["the cat"], _greedy(12))[0]
    # EOS as the 4th token: tokens 1-3 each need a step; lookahead also ran the one after EOS
    assert _steps_run(tiny_model, tokenizer, False, _greedy(12, eos_token_id=base[3])) == (base[:3], 3)
    assert _steps_run(tiny_model, tokenizer, True, _greedy(12, eos_token_id=base[3])) == (base[:3], 4)
    # to max_new_tokens: no step after the last token in either order
    assert _steps_run(tiny_model, tokenizer, False, _greedy(12)) == (base, 11)
    assert _steps_run(tiny_model, tokenizer, True, _greedy(12)) == (base, 11)
