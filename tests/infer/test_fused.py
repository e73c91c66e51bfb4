"""The fused decode step (four Triton launches per layer) against the model's own single-token forward.

Interpreter tests run the kernels on CPU (TRITON_INTERPRET=1) at small odd shapes; the GPU tests at real
shapes are in `test_fused_gpu.py`, with the helpers of this file. An int8 activation code (or a bf16 value) can flip at a rounding tie when the two
paths differ in the last bit of a reduction, and the flip carries through the rest of that row's step,
so rows are compared one by one: every row must be close, all but one must be equal to fp32 rounding
(a real error shows in every row).
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch

import mmfree.ops.ternary.fused as fused_ops
from mmfree.infer.decode import Decoder
from mmfree.infer.fused import FusedDecodeStep, fused_unsupported_reason
from mmfree.infer.packed import random_packed_model
from mmfree.models import MMFreeConfig
from mmfree.models.cache import MMFreeCache
from tests.ops.conftest import triton_ready

needs_triton = pytest.mark.skipif(not triton_ready(), reason="needs Triton and a GPU or TRITON_INTERPRET=1")


def _row_errors(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Relative error norm of each row of `[B, N]` a against b."""
    a, b = a.double().cpu(), b.double().cpu()
    return (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)  # [B]


def _assert_rows_close(
    a: torch.Tensor, b: torch.Tensor, tight: float, loose: float, name: str, min_tight: int | None = None
) -> None:
    """Every row within `loose`; at least `min_tight` rows (default: all but one) within `tight`."""
    err = _row_errors(a, b)
    assert torch.isfinite(a).all(), f"{name}: non-finite values"
    assert (err < loose).all(), f"{name}: row relative errors {err.tolist()} (some >= {loose})"
    need = err.numel() - 1 if min_tight is None else min_tight
    if err.numel() > 1 or min_tight is not None:
        assert (err < tight).sum() >= need, f"{name}: row relative errors {err.tolist()} (tight {tight})"


def _model(
    hidden: int,
    inter: int,
    gate_form: str,
    lower_bound: bool,
    dtype: torch.dtype,
    device: str = "cpu",
    ternary_head: bool = True,
    preset: str | None = None,
    layers: int | None = None,
):
    if preset is not None:
        cfg = MMFreeConfig.from_preset(preset)
        cfg.num_hidden_layers = layers or cfg.num_hidden_layers
    else:
        cfg = MMFreeConfig(
            vocab_size=67,
            hidden_size=hidden,
            num_hidden_layers=2,
            intermediate_size=inter,
            gate_form=gate_form,
            use_lower_bound=lower_bound,
            ternary_lm_head=ternary_head,
        )
    model = random_packed_model(cfg, device, torch.float32)
    with torch.no_grad():  # non-trivial norms, bounds, scales and embeddings
        for name, t in model.named_parameters():
            if name.endswith("norm.weight"):
                t.uniform_(0.5, 1.5)
            elif "lower_bounds" in name or name.endswith("embeddings.weight") or name == "lm_head.weight":
                t.normal_(0.0, 1.0)
        for name, b in model.named_buffers():
            if name.endswith("weight_scale"):
                b.uniform_(0.01, 0.1)
    return model.to(dtype)


REAL_LAYERS = 4  # layers of the fp32 real-width checks: every kernel and width, short tie cascades


def _reference_step(model, tokens: torch.Tensor, states: list[torch.Tensor]):
    cache = MMFreeCache(len(states))
    cache.states = [s.clone() for s in states]
    with torch.no_grad():
        out = model(input_ids=tokens[:, None], past_key_values=cache, use_cache=True)
    return out.logits[:, -1].float(), cache.states


