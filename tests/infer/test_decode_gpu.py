"""GPU decoding: the CUDA-graph step equals the eager step, packed logits match the fake-quantized model."""

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
    eager = Decoder(packed, cuda_graph=False).generate_ids(prompts, p)
    graph = Decoder(packed, cuda_graph=True).generate_ids(prompts, p)
    assert graph == eager
