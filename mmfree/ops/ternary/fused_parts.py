"""Device pieces of the fused decode kernels (`fused.py`): the RMSNorm + int8 prologue, the GEMV inner loop
over the 2-bit layout on three paths, and the programmatic-dependent-launch wait.

Paths of the inner loop (`PATH`): 0, the bytes of a `[BLOCK_N, BLOCK_Q]` tile widened to int32 and their
codes w + 1 in {0, 1, 2} broadcast against the activation codes (CUDA cores); 1, the same tile read as
int32 words of 16 codes, one quarter's four codes per word multiplied by four activation codes with one
`dp4a` (CUDA cores, a quarter of the instructions); 2, the tile unpacked to {-1, 0, 1} int8 planes, each a
`tl.dot` on the int8 tensor cores. Every path sums exactly in int32, so all three give the same bits.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

# Round to bf16 with the hardware conversion (half to even, one instruction and a shift back), except under
# Triton's CPU interpreter, whose fp32 -> bf16 cast truncates: there `_rnd` rounds half to even on the bits
# (the same values, four more integer instructions a value). TRITON_INTERPRET is read, as Triton reads it,
# when the kernels are defined.
_HW_BF16 = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")


@triton.jit
def _block(B, N, ROWS: tl.constexpr, BLOCK_N: tl.constexpr):
    # this program's batch rows and output columns, with their masks: (rows, rmask, rn, nmask)
    rows = tl.program_id(1) * ROWS + tl.arange(0, ROWS)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    return rows, rows < B, rn, rn < N


@triton.jit
def _rnd(v, REF):
    # round an fp32 value to the dtype REF points to (what the unfused path stores), back in fp32; half to
    # even, on the bits under the interpreter (`_HW_BF16`)
    if REF.dtype.element_ty == tl.float32:
        return v
    elif REF.dtype.element_ty == tl.bfloat16 and not _HW_BF16:
        b = v.to(tl.uint32, bitcast=True)
        b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
        return b.to(tl.float32, bitcast=True)
    else:
        return v.to(REF.dtype.element_ty).to(tl.float32)


@triton.jit
def _src(X, H, W1, r1, rows, rmask, k, kmask, stride_x, stride_h, MODE: tl.constexpr):
    # the BitLinear input at columns k for rows: raw (0), RMSNorm(x) * w1 (1), RMSNorm(g) * w1 * SiLU(h) (2)
    m2 = rmask[:, None] & kmask[None, :]
    v = tl.load(X + rows[:, None] * stride_x + k[None, :], mask=m2, other=0.0).to(tl.float32)
    if MODE >= 1:
        w = tl.load(W1 + k, mask=kmask, other=0.0).to(tl.float32)
        v = _rnd(v * r1[:, None] * w[None, :], X)
    if MODE == 2:
        v = _silu_gate(v, tl.load(H + rows[:, None] * stride_h + k[None, :], mask=m2, other=0.0), X)
    return v


@triton.jit
def _silu_h(h, X):
    # SiLU of the fp32 state h rounded to the model dtype, in fp32 (the official output gate's last factor)
    h = _rnd(h, X)
    return h * tl.sigmoid(h)


@triton.jit
def _silu_gate(v, h, X):
    # the official output gate: v * SiLU(h) in the model dtype (every MODE 2 input transform: this file's,
    # `fold.py`'s and `prequant.py`'s; MODE 3, the "silu" option, reads `_silu_h` as the MLGRU stored it)
    return _rnd(v * _silu_h(h, X), X)


@triton.jit
def _mean_sq(
    X,
    H,
    W1,
    r1,
    rows,
    rmask,
    K,
    stride_x,
    stride_h,
    MODE: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # [ROWS] mean of the squared input (of `_src` in MODE) over its K columns
    acc = tl.zeros([ROWS], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        v = _src(X, H, W1, r1, rows, rmask, k, k < K, stride_x, stride_h, MODE)
        acc += tl.sum(v * v, axis=1)
    return acc / K


@triton.jit
def _act_scale(
    X,
    H,
    W1,
    r1,
    W2,
    r2,
    rows,
    rmask,
    K,
    stride_x,
    stride_h,
    MODE: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # [ROWS] int8 scale 127 / max|xn| of xn = RMSNorm(src) * w2 rounded to the model dtype
    amax = tl.zeros([ROWS], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < K
        v = _src(X, H, W1, r1, rows, rmask, k, kmask, stride_x, stride_h, MODE)
        amax = tl.maximum(amax, tl.max(tl.abs(_normed(v, W2, r2, k, kmask, X)), axis=1))
    return _inv_amax(amax)


@triton.jit
def _act_scale3(X, W1, r1, WA, ra, WB, rb, WC, rc, rows, rmask, K, stride_x, ROWS: tl.constexpr,
                BLOCK_K: tl.constexpr):  # fmt: skip
    # `_act_scale` (MODE 1: src = RMSNorm(x) * w1) for three second norms in one pass: (s_a, s_b, s_c)
    amax_a = tl.zeros([ROWS], dtype=tl.float32)
    amax_b = tl.zeros([ROWS], dtype=tl.float32)
    amax_c = tl.zeros([ROWS], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < K
        v = _src(X, X, W1, r1, rows, rmask, k, kmask, stride_x, 0, 1)
        amax_a = tl.maximum(amax_a, tl.max(tl.abs(_normed(v, WA, ra, k, kmask, X)), axis=1))
        amax_b = tl.maximum(amax_b, tl.max(tl.abs(_normed(v, WB, rb, k, kmask, X)), axis=1))
        amax_c = tl.maximum(amax_c, tl.max(tl.abs(_normed(v, WC, rc, k, kmask, X)), axis=1))
    return _inv_amax(amax_a), _inv_amax(amax_b), _inv_amax(amax_c)


@triton.jit
def _inv_amax(amax):
    # [ROWS] int8 scale 127 * (1 / max(amax, 1e-5)), as torch evaluates `127.0 / tensor` (a reciprocal, then
    # a product)
    return tl.math.div_rn(tl.zeros_like(amax) + 1.0, tl.maximum(amax, 1e-5)) * 127.0


@triton.jit
def _quarter(X, H, W1, r1, rows, rmask, J: tl.constexpr, rq, Kq, K, stride_x, stride_h, MODE: tl.constexpr):
    # quarter J of the input row at the bytes rq of the 2-bit layout (the columns J Kq + rq), as `_src` in
    # MODE gives it, with those columns and their mask: one K step of the GEMV loop
    k = J * Kq + rq
    kmask = (rq < Kq) & (k < K)
    return _src(X, H, W1, r1, rows, rmask, k, kmask, stride_x, stride_h, MODE), k, kmask


@triton.jit
def _normed(v, W, r, k, kmask, X):
    # v * r * w rounded to the model dtype (an RMSNorm's output, given its 1 / rms r)
    w = tl.load(W + k, mask=kmask, other=0.0).to(tl.float32)
    return _rnd(v * r[:, None] * w[None, :], X)


@triton.jit
def _pick(J: tl.constexpr, t0, t1, t2, t3):
    # quarter J of four (J is a compile-time constant; Triton has no dict or tuple indexing here)
    if J == 0:  # noqa: SIM116
        return t0
    elif J == 1:
        return t1
    elif J == 2:
        return t2
    else:
        return t3


@triton.jit
def _out_scale(g, s):
    # [ROWS] fp32 output scale g / s (weight scale over activation scale), as the unfused path divides
    return tl.math.div_rn(g + tl.zeros_like(s), s)


@triton.jit
def _codes(v, W2, r2, s, k, kmask, X):
    # [ROWS, BQ] int32 codes of xn = v * r2 * w2 (model dtype) at the int8 scale s
    return _int8_codes(_normed(v, W2, r2, k, kmask, X) * s[:, None])


@triton.jit
def _int8_codes(y):
    # int32 codes clamp(round_half_even(y), -128, 127), as torch.round then clamp (clamping first gives the
    # same codes: the bounds are integers); adding 1.5 * 2**23 rounds y half to even into the low mantissa
    # bits, so the sum's bits are 0x4B400000 + code, which one integer subtraction reads out
    q = tl.minimum(tl.maximum(y, -128.0), 127.0) + 12582912.0
    return q.to(tl.int32, bitcast=True) - 0x4B400000


@triton.jit
def _proj(acc, qsum, p, v, W2, r2, s, k, kmask, X, J: tl.constexpr, PATH: tl.constexpr, ASM: tl.constexpr):
    # one projection's share of quarter J: the int8 codes of its normalized input v, multiplied into acc
    q = _codes(v, W2, r2, s, k, kmask, X)
    return _mac(acc, p, q, J, PATH, ASM), qsum + tl.sum(q, axis=1)


@triton.jit
def _proj2(acc_a, acc_b, qsum, p_a, p_b, v, W2, r2, s, k, kmask, X, J: tl.constexpr, PATH: tl.constexpr,
           ASM: tl.constexpr):  # fmt: skip
    # as `_proj` for two row blocks of one BitLinear (the GLU's gate and up rows): one set of codes
    q = _codes(v, W2, r2, s, k, kmask, X)
    return _mac(acc_a, p_a, q, J, PATH, ASM), _mac(acc_b, p_b, q, J, PATH, ASM), qsum + tl.sum(q, axis=1)


@triton.jit
def _dot(p, q, J: tl.constexpr):
    # [ROWS, BN] partial sum of code * q over this byte tile's quarter J (codes w + 1 in {0, 1, 2})
    c = (p >> (2 * J)) & 3
    return tl.sum(c[None, :, :] * q[:, None, :], axis=2)


@triton.jit
def _dp4a(a, b, c, ASM: tl.constexpr):
    # c + the dot product of the four signed bytes of a with those of b, per int32 element: one `dp4a`
    # instruction on the GPU, the same sum spelled out elsewhere (the interpreter has no inline assembly)
    if ASM:
        return tl.inline_asm_elementwise(
            "dp4a.s32.s32 $0, $1, $2, $3;", "=r,r,r,r", [a, b, c], dtype=tl.int32, is_pure=True, pack=1
        )
    else:
        for t in tl.static_range(4):
            c += ((a << (24 - 8 * t)) >> 24) * ((b << (24 - 8 * t)) >> 24)
        return c


@triton.jit
def _tile(P, rn, nmask, i0, Kq, BLOCK_Q: tl.constexpr, PATH: tl.constexpr):
    # the weight tile of bytes i0 .. i0 + BLOCK_Q of rows rn: `[BQ, BN]` uint8 for the tensor cores (PATH 2),
    # `[BN, BQ // 4]` int32 words of 16 codes for dp4a (PATH 1: P is the layout viewed as int32), else
    # `[BN, BQ]` bytes widened to int32 (PATH 0); bytes past Kq read as 0
    if PATH == 2:
        ii = i0 + tl.arange(0, BLOCK_Q)
        return tl.load(P + rn[None, :] * Kq + ii[:, None], mask=nmask[None, :] & (ii[:, None] < Kq), other=0)
    elif PATH == 1:
        iw = i0 // 4 + tl.arange(0, BLOCK_Q // 4)
        Kw = Kq // 4
        return tl.load(P + rn[:, None] * Kw + iw[None, :], mask=nmask[:, None] & (iw[None, :] < Kw), other=0)
    else:
        ii = i0 + tl.arange(0, BLOCK_Q)
        p = tl.load(P + rn[:, None] * Kq + ii[None, :], mask=nmask[:, None] & (ii[None, :] < Kq), other=0)
        return p.to(tl.int32)


@triton.jit
def _acc0(ROWS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_Q: tl.constexpr, PATH: tl.constexpr):
    # a zero accumulator: `[ROWS, BN, BQ // 4]` per-word partial sums for dp4a, else `[ROWS, BN]`
    if PATH == 1:
        return tl.zeros([ROWS, BLOCK_N, BLOCK_Q // 4], dtype=tl.int32)
    else:
        return tl.zeros([ROWS, BLOCK_N], dtype=tl.int32)


@triton.jit
def _ysum(acc, qsum, PATH: tl.constexpr):
    # [ROWS, BN] int32 products of an accumulator from `_acc0`; paths 0 and 1 multiplied w + 1, so the
    # code sum of each row is subtracted (the tensor-core path multiplied w itself)
    if PATH == 2:
        return acc
    elif PATH == 1:
        return tl.sum(acc, axis=2) - qsum[:, None]
    else:
        return acc - qsum[:, None]


@triton.jit
def _y(acc, qsum, g, s, X, PATH: tl.constexpr):
    # [ROWS, BN] BitLinear output in fp32, rounded to the model dtype: the exact int32 sums times g / s (g the
    # weight scale, a loaded value)
    return _rnd(_ysum(acc, qsum, PATH).to(tl.float32) * _out_scale(g, s)[:, None], X)


@triton.jit
def _mlgru_prev(LB, H, rows, rmask, rn, nmask, stride_h, HAS_LB: tl.constexpr):
    # the MLGRU epilogue's inputs that no other kernel of a decode step writes: the lower bound `[1, BN]` (0
    # without one) and the fp32 state `[ROWS, BN]` of the step before
    lb = 0.0
    if HAS_LB:
        lb = tl.load(LB + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
    hm = rmask[:, None] & nmask[None, :]
    return lb, tl.load(H + rows[:, None] * stride_h + rn[None, :], mask=hm, other=0.0)


@triton.jit
def _mlgru_store(yi, yf, yg, lb, hp, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB: tl.constexpr,
                 OFFICIAL: tl.constexpr, SH=None, SILU: tl.constexpr = False):  # fmt: skip
    # MLGRU epilogue on `_mlgru_prev`'s lb, hp: f = sigmoid(yf) (lifted by the lower bound), h = f h_prev +
    # SiLU(yi) (1 - f) in place in the fp32 state H; OUT receives g ("official") or sigmoid(g) * h ("paper").
    # With SILU also `_silu_h(h)` into SH (fp32, H's layout), for the output gate's MODE 3.
    f = tl.sigmoid(yf)
    if HAS_LB:
        f = lb + (1.0 - lb) * f
    hm = rmask[:, None] & nmask[None, :]
    h = f * hp + (yi * tl.sigmoid(yi)) * (1.0 - f)
    tl.store(H + rows[:, None] * stride_h + rn[None, :], h, mask=hm)
    if SILU:
        tl.store(SH + rows[:, None] * stride_h + rn[None, :], _silu_h(h, X), mask=hm)
    if OFFICIAL:
        out = yg
    else:
        out = _rnd(_rnd(tl.sigmoid(yg), X) * _rnd(h, X), X)
    tl.store(OUT + rows[:, None] * stride_o + rn[None, :], out.to(OUT.dtype.element_ty), mask=hm)


@triton.jit
def _mlgru_out(yi, yf, yg, LB, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB: tl.constexpr,
               OFFICIAL: tl.constexpr):  # fmt: skip
    # `_mlgru_store` with its inputs loaded here
    lb, hp = _mlgru_prev(LB, H, rows, rmask, rn, nmask, stride_h, HAS_LB)
    _mlgru_store(yi, yf, yg, lb, hp, H, OUT, X, rows, rmask, rn, nmask, stride_h, stride_o, HAS_LB, OFFICIAL)


@triton.jit
def _residual(Y, rows, rmask, rn, nmask, stride_y, RESIDUAL: tl.constexpr):
    # the residual stream's `[ROWS, BN]` values a BitLinear epilogue adds to (fp32; 0 without RESIDUAL)
    res = 0.0
    if RESIDUAL:
        ym = rmask[:, None] & nmask[None, :]
        res = tl.load(Y + rows[:, None] * stride_y + rn[None, :], mask=ym, other=0.0).to(tl.float32)
    return res


@triton.jit
def _linear_store(y, res, Y, rows, rmask, rn, nmask, stride_y, RESIDUAL: tl.constexpr):
    # BitLinear epilogue: store y, or y added to the residual stream's `_residual` values, in place
    ym = rmask[:, None] & nmask[None, :]
    if RESIDUAL:
        y = res + y
    tl.store(Y + rows[:, None] * stride_y + rn[None, :], _rnd(y, Y).to(Y.dtype.element_ty), mask=ym)


@triton.jit
def _linear_out(y, Y, rows, rmask, rn, nmask, stride_y, RESIDUAL: tl.constexpr):
    # `_linear_store` with the residual loaded here
    res = _residual(Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)
    _linear_store(y, res, Y, rows, rmask, rn, nmask, stride_y, RESIDUAL)


@triton.jit
def _glu_out(gate, up, U, X, rows, rmask, rn, nmask, stride_u):
    # GLU epilogue: U = SiLU(gate) * up, each product rounded to the model dtype as the unfused path stores it
    u = _rnd(gate * tl.sigmoid(gate), X) * up
    um = rmask[:, None] & nmask[None, :]
    tl.store(U + rows[:, None] * stride_u + rn[None, :], _rnd(u, U).to(U.dtype.element_ty), mask=um)


@triton.jit
def _mac(acc, p, q, J: tl.constexpr, PATH: tl.constexpr, ASM: tl.constexpr):
    # acc + the codes q `[ROWS, BQ]` times quarter J of the tile p. PATH 2: on the int8 tensor cores with the
    # weights {-1, 0, 1} (exact in int32, nothing to subtract after); PATH 1: dp4a of the words' quarter-J
    # bytes (w + 1 in {0, 1, 2}, four codes per instruction) with q packed four bytes to a word; PATH 0: on
    # the CUDA cores with w + 1 broadcast. Paths 0 and 1 leave sum(q) to subtract after.
    if PATH == 2:
        w = ((p >> (2 * J)) & 3).to(tl.int8) - 1
        return tl.dot(q.to(tl.int8), w, acc, out_dtype=tl.int32)
    elif PATH == 1:
        R: tl.constexpr = q.shape[0]
        W: tl.constexpr = q.shape[1] // 4
        shift = tl.arange(0, 4) * 8
        qw = tl.sum(tl.reshape(q & 0xFF, [R, W, 4]) << shift[None, None, :], axis=2)  # [ROWS, BQ // 4]
        wj = (p >> (2 * J)) & 0x03030303  # [BN, BQ // 4]: byte t of word m is the code of k = J Kq + 4m + t
        a = tl.broadcast_to(wj[None, :, :], acc.shape)
        b = tl.broadcast_to(qw[:, None, :], acc.shape)
        return _dp4a(a, b, acc, ASM)
    else:
        return acc + _dot(p, q, J)


@triton.jit
def _act_words(QW, i0, Kw, BW: tl.constexpr):
    # one row's activation words (int32, `[Kq]` from QW) for the weight words i0 / 4 .. i0 / 4 + BW of every
    # quarter: four `[BW]` vectors (quarter j at j Kw + word), 0 past the row
    iw = i0 // 4 + tl.arange(0, BW)
    m = iw < Kw
    c0 = tl.load(QW + iw, mask=m, other=0)
    c1 = tl.load(QW + Kw + iw, mask=m, other=0)
    c2 = tl.load(QW + 2 * Kw + iw, mask=m, other=0)
    c3 = tl.load(QW + 3 * Kw + iw, mask=m, other=0)
    return c0, c1, c2, c3


# `_mac4` for one weight word in one PTX block ("wmac" option): $0 = $6 + the dot of the word's four quarters
# ($1 >> 2j) & 0x03030303 with the activation words $2..$5, in registers of its own (t, u), so no input is
# overwritten before it is read. Triton emits an element-wise op for every element of the tile before the
# next op; with the four dp4a as four ops, every word's accumulator is live beside every weight word.
_MAC4_ASM = tl.constexpr("""{
.reg .b32 t, u;
and.b32 t, $1, 0x03030303;
dp4a.s32.s32 u, t, $2, $6;
shr.u32 t, $1, 2;
and.b32 t, t, 0x03030303;
dp4a.s32.s32 u, t, $3, u;
shr.u32 t, $1, 4;
and.b32 t, t, 0x03030303;
dp4a.s32.s32 u, t, $4, u;
shr.u32 t, $1, 6;
and.b32 t, t, 0x03030303;
dp4a.s32.s32 $0, t, $5, u;
}""")


@triton.jit
def _mac4(acc, p, c0, c1, c2, c3, ASM: tl.constexpr):
    # acc `[BN, BW]` + the weight words p `[BN, BW]` times `_act_words`' four vectors: quarter j of weight
    # word m meets activation word j Kw + m (one dp4a per quarter)
    if ASM == 2:  # "wmac": one asm block a word, so the word's register dies where its sum is made
        return tl.inline_asm_elementwise(
            _MAC4_ASM,
            "=r,r,r,r,r,r,r",
            [
                p,
                tl.broadcast_to(c0[None, :], acc.shape),
                tl.broadcast_to(c1[None, :], acc.shape),
                tl.broadcast_to(c2[None, :], acc.shape),
                tl.broadcast_to(c3[None, :], acc.shape),
                acc,
            ],
            dtype=tl.int32,
            is_pure=True,
            pack=1,
        )
    for j in tl.static_range(4):
        wj = (p >> (2 * j)) & 0x03030303  # [BN, BW]: codes w + 1 of quarter j
        acc = _dp4a(wj, tl.broadcast_to(_pick(j, c0, c1, c2, c3)[None, :], acc.shape), acc, ASM)
    return acc


@triton.jit
def _y_rows(acc, qsum, g, s, X):
    # `_y` of a batch-1 dp4a accumulator `[BN, BW]` (PATH 1, one row): `[1, BN]`. Summed in its own 2-D
    # layout, where `_y` on `acc[None]` would first move the whole tile into a 3-D layout through shared
    # memory (a store, barriers and a load per projection on sm_90); the sums then finish as PATH 0's
    return _y(tl.sum(acc, axis=1)[None, :], qsum, g, s, X, 0)


@triton.jit
def _y_rows2(acc, acc2, qsum, g, s, X):
    # `_y_rows` of a row held as two accumulators `[BN, BW]`, `[BN, BW2]`: a whole row in two power-of-two
    # pieces ("wsplit"); the exact int32 sums of both, then the same scaling and rounding
    return _y((tl.sum(acc, axis=1) + tl.sum(acc2, axis=1))[None, :], qsum, g, s, X, 0)


@triton.jit
def _wait_inputs(PDL: tl.constexpr):
    # with programmatic dependent launch, everything before this point (the first weight tiles) overlaps
    # the previous kernel; wait for it to finish (and its writes to land), then let the next one launch
    if PDL:
        gdc_wait()
        gdc_launch_dependents()