def _check_step(
    model, B: int, tight: float, loose: float, min_tight: int | None = None, one_exact: bool = True
) -> None:
    """The fused step at batch B against the model's own step, row by row, then at batch 1: row 0 to the last
    bits of the batch's (`one_exact`: both run the same kernels), else every row alone against the
    reference with the batch's tolerance (on a GPU batch 1 runs the "prequant" kernels, whose row
    reductions are blocked differently from the tensor-core path's, so int8 codes flip at other ties)."""
    dev = model.device
    L, width = len(model.model.layers), model.model.layers[0].attn.input_dim
    tokens = torch.randint(0, model.config.vocab_size, (B,), device=dev)
    states = [torch.randn(B, width, device=dev) for _ in range(L)]  # L x [B, d']
    ref_logits, ref_states = _reference_step(model, tokens, states)
    fused = FusedDecodeStep(model)
    mine = [s.clone() for s in states]
    logits = fused(tokens, mine).clone()  # [B, V]
    assert logits.shape == (B, model.config.vocab_size) and logits.dtype == torch.float32
    _assert_rows_close(logits, ref_logits, tight, loose, "logits", min_tight)
    for idx, (s, r) in enumerate(zip(mine, ref_states)):
        _assert_rows_close(s, r, tight, loose, f"state {idx}", min_tight)
    assert max(ref_logits.abs().max().item(), 1e-3) > 1e-2  # the comparison is not between zeros
    if B > 1 and one_exact:  # batch 1 computes row 0 as the batch does (to the last bits of a PyTorch head)
        one = [s[:1].clone() for s in states]
        torch.testing.assert_close(fused(tokens[:1], one), logits[:1], rtol=1e-4, atol=1e-5)
        for s, r in zip(one, mine):
            torch.testing.assert_close(s, r[:1], rtol=1e-4, atol=1e-5)
    elif B > 1:
        ones = [[s[r : r + 1].clone() for s in states] for r in range(B)]  # B x L x [1, d']
        rows = torch.cat([fused(tokens[r : r + 1], ones[r]).clone() for r in range(B)])  # [B, V]
        _assert_rows_close(rows, ref_logits, tight, loose, "batch-1 logits", min_tight)
        for idx, r in enumerate(ref_states):
            _assert_rows_close(
                torch.cat([o[idx] for o in ones]), r, tight, loose, f"batch-1 state {idx}", min_tight
            )


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize(
    "hidden,inter,gate_form,lower_bound,dtype,ternary_head",
    [
        (40, 50, "official", True, torch.float32, True),
        (72, 70, "paper", False, torch.float32, True),
        (40, 46, "official", False, torch.bfloat16, True),
        (40, 54, "paper", True, torch.float32, False),
    ],
)
def test_fused_step_matches_model_step(
    hidden: int,
    inter: int,
    gate_form: str,
    lower_bound: bool,
    dtype: torch.dtype,
    ternary_head: bool,
) -> None:
    model = _model(hidden, inter, gate_form, lower_bound, dtype, ternary_head=ternary_head)
    _check_step(model, 3, tight=1e-5, loose=3e-2)  # batch 3, then batch 1 on its first row


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("B", [2, 5, 16])
@pytest.mark.parametrize("gate_form", ["official", "paper"])
def test_tensor_core_path_matches_model_step(B: int, gate_form: str) -> None:
    """Batches from DOT_MIN_BATCH run the int8 tl.dot path (then batch 1, the GEMV, on the first row)."""
    assert fused_ops._config(B, 50, 41, (torch.zeros(50, 11, dtype=torch.uint8),)).dot
    model = _model(41, 51, gate_form, gate_form == "official", torch.float32)
    _check_step(model, B, tight=1e-5, loose=3e-2)


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("B,gate_form,dtype", [(5, "official", torch.float32), (17, "paper", torch.bfloat16)])
def test_tensor_core_path_matches_register_path(
    B: int, gate_form: str, dtype: torch.dtype, monkeypatch
) -> None:
    """The same step through tl.dot and through the CUDA-core broadcast (forced by raising DOT_MIN_BATCH):
    the int32 sums are exact in both, so the outputs agree to fp32 rounding (bitwise in the interpreter)."""
    model = _model(40, 46, gate_form, True, dtype)
    fused = FusedDecodeStep(model)
    tokens = torch.randint(0, model.config.vocab_size, (B,))
    states = [torch.randn(B, 40) for _ in range(2)]  # L x [B, d']
    dot_states = [s.clone() for s in states]
    dot_logits = fused(tokens, dot_states).clone()  # [B, V]
    monkeypatch.setattr(fused_ops, "DOT_MIN_BATCH", B + 1)
    assert not fused_ops._config(B, 40, 40, (torch.zeros(40, 10, dtype=torch.uint8),)).dot
    reg_states = [s.clone() for s in states]
    reg_logits = fused(tokens, reg_states)  # [B, V]
    _assert_rows_close(dot_logits, reg_logits, 1e-6, 3e-2, "logits")
    for idx, (a, b) in enumerate(zip(dot_states, reg_states)):
        _assert_rows_close(a, b, 1e-6, 3e-2, f"state {idx}")
    assert not torch.equal(dot_states[0], states[0])  # the step did update the state


