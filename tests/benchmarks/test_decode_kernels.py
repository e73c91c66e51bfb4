"""`benchmarks/decode_kernels.py`'s tile arguments set the tables the fused decode kernels read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import decode_kernels as dk

from mmfree.ops.ternary import fold


@pytest.fixture
def restore_fold():
    yield
    dk.set_fold_tiles("default")


def test_parse_tile() -> None:
    assert dk.parse_tile("32x8") == (32, 8, 256) and dk.parse_tile("8x4x4096") == (8, 4, 4096)
    assert dk.parse_tile("default") is None
    with pytest.raises(SystemExit, match="powers of two"):
        dk.parse_tile("12x4")


def test_parse_warps() -> None:
    assert dk.parse_warps("32,16,4") == [32, 16, 4]
    for bad in ("3", "64", "x", ""):
        with pytest.raises(SystemExit, match="powers of two from 4 to 32"):
            dk.parse_warps(bad)


def test_fold_tiles(restore_fold) -> None:
    default = dict(fold.FOLD_TILES)
    dk.set_fold_tiles("glu:32x8")  # every GLU row gets the tile, the bounds stay
    assert [r[:2] for r in fold.FOLD_TILES["glu"]] == [r[:2] for r in default["glu"]]
    assert all(r[2:] == (32, 8) for r in fold.FOLD_TILES["glu"])
    assert fold.FOLD_TILES["mlgru"] == default["mlgru"]
    dk.set_fold_tiles("bitlinear:8x8@1024x8192+mlgru:off")  # a row added after the table's; none
    assert fold.FOLD_TILES["bitlinear"] == (*default["bitlinear"], (1024, 8192, 8, 8))
    assert fold.FOLD_TILES["mlgru"] == () and fold.FOLD_TILES["glu"] == default["glu"]
    assert fold.fold_tile("bitlinear", 5120, 3456, True) == (8, 8, 1024)  # 13B's down_proj now folds
    dk.set_fold_tiles("default")
    assert default == fold.FOLD_TILES and fold.fold_tile("bitlinear", 5120, 3456, True) is None
    for bad in ("gate:8x8", "glu:8x3", "bitlinear:8x8@1024"):
        with pytest.raises(SystemExit, match="must read"):
            dk.set_fold_tiles(bad)


def test_whole_tiles() -> None:
    from mmfree.ops.ternary import fused as fused_ops

    saved = fused_ops.WHOLE_TILES
    try:
        dk.set_whole_tiles("4096:4x4+2048:8x4")  # sorted by bound: the first row that holds a row takes it
        assert fused_ops.WHOLE_TILES == ((2048, 8, 4), (4096, 4, 4))
        for bad in ("x:8x4", "4096:8x3", "4096"):
            with pytest.raises(SystemExit, match="must read"):
                dk.set_whole_tiles(bad)
        dk.set_whole_tiles("default")
        assert saved == fused_ops.WHOLE_TILES
    finally:
        fused_ops.WHOLE_TILES = saved


def test_fold_caps() -> None:
    saved = dict(fold.FOLD_MAX_REGS)
    try:
        dk.set_fold_caps("none")
        assert fold.FOLD_MAX_REGS == {}
        dk.set_fold_caps("default")
        assert saved == fold.FOLD_MAX_REGS and saved
        with pytest.raises(SystemExit, match="default or none"):
            dk.set_fold_caps("104")
    finally:
        fold.FOLD_MAX_REGS = saved


def test_set_tile() -> None:
    """One tile everywhere, or a prequant table by outputs (the default's first row and late flags kept)."""
    from mmfree.ops.ternary import fused as fused_ops

    default = fused_ops.PREQUANT_TILES
    try:
        dk.set_tile("16x2")
        assert fused_ops.PREQUANT_TILES == fused_ops.WORDS_TILES == ((2**62, 16, 256, 2),)
        dk.set_tile("8192:16x4x256+16x4x128")
        table = fused_ops.PREQUANT_TILES
        assert table == (default[0], (8192, 16, 256, 4, True), (2**62, 16, 128, 4, True))
        # the 13B widths: MLGRU input 5120 outputs, GLU input 13824
        assert next(t for t in fused_ops.PREQUANT_TILES if t[0] >= 5120)[2] == 256
        assert next(t for t in fused_ops.PREQUANT_TILES if t[0] >= 13824)[2] == 128
        for bad in ("x:16x4", "8192:16x4x12"):
            with pytest.raises(SystemExit):
                dk.set_tile(bad)
    finally:
        dk.set_tile("default")
    restored = fused_ops.PREQUANT_TILES
    assert restored == default
