"""The "fold" decode kernels (`mmfree/ops/ternary/fold.py`: batch-1 BitLinear calls that quantize their input
inside the GEMV) against the prequant pair they replace and the model's own step, in the interpreter at small
odd shapes; the tile table's bounds; which batch-1 calls fold or take the "whole" tile on a GPU (checked on
CPU). The GPU tests are in `test_fused_gpu.py`."""

from __future__ import annotations

import pytest
import torch

import mmfree.ops.ternary.fold as fold
import mmfree.ops.ternary.fused as fused_ops
from tests.infer.test_fused import _assert_rows_close, _check_step, _model, _step_outputs, needs_triton


def _count_fold_launches(monkeypatch) -> list[str]:
    """Wraps the three fold launchers so that each call is recorded (by kind), then runs."""
    calls: list[str] = []
    for name in ("mlgru_input_step", "bitlinear_step", "glu_input_step"):
        real = getattr(fold, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(fold, name, wrapped)
    return calls


@pytest.mark.interpret
@needs_triton
@pytest.mark.parametrize(
    "gate_form,lower_bound,dtype", [("official", True, torch.float32), ("paper", False, torch.bfloat16)]
)
def test_fold_step(gate_form: str, lower_bound: bool, dtype: torch.dtype, monkeypatch) -> None:
    """Every BitLinear of a batch-1 step in one fold launch (the head included: the interpreter takes any
    short row): the prequant step's logits and states within the tie-flip tolerance of the other batch-1 tests
    (the row sums run in another order, so a code may flip at a rounding tie), and the model's own step. Widths 48 -> 12
    packed bytes (3 words, BW 4) and 112 -> 28 (7 words, BW 8): padded words and three programs of 16 rows."""
    model = _model(48, 112, gate_form, lower_bound, dtype)
    tokens = torch.randint(0, model.config.vocab_size, (1,))
    states = [torch.randn(1, 48) for _ in range(2)]  # L x [1, d']
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant"))
    pre_logits, pre_states = _step_outputs(model, tokens, states)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,fold"))
    calls = _count_fold_launches(monkeypatch)
    fold_logits, fold_states = _step_outputs(model, tokens, states)
    assert calls == ["mlgru_input_step", "bitlinear_step", "glu_input_step", "bitlinear_step"] * 2 + [
        "bitlinear_step"
    ]
    _assert_rows_close(fold_logits, pre_logits, 1e-5, 3e-2, "fold vs prequant logits")
    for idx, (a, b) in enumerate(zip(fold_states, pre_states)):
        _assert_rows_close(a, b, 1e-5, 3e-2, f"fold vs prequant state {idx}")
    assert not torch.equal(fold_states[0], states[0])
    _check_step(model, 1, tight=1e-5, loose=3e-2)


@pytest.mark.interpret
@needs_triton
def test_fold_and_prequant_mix_in_one_step(monkeypatch) -> None:
    """Calls the tile table refuses keep the prequant pair (here the GLU input, refused by a stub) while the
    others fold; the step still matches the model's own."""
    model = _model(48, 80, "official", True, torch.float32)
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,fold"))
    real_tile = fold.fold_tile
    monkeypatch.setattr(fold, "fold_tile", lambda kind, *a: None if kind == "glu" else real_tile(kind, *a))
    calls = _count_fold_launches(monkeypatch)
    _check_step(model, 1, tight=1e-5, loose=3e-2)
    assert calls and "glu_input_step" not in calls and "mlgru_input_step" in calls


def test_fold_tile_bounds() -> None:
    """The CUDA table at the presets' shapes: 1.3B's layer calls fold (its down_proj at 512 words on 8
    warps), the 32000-row head and 13B's 320-word rows do not (their grids would exceed one wave)."""
    assert fold.fold_tile("mlgru", 2048, 512, True) == (16, 8, 128)
    assert fold.fold_tile("bitlinear", 2048, 512, True) == (16, 4, 128)
    assert fold.fold_tile("glu", 5632, 512, True) == (16, 4, 128)
    assert fold.fold_tile("bitlinear", 2048, 1408, True) == (16, 8, 512)
    assert fold.fold_tile("mlgru", 1024, 256, True) == (8, 4, 64)
    assert fold.fold_tile("bitlinear", 1024, 704, True) == (8, 8, 256)
    assert fold.fold_tile("bitlinear", 32000, 512, True) is None
    assert fold.fold_tile("bitlinear", 5120, 1280, True) is None
    assert fold.fold_tile("mlgru", 5120, 1280, True) is None
    assert fold.fold_tile("glu", 13824, 1280, True) is None
    assert fold.fold_tile("glu", 10, 1024, False) is None  # the interpreter: 128 words at most
    assert fold.fold_tile("glu", 10, 512, False) == (16, 1, 128)


class _CudaRows:
    """A stand-in for a packed `[n, kq]` uint8 weight on a CUDA device: `fused._config` reads only its
    device, shape and alignment, so the GPU's launch choices can be checked on a machine without one."""

    def __init__(self, n: int, kq: int) -> None:
        self.shape, self.device = (n, kq), torch.device("cuda")

    def storage_offset(self) -> int:
        return 0

    def data_ptr(self) -> int:
        return 0


def test_gpu_configs_of_the_batch1_calls(monkeypatch) -> None:
    """`_config`'s CUDA choices at the presets' shapes: "fold" takes 1.3B's calls (decided once, in
    `Launch.fold_tile`) and leaves their table row alone, "whole" gives 13B's BitLinear calls one tile per
    row and nothing else. ("pdl" is left out: it asks the device for its capability.)"""
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,qnext,fold,whole"))

    def cfg(n: int, k: int, kind: str = "", b: int = 1):
        return fused_ops._config(b, n, k, (_CudaRows(n, k // 4),), kind)

    down13 = cfg(2048, 5632, "bitlinear")  # 1.3B down_proj: folds; the looped row's late order stays
    assert down13.fold_tile == fold.fold_tile("bitlinear", 2048, 1408, True) and down13.fold_tile is not None
    assert down13._replace(fold_tile=None) == cfg(2048, 5632) and down13.late
    assert cfg(2048, 2048, "mlgru").fold_tile == fold.fold_tile("mlgru", 2048, 512, True)
    assert cfg(5632, 2048, "glu").fold_tile == fold.fold_tile("glu", 5632, 512, True)
    down = cfg(5120, 13824, "bitlinear")  # 13B down_proj: a prequant pair, its 3456-byte row in one tile
    assert down.fold_tile is None and down.prequant
    assert (down.block_q, down.block_n, down.warps, down.late) == (4096, 4, 4, False)  # WHOLE_TILES' last row
    o13 = cfg(5120, 5120, "bitlinear")  # 13B o_proj: a 1280-byte row, the 2048-byte row's 8 x 4
    assert (o13.block_q, o13.block_n, o13.warps) == (2048, 8, 4) and o13.fold_tile is None
    head = cfg(32000, 2048, "bitlinear")  # the 1.3B head: too many outputs to fold; a 512-byte row at 16 x 4
    assert (head.block_q, head.block_n, head.warps) == (512, 16, 4) and head.fold_tile is None
    looped = cfg(5120, 13824)  # no kind: neither fold nor whole; the table's looped tile
    assert looped.block_q == 256 and looped.late and looped.fold_tile is None
    assert cfg(5120, 5120, "mlgru").block_q == 256  # "whole" is for BitLinear calls only
    glu = cfg(13824, 5120, "glu")  # 13B GLU input: PREQUANT_TILES' row over 8192 outputs, 128-byte tiles
    assert (glu.block_q, glu.block_n, glu.warps, glu.late) == (128, 16, 4, True) and glu.fold_tile is None
    assert cfg(64, 32768, "bitlinear").block_q == 256  # an 8192-byte row: past every WHOLE_TILES row
    assert cfg(5120, 13824, "bitlinear", b=2).block_q < 3456  # batch 1 only
    monkeypatch.setattr(fused_ops, "OPTIONS", fused_ops.parse_options("dp4a,prequant,qnext,fold"))
    assert cfg(5120, 13824, "bitlinear") == looped  # without the option