@pytest.mark.interpret
@needs_triton
def test_decoder_uses_fused_step_when_asked() -> None:
    model = _model(40, 50, "official", True, torch.float32)
    fused = Decoder(model, cuda_graph=False, fused=True)
    plain = Decoder(model, cuda_graph=False, fused=False)
    assert isinstance(fused.fused_step, FusedDecodeStep) and plain.fused_step is None
    ids = torch.randint(0, 67, (3, 4))
    logits_a, cache_a = fused.prefill(ids)
    _, cache_b = plain.prefill(ids)
    tok = logits_a.argmax(-1)  # [B]
    step_a = fused.step(tok, cache_a)
    step_b = plain.step(tok, cache_b)
    assert cache_a.seen_tokens == cache_b.seen_tokens == 5
    _assert_rows_close(step_a, step_b, 1e-5, 3e-2, "decoder logits")
    for s_a, s_b in zip(cache_a.states, cache_b.states):
        _assert_rows_close(s_a, s_b, 1e-5, 3e-2, "decoder state")


@pytest.mark.interpret
@needs_triton
def test_auto_uses_the_fused_step_only_up_to_its_batch_limit() -> None:
    from mmfree.infer.decode import FUSED_AUTO_MAX_BATCH

    model = _model(40, 50, "official", True, torch.float32)
    dec = Decoder(model, cuda_graph=False, fused=True)
    assert dec._fused_for(FUSED_AUTO_MAX_BATCH + 5) is dec.fused_step  # fused=True: every batch size
    dec._fused_max_batch = FUSED_AUTO_MAX_BATCH  # what fused=None (auto) sets on CUDA
    assert dec._fused_for(FUSED_AUTO_MAX_BATCH) is dec.fused_step
    assert dec._fused_for(FUSED_AUTO_MAX_BATCH + 1) is None
    plain = Decoder(model, cuda_graph=False, fused=False)
    ids = torch.randint(0, 67, (FUSED_AUTO_MAX_BATCH + 1, 4))
    (logits, cache), (_, cache_p) = dec.prefill(ids), plain.prefill(ids)
    tok = logits.argmax(-1)
    torch.testing.assert_close(dec.step(tok, cache), plain.step(tok, cache_p), rtol=0, atol=0)


def test_unpacked_model_falls_back_with_one_message(tiny_model, caplog) -> None:
    model = copy.deepcopy(tiny_model)
    reason = fused_unsupported_reason(model)
    assert reason is not None and "PackedBitLinear" in reason
    with pytest.raises(ValueError, match="pack the model first"):
        FusedDecodeStep(model)
    with caplog.at_level(logging.WARNING, logger="mmfree"):
        dec = Decoder(model, cuda_graph=False, fused=True)
        Decoder(model, cuda_graph=False, fused=True)
    assert dec.fused_step is None
    assert sum("fused decode step unavailable" in r.getMessage() for r in caplog.records) <= 1


@pytest.mark.interpret
@needs_triton
def test_bad_states_and_tokens_are_refused() -> None:
    model = _model(40, 50, "official", True, torch.float32)
    fused = FusedDecodeStep(model)
    good = [torch.zeros(2, 40) for _ in range(2)]
    tokens = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="one state per layer"):
        fused(tokens, good[:1])
    with pytest.raises(ValueError, match="state 1 must be a contiguous fp32"):
        fused(tokens, [good[0], torch.zeros(2, 40, dtype=torch.float64)])
    with pytest.raises(ValueError, match="state 0 must be"):
        fused(tokens, [torch.zeros(3, 40), good[1]])
    with pytest.raises(ValueError, match="1-D"):
        fused(tokens[:, None], good)


