"""GPU decoding: the CUDA-graph step equals the eager step, packed logits match the fake-quantized model, the
lookahead loop (next step queued before the token is read back) gives the same tokens."""

from __future__ import annotations

import copy

import pytest
import torch

from mmfree.infer.decode import Decoder
from mmfree.infer.packed import swap_to_packed
from mmfree.infer.sampling import SamplingParams

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_graph_decode_equals_eager_and_fake_quant(tiny_model) -> None:
    ref = copy.deepcopy(tiny_model).cuda()
    packed = swap_to_packed(copy.deepcopy(tiny_model)).cuda()
    ids = torch.randint(0, 300, (3, 9), device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(packed(ids).logits, ref(ids).logits, rtol=1e-3, atol=1e-3)
    p = SamplingParams(max_new_tokens=12, temperature=0.0)
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13], [1]]
    eager = Decoder(packed, cuda_graph=False, lookahead=False).generate_ids(prompts, p)
    graph = Decoder(packed, cuda_graph=True).generate_ids(prompts, p)  # lookahead on (the CUDA default)
    assert graph == eager


def test_lookahead_with_graph_replays(tiny_model) -> None:
    # the graph's logits are a static buffer that the queued next replay overwrites: sampling must read it
    # first (stream order), and the pinned read-back must see this step's tokens, not the next one's
    packed = swap_to_packed(copy.deepcopy(tiny_model)).cuda()
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13], [1]]
    greedy = Decoder(packed, lookahead=False).generate_ids(
        prompts, SamplingParams(max_new_tokens=10, temperature=0)
    )
    for p in (
        SamplingParams(max_new_tokens=10, temperature=0.0, eos_token_id=greedy[1][4]),
        SamplingParams(max_new_tokens=10, temperature=0.9, top_p=0.8, repetition_penalty=1.2, seed=7),
    ):
        assert Decoder(packed).generate_ids(prompts, p) == Decoder(packed, lookahead=False).generate_ids(
            prompts, p
        )


@pytest.mark.parametrize("rows", [1, 3])  # batch 1 runs the fused step, batch 3 the unfused one
def test_greedy_step_in_the_graph_equals_step_then_argmax(tiny_model, rows: int) -> None:
    # the captured argmax writes into two buffers that alternate; feeding each result straight back must
    # give the tokens and states of the plain graph step followed by an argmax outside it
    packed = swap_to_packed(copy.deepcopy(tiny_model)).cuda()
    ids = torch.randint(0, 300, (rows, 6), device="cuda")
    plain, fast = Decoder(packed), Decoder(packed)
    logits, cache_a = plain.prefill(ids)
    _, cache_b = fast.prefill(ids)
    tok_a = tok_b = logits.argmax(-1)
    seen_a, seen_b, bufs = [], [], set()
    for _ in range(9):
        tok_a = plain.step(tok_a, cache_a).argmax(-1)
        tok_b = fast.greedy_step(tok_b, cache_b)
        bufs.add(tok_b.data_ptr())
        seen_a.append(tok_a.tolist())
        seen_b.append(tok_b.tolist())
    assert seen_b == seen_a
    assert len(bufs) == 2  # the two alternating buffers, no copy per step
    for sa, sb in zip(cache_a.states, cache_b.states):
        assert torch.equal(sa, sb)
    assert cache_b.seen_tokens == cache_a.seen_tokens


def test_greedy_then_sampled_generation_share_the_graph(tiny_model) -> None:
    # greedy (argmax in the graph, read back on a side stream) and sampled generation (argmax outside) on
    # one Decoder, in either order, give what fresh Decoders give
    packed = swap_to_packed(copy.deepcopy(tiny_model)).cuda()
    prompts = [[5, 6, 7]]
    greedy = SamplingParams(max_new_tokens=16, temperature=0)
    sampled = SamplingParams(max_new_tokens=16, temperature=0.8, top_k=20, seed=3)
    want_g = Decoder(packed, cuda_graph=False, lookahead=False).generate_ids(prompts, greedy)
    want_s = Decoder(packed).generate_ids(prompts, sampled)
    dec = Decoder(packed)
    assert dec.generate_ids(prompts, sampled) == want_s
    assert dec.generate_ids(prompts, greedy) == want_g
    assert dec.generate_ids(prompts, sampled) == want_s
    assert dec.generate_ids(prompts, greedy) == want_g