def _step_outputs(model, tokens: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list]:
    """Logits and updated states of one fused step (a fresh FusedDecodeStep, so the options in force apply)."""
    mine = [s.clone() for s in states]
    return FusedDecodeStep(model)(tokens, mine).clone(), mine


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("gate_form,dtype", [("official", torch.float32), ("paper", torch.bfloat16)])
def test_dp4a_path_matches_byte_path(gate_form: str, dtype: torch.dtype, monkeypatch) -> None:
    """The "dp4a" option (32-bit words, four codes per multiply; spelled out in the interpreter) gives the
    byte path's bits, and the model's own step. Widths whose packed rows hold whole words (48 -> 12 bytes,
    80 -> 20), so every BitLinear takes the word path."""
    model = _model(48, 80, gate_form, True, dtype)
    monkeypatch.setattr(fused_ops, "OPTIONS", frozenset())
    assert fused_ops._config(1, 48, 48, (torch.zeros(48, 12, dtype=torch.uint8),)).path == 0
    tokens = torch.randint(0, model.config.vocab_size, (1,))
    states = [torch.randn(1, 48) for _ in range(2)]  # L x [1, d']
    byte_logits, byte_states = _step_outputs(model, tokens, states)
    monkeypatch.setattr(fused_ops, "OPTIONS", frozenset({"dp4a"}))
    assert fused_ops._config(1, 48, 48, (torch.zeros(48, 12, dtype=torch.uint8),)).path == 1
    word_logits, word_states = _step_outputs(model, tokens, states)
    assert torch.equal(word_logits, byte_logits)
    for a, b in zip(word_states, byte_states):
        assert torch.equal(a, b)
    assert not torch.equal(word_states[0], states[0])
    _check_step(model, 1, tight=1e-5, loose=3e-2)


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize(
    "gate_form,dtype,B",
    [("official", torch.float32, 1), ("paper", torch.bfloat16, 1), ("official", torch.bfloat16, 3)],
)
def test_prequant_step(gate_form: str, dtype: torch.dtype, B: int, monkeypatch) -> None:
    """The "prequant" option (codes from one quantization launch per input, then a pure word GEMV) against the
    model's own step and the dp4a kernels (which derive the codes in every program, summing the norms in
    another order), at batch 1 and at batch 3 on the CUDA-core path (DOT_MIN_BATCH raised). A width whose
    packed rows are not whole words (40 -> 10 bytes) keeps the byte path without it."""
    model = _model(48, 80, gate_form, True, dtype)
    monkeypatch.setattr(fused_ops, "DOT_MIN_BATCH", 4)
    words = (torch.zeros(48, 12, dtype=torch.uint8),)
    monkeypatch.setattr(fused_ops, "OPTIONS", frozenset({"dp4a"}))
    assert not fused_ops._config(B, 48, 48, words).prequant
    tokens = torch.randint(0, model.config.vocab_size, (B,))
    states = [torch.randn(B, 48) for _ in range(2)]  # L x [B, d']
    base_logits, base_states = _step_outputs(model, tokens, states)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant"))
    cfg = fused_ops._config(B, 48, 48, words)
    assert cfg.prequant and cfg.path == 1
    # the 48-wide inputs' 12-byte rows fit one tile (ONE: no K loop); down_proj's 20-byte rows loop over two
    assert (
        cfg.block_q >= 12
        and fused_ops._config(B, 48, 80, (torch.zeros(48, 20, dtype=torch.uint8),)).block_q < 20
    )
    assert not fused_ops._config(B, 40, 40, (torch.zeros(40, 10, dtype=torch.uint8),)).prequant
    pre_logits, pre_states = _step_outputs(model, tokens, states)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant"))
    step = FusedDecodeStep(model)  # its workspace keeps the code buffers: a second step reuses them
    for _ in range(2):
        again = [s.clone() for s in states]
        assert torch.equal(step(tokens, again), pre_logits)
        assert all(torch.equal(a, b) for a, b in zip(again, pre_states))
    assert any(k.startswith("prequant_") for k in step.workspace(B))
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,wsplit"))
    assert fused_ops._config(B, 48, 48, words).wsplit and fused_ops.prequant.whole_split(12) == (8, 4)
    split_logits, split_states = _step_outputs(model, tokens, states)  # 3-word rows as 2 + 1: same sums
    assert torch.equal(split_logits, pre_logits)
    assert all(torch.equal(a, b) for a, b in zip(split_states, pre_states))
    _assert_rows_close(pre_logits, base_logits, 1e-4, 3e-2, "prequant vs dp4a logits")
    for idx, (a, b) in enumerate(zip(pre_states, base_states)):
        _assert_rows_close(a, b, 1e-4, 3e-2, f"prequant vs dp4a state {idx}")
    assert not torch.equal(pre_states[0], states[0])
    _check_step(model, B, tight=1e-5, loose=3e-2)


@pytest.mark.interpret
@needs_triton
def test_narrow_embedding_is_cast_at_lookup() -> None:
    """An fp32 model whose embedding is stored in bf16 (`mmfree pack --embedding-dtype`): the fused step
    gathers bf16 rows and computes in fp32, as the model's own step does."""
    model = _model(40, 50, "official", True, torch.float32)
    emb = model.model.embeddings.weight
    emb.data = emb.data.to(torch.bfloat16)
    assert fused_unsupported_reason(model) is None
    _check_step(model, 3, tight=1e-5, loose=3e-2)


def test_dp4a_needs_whole_aligned_words(monkeypatch) -> None:
    monkeypatch.setattr(fused_ops, "OPTIONS", frozenset({"dp4a"}))
    words = torch.zeros(8, 16, dtype=torch.uint8)
    assert fused_ops._config(1, 8, 64, (words,)).path == 1
    assert fused_ops._config(1, 8, 40, (torch.zeros(8, 10, dtype=torch.uint8),)).path == 0  # 10 bytes a row
    odd_start = torch.zeros(130, dtype=torch.uint8)[2:].view(8, 16)  # storage offset 2: not word-aligned
    assert fused_ops._config(1, 8, 64, (words, odd_start)).path == 0
    later_rows = torch.zeros(9, 16, dtype=torch.uint8)[1:]  # storage offset 16: aligned
    assert fused_ops._config(1, 8, 64, (words, later_rows)).path == 1
    assert fused_ops._config(3, 8, 64, (words,)).path == 2  # batches from DOT_MIN_BATCH: tensor cores
    assert not fused_ops._config(1, 8, 64, (words,)).pdl


def test_fused_options_parse_and_refuse_unknown_names() -> None:
    assert fused_ops.parse_options("") == frozenset()
    assert fused_ops.parse_options("none") == frozenset()
    assert fused_ops.parse_options(" dp4a , pdl,") == frozenset({"dp4a", "pdl"})
    with pytest.raises(
        ValueError,
        match=r"unknown fused-kernel option\(s\) \['dp4'\].*known: \['dp4a', 'early', 'fold', 'late', 'pdl', "
        r"'pieces', 'prequant', 'qnext', 'silu', 'whole', 'wmac', 'wsplit', 'wvec'\]",
    ):
        fused_ops.parse_options("dp4,pdl")
    with pytest.raises(ValueError, match="'early' and 'late' exclude each other"):
        fused_ops.parse_options("dp4a,prequant,early,late")


@pytest.mark.interpret
@needs_triton
def test_prequant_load_orders_give_the_same_bits(monkeypatch) -> None:
    """The options that only move the prequant GEMVs' loads ("late" / "early": epilogue operands after / before
    the K loop; "qnext": activation words one tile ahead) give the bits of the plain prequant step, on widths
    of 2 and 4 K tiles (so tiles in flight carry across iterations, past the row's end included)."""
    model = _model(80, 208, "official", True, torch.float32)  # 20 and 52 packed bytes: 2 and 4 tiles of 16
    tokens = torch.randint(0, model.config.vocab_size, (1,))
    states = [torch.randn(1, 80) for _ in range(2)]  # L x [1, d']
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,early"))
    base_logits, base_states = _step_outputs(model, tokens, states)
    words = (torch.zeros(80, 20, dtype=torch.uint8),)
    for extra in ("late", "qnext", "late,qnext"):
        monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant," + extra))
        cfg = fused_ops._config(1, 80, 80, words)
        assert (cfg.late, cfg.qnext) == ("late" in extra, "qnext" in extra)
        logits, new_states = _step_outputs(model, tokens, states)
        assert torch.equal(logits, base_logits), extra
        assert all(torch.equal(a, b) for a, b in zip(new_states, base_states)), extra


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("B,extra", [(1, "fold"), (1, ""), (3, "")])
def test_silu_handoff_gives_the_same_bits(B: int, extra: str, monkeypatch) -> None:
    """The "silu" option (the MLGRU call stores SiLU(h), the output gate's quantization reads it: MODE 3)
    gives the bits of the step without it, on the fold kernels (batch 1) and the prequant pairs (batch 1
    and 3); it needs the official gate form and the prequant path, and says so otherwise."""
    model = _model(48, 80, "official", True, torch.float32)
    monkeypatch.setattr(fused_ops, "DOT_MIN_BATCH", 4)
    tokens = torch.randint(0, model.config.vocab_size, (B,))
    states = [torch.randn(B, 48) for _ in range(2)]  # L x [B, d']
    base = "dp4a,prequant" + ("," + extra if extra else "")
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options(base))
    want_logits, want_states = _step_outputs(model, tokens, states)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options(base + ",silu"))
    step = FusedDecodeStep(model)
    mine = [s.clone() for s in states]
    logits = step(tokens, mine)
    assert "sh" in step.workspace(B)  # the handoff buffer is in use
    assert torch.equal(logits, want_logits)
    assert all(torch.equal(a, b) for a, b in zip(mine, want_states))
    _check_step(model, B, tight=1e-5, loose=3e-2)  # and against the model's own (plain-PyTorch) step
    x = torch.randn(B, 48)
    p = step.layers[0]
    with pytest.raises(ValueError, match="gate_silu without a gate"):
        fused_ops.bitlinear_step(x, p["o"], torch.empty(B, 48), gate_silu=True)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a"))
    with pytest.raises(ValueError, match="gate_silu needs the prequant path"):
        fused_ops.bitlinear_step(x, p["o"], torch.empty(B, 48), gate=(x[0], 1e-6, mine[0]), gate_silu=True)
    assert FusedDecodeStep(model)._silu_buffer({}, B) is None  # not on the prequant path: no handoff
    paper = _model(48, 80, "paper", True, torch.float32)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options(base + ",silu"))
    assert FusedDecodeStep(paper)._silu_buffer({}, B) is None  # no output gate to feed


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize("kq", [12, 20, 40])
def test_whole_row_split_tiles_give_the_same_bits(kq: int) -> None:
    """ "wsplit": a whole packed row of kq bytes taken as two power-of-two tiles (12 = 8 + 4, 20 = 16 + 4, 40
    = 32 + 8 bytes) gives the one padded tile's outputs, on the prequant BitLinear GEMV with a residual add
    (whole-row tiles forced: BLOCK_Q 64), with and without "wvec"'s tile loads."""
    g = torch.Generator().manual_seed(kq)
    K, N = 4 * kq, 24
    split = fused_ops.prequant.whole_split(kq)
    assert split is not None and sum(split) < 64 and sum(split) >= kq
    packed = torch.randint(0, 255, (N, kq), generator=g, dtype=torch.uint8)  # [N, K / 4]
    packed[(packed & 3) == 3] -= 1  # 2-bit codes 0..2 in the low pair (enough for equal sums)
    proj = fused_ops.TernaryProj(packed, torch.rand(K, generator=g) + 0.5, 1e-6, torch.tensor(0.03))
    x = torch.randn(2, K, generator=g)  # [B, K]
    w1 = torch.rand(K, generator=g) + 0.5
    cfg = fused_ops._Launch(1, 1, 8, 64, 64, 1, prequant=True)
    outs = []
    for wsplit, wvec in ((False, False), (True, False), (True, True)):
        y = torch.randn(2, N, generator=torch.Generator().manual_seed(1))  # [B, N] residual stream
        fused_ops.prequant.bitlinear_step(
            x, x, w1, 1e-6, 1, proj, y, True, cfg._replace(wsplit=wsplit, wvec=wvec)
        )
        outs.append(y)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])  # "wvec": only a layout hint
    assert not torch.equal(outs[0], torch.randn(2, N, generator=torch.Generator().manual_seed(1)))


def test_whole_split_tiles_at_the_presets_rows() -> None:
    """The tiles "wsplit" gives the presets' whole rows (bytes): fewer padded words than one power-of-two
    tile, or None."""
    split = fused_ops.prequant.whole_split
    assert split(1280) == (1024, 256)  # 13B o_proj and head: one tile would be 2048
    assert split(640) == (512, 128)  # 2.7B
    assert split(3456) is None  # 13B down_proj: 2048 + 2048 pads as much as 4096
    assert split(1728) is None  # 2.7B down_proj: 1024 + 1024
    assert split(2048) is None  # a power of two: one tile
    assert split(10) is None  # not whole words
