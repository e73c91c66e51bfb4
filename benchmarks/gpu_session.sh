#!/usr/bin/env bash
# One batched GPU session (device time is scarce): GPU tests, the MLGRU kernels (tiled and look-back forms),
# training throughput vs the peers, decode speed at 370M (fused and unfused step; the fused kernels' dp4a/pdl
# options and batch-1 tiles at 370M, 1.3B and 13B), evaluation speed at 370M, and (with 2 GPUs) the trainer's own throughput and its 1 -> 2
# GPU scaling. Each part has its own time limit; logs go to
# $OUT (or ./gpu-out). Carry .whl (flash-linear-attention 0.6.0 wheels, for the official-code peer) and
# .carry/eval (a copy of shared/data/eval; `python -m study.prepare` or `cp -r ../shared/data/eval .carry/`).
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ date -u; nvidia-smi -L; python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)"; } | tee "$OUT/env.txt"
# PARTS="gpu_tests decode_fused ..." runs only those parts (the whole script can outlast one 10-minute call).
# Groups that each fit one call (under 10 minutes; the parts' limits are upper bounds). Session 4 ran the
# first four; the next session starts with the fifth (the fused ternarization of session 4 is untimed):
#   PARTS="gpu_tests kernels_mlgru"                    tests first: a kernel option that fails them is not timed
#   PARTS="decode_options decode_kernels decode_floor" batch-1 decode: options, per-kernel times, floor ratios
#   PARTS="kernels_mlgru decode_tiles decode_targets"  look-back scan configs; dp4a tiles; 370M/13B vs peers
#   PARTS="train_370m_b32 train_13b_b8 decode_fused"   training throughput with profiles; batched decode
#   PARTS="gpu_tests train_13b_b8 train_370m_b32"      next: new GPU tests, then training with the fused ternarization
#   (decode_tiles2: narrower dp4a tiles, after decode_tiles found the narrowest of its list fastest)
# Session 8 timed session 7's scan options, then segments (S) and two columns per thread (V=2):
#   PARTS="scan7_tests scan8_sweep"                    GPU tests of every layout, then the sweep at 4 shapes
#   FAST=1 PARTS="scan8_sweep scan8_train_370m"        the sweep (MUFU sigmoid only), training with its best
#   PARTS="scan8_gpu_tests scan8_kernels scan8_train_370m scan8_train_13b"   the new tables as defaults
# Session 9 ran FAST=1 PARTS="scan7_tests scan8_sweep", then scan9_*, decode_epi*, late_*, decode_ncu, qnext_*.
# Session 10 ran PARTS="scan_ncu splitk_tests splitk_ab" (Nsight Compute on the scan at B=8; split K tested and
# timed: slower, then opt-in, removed in session 11), then PARTS="s10_tests s10_train", then PARTS="s10q_tests
# s10q_ab s10q_targets" (the load orders and qnext re-landed; qnext became the default) and decode_epi_targets.
# Session 11 ran s11_stream s11_cold, the qtrigger parts, s11_probes, the s11_fold* parts (three times, one per
# version of fold.py), s11_gpu_tests s11_targets. Session 12 ran s12_stream_work s12_fold_off, the s12_ncu_*
# parts, s12_ahead s12_warps s12_hints s12_chunks (probe variants), s12_decode_tests s12_targets (the lookahead
# loop), then `pytest -m gpu tests/infer/` directly. Session 13 ran s13_all, s13_one_tests s13_one, s13_whole*,
# s13_gpu_tests s13_tiles2, s13_rows, s13_targets s13_probes, s13_fix*, s13_targets13, s13_qtrig (at f053794),
# s13_quant*, s13_final_targets s13_final_tests, s13_fold13. Session 14 ran s14_fill s14_tests, s14_whole,
# s14_fold13, s14_final_tests s14_final_targets, two scratch timings (joint row sums; quantization warps),
# s14_rows s14_rows_tests s14_rows_targets, and an A/B of the commit before. Session 15 ran s15_cap_tests s15_cap,
# s15_quant_tests s15_quant_ab s15_residency (abold/ = `git archive` of the commit before), s15_sweep13
# s15_targets, s15_tiles13, s15_caps13, s15_final_tests s15_final_targets s15_final_kernels. Session 16 ran
# s16_pieces s16_whole13 s16_probes13, s16_targets s16_kernels s16_tests, s16_targets again, the two probes of
# boundary_probes.py (as scratch scripts), s16_pick_tests s16_targets, s16_flag s16_split, s16_tiles27.
# Session 17 ran the tail probe (as a scratch call), then s17_csum_tests s17_csum, s17_silu_tests s17_silu,
# s17_p3_tests s17_p3, s17_ws_tests s17_ws, s17_targets; s17_ws3 is for the next session.
# Session 18 ran s18_tests s18_wvec13, s18_wvec27 s18_tiles13, s18_mac_tests s18_mac13 s18_mac_small, s18_keep_tests s18_keep, s18_glu_tests s18_glu13, s18_noq, s18_final_tests s18_targets.
part() { local name=$1 limit=$2; shift 2; if [ -n "${PARTS:-}" ] && [[ " $PARTS " != *" $name "* ]]; then return; fi; echo "== $name"; timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; echo "   rc=$? ($name)"; tail -n 3 "$OUT/$name.log"; }

part gpu_tests 300 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/
part kernels_mlgru 200 python3 benchmarks/kernels.py --quick --only mlgru --sweep-lookback
part train_370m_b32 230 python3 benchmarks/train_step.py --grid 370m:32 --warmup 2 --steps 5 --profile 15
part train_13b_b8 200 python3 benchmarks/train_step.py --grid 1.3b:8 --impls mmfree-triton,fla-official,llama-sdpa --warmup 2 --steps 4 --profile 15
part decode_370m 100 python3 benchmarks/decode.py --presets 370m --unfused --budget 80
part decode_options 250 python3 benchmarks/decode.py --presets 370m,1.3b,13b --batches 1 --prompts 128 --contexts "" \
  --models fused,fused+dp4a,fused+pdl,fused+dp4a+pdl,fused+dp4a+pdl@32x8,fused+dp4a+pdl@64x8 --budget 210  # (session 4 also ran "single", removed in 12)
part decode_kernels 160 python3 benchmarks/decode_kernels.py --presets 370m,13b --quick
part decode_tiles 240 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --options dp4a --quick \
  --tiles default,16x4,32x8,64x8,128x8,64x16,64x8x512
part decode_tiles2 100 python3 benchmarks/decode_kernels.py --presets 1.3b,13b --options dp4a --quick \
  --tiles 8x4,16x2,8x2,16x4x128
part decode_targets 200 python3 benchmarks/decode.py --presets 370m,13b --models packed,fake,llama --batches 1 \
  --prompts 128 --contexts "" --budget 170
part decode_floor 150 python3 benchmarks/decode.py --presets 1.3b,2.7b,13b --models packed --batches 1 --prompts 128 \
  --contexts "" --budget 120
part decode_fused 100 python3 benchmarks/decode.py --presets 370m --models fused,unfused --prompts 128 --batches 1,2,4,8,16 --budget 80
part decode_prequant 300 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick \
  --options dp4a,dp4a+prequant,dp4a+prequant+pdl --tiles default,32x4,64x8,16x4x512
part decode_prequant_step 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --batches 1 --prompts 128 \
  --contexts "" --models packed,fused+dp4a+prequant,fused+dp4a+prequant+pdl --budget 170
part prequant_tests 150 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k prequant
part decode_prequant2 150 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick \
  --options dp4a,dp4a+prequant+pdl --tiles default,8x4,32x4
part decode_prequant_targets 150 python3 benchmarks/decode.py --presets 370m,1.3b,13b --batches 1 --prompts 128 \
  --contexts "" --models packed,fused+dp4a+prequant,fused+dp4a+prequant+pdl --budget 130
part int8_sweep 200 python3 benchmarks/kernels.py --quick --only none --sweep-int8
part final_tests 150 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py tests/ops/test_kernels_gpu.py \
  -k "prequant or real_shape or bitlinear_bf16"
part final_train_13b 200 python3 benchmarks/train_step.py --grid 1.3b:8 --impls mmfree-triton,fla-official --warmup 2 --steps 4
part final_decode_kernels 100 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick --options dp4a,dp4a+prequant+pdl
part final_decode_targets 170 python3 benchmarks/decode.py --presets 13b,370m,1.3b --models packed,fake,llama --batches 1 \
  --prompts 128 --contexts "" --budget 150
part prequant_tiles 150 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick --options dp4a+prequant+pdl \
  --tiles default,8x4,32x4,16x8,16x2,16x4x512,8x2
part scan_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/ops/test_kernels_gpu.py -k mlgru
part scan_sweep 200 python3 benchmarks/kernels.py --quick --only mlgru --sweep
part scan_sweep_13b 150 python3 benchmarks/kernels.py --quick --only none --sweep --sweep-shapes 8x2048,16x2048
part final_train_370m 180 python3 benchmarks/train_step.py --grid 370m:32 --impls mmfree-triton,fla-official --warmup 2 --steps 5
part scan_ncu 150 ncu --clock-control none -k regex:"_fwd_tiled_kernel|_bwd_tiled_kernel|^_fwd_kernel$" \
  --launch-skip 21 --launch-count 9 --section SpeedOfLight --section Occupancy --section WarpStateStats \
  --section MemoryWorkloadAnalysis python3 benchmarks/scan_profile.py
part scan7_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/ops/test_kernels_gpu.py -k mlgru
part scan7_sweep 330 python3 benchmarks/kernels.py --quick --only mlgru --sweep --save-best "$OUT/best_tiles.txt"
part scan7_sweep_13b 240 python3 benchmarks/kernels.py --quick --only none --sweep --sweep-shapes 8x2048,16x2048
part scan7_train_370m 200 python3 benchmarks/train_step.py --grid 370m:32 --impls mmfree-triton,fla-official --warmup 2 --steps 5 \
  --mlgru-tiles "${TILES:-}" ${PLAIN:+--plain-sigmoid}
part scan8_sweep 420 python3 benchmarks/kernels.py --quick --only none --sweep --sweep-shapes 8x1024,32x1024,8x2048,16x2048 \
  --save-best "$OUT/best_tiles.txt" ${FAST:+--sweep-fast-only}
part scan8_train_370m 240 python3 benchmarks/train_step.py --grid 370m:32 --impls mmfree-triton,fla-official --warmup 2 --steps 5 \
  --mlgru-tiles "${TILES:-$(cat "$OUT/best_tiles.txt" 2>/dev/null)}" ${PLAIN:+--plain-sigmoid}
part scan8_gpu_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/ops
part scan8_kernels 150 python3 benchmarks/kernels.py --quick --only mlgru
part scan8_train_13b 240 python3 benchmarks/train_step.py --grid 1.3b:8 --impls mmfree-triton,fla-official --warmup 2 --steps 4
# session 8 (untimed): the prequant GEMVs load their epilogue operands before the K loop; bits, then time
part decode_epi_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer tests/ops/test_ternary_triton.py
part decode_epi 200 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick --options dp4a+prequant+pdl \
  --probes none,noquant,nogemv
part decode_epi_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 \
  --prompts 128 --contexts "" --budget 170
# session 9: the tables from scan8_sweep's A variants as defaults: GPU tests, kernels, training vs the official code
part scan9_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/ops/test_kernels_gpu.py -k mlgru
part scan9_kernels 150 python3 benchmarks/kernels.py --quick --only mlgru
part scan9_train_370m 200 python3 benchmarks/train_step.py --grid 370m:32 --impls mmfree-triton,fla-official --warmup 2 --steps 5
part scan9_train_13b 200 python3 benchmarks/train_step.py --grid 1.3b:8 --impls mmfree-triton,fla-official --warmup 2 --steps 4
# session 9: decode_epi found the whole step faster at 370M and slower at 1.3B and 13B than session 6; the two
# load orders of the epilogue operands side by side ("late" = session 6's), then ncu on the 13B GEMVs
part late_tests 150 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k "prequant or late"
part late_ab 200 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick \
  --options dp4a+prequant+pdl,dp4a+prequant+pdl+late
# then the late/early rows as defaults, and "qnext" (next tile's activation words one tile ahead) A/B, the
# issue's targets with both, and the whole GPU suite
part qnext_ab 150 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick \
  --options dp4a+prequant+pdl,dp4a+prequant+pdl+qnext
part qnext_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --batches 1 --prompts 128 --contexts "" \
  --models packed,fused+dp4a+prequant+pdl+qnext,fake,llama --budget 170
part qnext_gpu_tests 240 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/
# session 10 timed the split-K GEMVs (option "splitk", removed in session 11) in parts splitk_tests / splitk_ab
# session 10: the real-shape decode tests after their rework (fp32 checks on 4 layers, batch 1 row by row),
# then one table of all four implementations at both presets, batch 8
part s10_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k real_shape
part s10_train 480 python3 benchmarks/train_step.py --grid 370m:8,1.3b:8 --warmup 2 --steps 4
# session 10, second half: session 9's load orders and qnext re-landed (their test failure was the flaky
# batch-1 check): GPU tests, then the three load orders side by side, then the targets with each
part s10q_tests 230 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py
part s10q_ab 160 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick \
  --options dp4a+prequant+pdl+late,dp4a+prequant+pdl,dp4a+prequant+pdl+qnext
part s10q_targets 100 python3 benchmarks/decode.py --presets 370m,1.3b,13b --batches 1 --prompts 128 --contexts "" \
  --models fused+dp4a+prequant+pdl+late,packed,fused+dp4a+prequant+pdl+qnext --budget 80
# next (session 11): the step's kernels as the step sees them (every layer's weights, from DRAM) against the
# L2-warm layer-0 repeats of every earlier per-kernel row
part s11_stream 240 python3 benchmarks/stream_probe.py --presets 1.3b,13b
part s11_cold 200 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick --options dp4a+prequant+pdl+qnext
# (parts s11_qtrig_tests / s11_qtrig timed option "qtrigger", removed after them)
part s11_probes 150 python3 benchmarks/decode_kernels.py --presets 1.3b,13b --quick --options dp4a+prequant+pdl+qnext --probes none,noquant,nogemv
part s11_fold_tests 250 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k "fold"
part s11_fold 200 python3 benchmarks/decode_kernels.py --presets 370m,1.3b --quick \
  --options dp4a+prequant+pdl+qnext,dp4a+prequant+pdl+qnext+fold,dp4a+prequant+pdl+qnext+fold+early
part s11_fold_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b --batches 1 --prompts 128 --contexts "" \
  --models packed,fused+dp4a+prequant+pdl+qnext+fold,fused+dp4a+prequant+pdl+qnext+fold+early
part s11_fold_sweep 300 python3 benchmarks/decode_kernels.py --presets 1.3b,370m --quick --options dp4a+prequant+pdl+qnext+fold \
  --fold-tiles default,glu:32x8,glu:16x8,glu:32x4,mlgru:16x16+bitlinear:16x8,mlgru:8x8,bitlinear:8x4
part s11_gpu_tests 330 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py
part s11_targets 250 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 200
# next (session 12): which kernels should fold (GLU input was slower folded than as the prequant pair, per
# kernel), then the GPU tests after any decode-kernel change
part s12_fold_off 200 python3 benchmarks/decode_kernels.py --presets 370m,1.3b --quick --options dp4a+prequant+pdl+qnext+fold \
  --fold-tiles default,glu:off,mlgru:off,bitlinear:off
part s12_stream_work 300 python3 benchmarks/stream_probe.py --presets 13b,1.3b \
  --variants loop2:16x4,act:16x4,dp4a:16x4,split:16x4,dp4a:16x4d3,dp4a:16x4d4,split:16x4d4,loop2:16x4d4,dp4a:8x4,dp4a:8x4d4,dp4a:32x4d4
# session 12: Nsight Compute on the stream probe's loop2 / act / dp4a GEMVs (layer 1 of a 2-layer 13B chain) and
# on the real 13B prequant kernels: why the activation words and dp4a add 230 + 180 µs to the 13B chain
NCU="ncu --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
  --section InstructionStats --section SchedulerStats --section Occupancy --section LaunchStats --section SourceCounters"
part s12_ncu_probe 300 bash -c "for v in loop2 act dp4a; do echo \"=== \$v\"; $NCU -k regex:_loop2_kernel --launch-skip 4 \
  --launch-count 4 python3 benchmarks/stream_probe.py --presets 13b --variants \$v:16x4 --once --layers 2; done"
part s12_ncu_real 200 $NCU -k regex:"_mlgru_in_kernel|_bitlinear_kernel|_glu_in_kernel|_quant_kernel" --launch-skip 40 \
  --launch-count 8 python3 benchmarks/decode_kernels.py --presets 13b --quick --options dp4a+prequant+pdl+qnext
# (s12_ncu_fold ran without --options, which then meant the byte-path kernels; decode_kernels.py now defaults
# to the library's options)
part s12_ncu_fold 200 $NCU -k regex:"_mlgru_in_kernel|_bitlinear_kernel|_glu_in_kernel" --launch-skip 40 \
  --launch-count 4 python3 benchmarks/decode_kernels.py --presets 1.3b --quick --options dp4a+prequant+pdl+qnext+fold
# the probe's loads issued at the top of the loop, activation words 1-2 tiles ahead (ncu: the act variant's
# loop waits on L1TEX at 2.4 warps per scheduler)
part s12_ahead 300 python3 benchmarks/stream_probe.py --presets 13b,1.3b \
  --variants loop2:16x4,dp4a:16x4,ahead1:16x4,ahead2:16x4,ahead1:16x4d3,ahead2:16x4d3,ahead2:8x4,ahead2:32x4
# fewer warps per program (each warp of a program loads the same activation words), activation words past L1
part s12_warps 300 python3 benchmarks/stream_probe.py --presets 13b \
  --variants dp4a:16x4,dp4a:16x1,dp4a:16x2,dp4a:8x1,dp4a:8x2,dp4a:32x2,dp4a:32x1,loop2:16x1,act:16x1,kwarp4:16x4,kwarp4cg:16x4
# cache policies: weights past L1 / evict-first, activation words evict-last
part s12_hints 300 python3 benchmarks/stream_probe.py --presets 13b,1.3b \
  --variants loop2:16x4,loop2h1:16x4,act:16x4,acth1:16x4,acth2:16x4,acth3:16x4,dp4a:16x4,dp4ah1:16x4,dp4ah2:16x4,dp4ah3:16x4
# the Decoder's lookahead loop (next step queued before the token is read back): its GPU tests, then the targets
# with decode.py's new `loop ms` column
part s12_decode_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_decode_gpu.py
part s12_targets 250 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 200
# a [rows, chunks, words] tile whose warps sit on the chunks (each activation word loaded by one warp of a
# program), on chunk-major or row-major weights
part s12_chunks 300 python3 benchmarks/stream_probe.py --presets 13b,1.3b --variants dp4a:16x4,loop2:16x4d4,chunk8:16x4,\
chunk8:16x4d4,chunk8:16x8d4,rowc8:16x4,rowc8:16x4d4,chunk16:8x4d4,rowc16:8x4d4,chunk4:32x4d4,rowc4:32x4d4
# session 13: whole rows loaded before the wait on a tile whose warps lie along K ([rows, >= 128 words a
# warp]), so each thread's activation words serve all the program's rows; against session 12's dp4a loop
part s13_all 420 python3 benchmarks/stream_probe.py --presets 13b,1.3b --variants dp4a:16x4,all:8x4,allact:8x4,\
alldp4a:4x4,alldp4a:8x4,alldp4a:16x4,alldp4a:8x8,alldp4a:32x8,allsplit:8x4,alldp4a:4x1,alldp4a:8x1,alldp4a:16x1,alldp4a:16x2
# the prequant GEMVs with a whole row in one tile (ONE, from BLOCK_Q >= the packed row) at 13B and 2.7B
part s13_one_tests 300 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k "whole_row or prequant_real_shape or qnext-1.3b"
part s13_one 400 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --tiles default,4x4x4096,8x4x4096,8x8x4096,16x8x4096
# the "whole" option (the BitLinear GEMVs only, 8 x 4, rows up to 4096 bytes), its GPU test, A/B, and decode.py
part s13_whole_tests 200 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k whole_row
part s13_whole 300 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick \
  --options dp4a+prequant+pdl+qnext+fold,dp4a+prequant+pdl+qnext+fold+whole
part s13_whole_decode 300 python3 benchmarks/decode.py --presets 13b,2.7b --batches 1 --prompts 128 --contexts "" \
  --models packed,fused+dp4a+prequant+pdl+qnext+fold+whole --budget 250
# with "whole" the default: the decode GPU tests; two-row whole tiles for the MLGRU / GLU kernels (per-kernel rows)
part s13_gpu_tests 400 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/
part s13_tiles2 150 python3 benchmarks/decode_kernels.py --presets 13b --quick --tiles default,2x4x4096,4x2x4096
# whole-row tiles on a grid of a few programs per SM that loops over row blocks, activation words in registers
part s13_rows 420 python3 benchmarks/stream_probe.py --presets 13b,1.3b --variants alldp4a:8x4,rows1:8x4,rows2:8x4,\
rows3:8x4,rows4:8x4,rows2:4x4,rows4:4x4,rows8:4x4,rows1:16x4,rows2:16x4,rows4:8x1,rows8:8x1,rows16:8x1
# the issue's table with "whole" the default; where the 13B step's time goes now (probes)
part s13_targets 280 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 230
part s13_probes 200 python3 benchmarks/decode_kernels.py --presets 13b,1.3b --quick --probes none,noquant,nogemv
# after the mend ("whole" had set the early operand order on the 1.3B fold BitLinear calls: 451 -> 511 µs)
part s13_fix_tests 150 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/test_fused_gpu.py -k whole_row
part s13_fix 200 python3 benchmarks/decode_kernels.py --presets 1.3b,370m --quick
part s13_targets13 200 python3 benchmarks/decode.py --presets 1.3b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
# "qtrigger" again (session 11: slower with looped tiles), now that the BitLinear GEMVs load whole rows; the
# option exists only at commit f053794 (reverted after this run: 13B 1794 -> 1822 µs, 2.7B 757 -> 798)
# part s13_qtrig 240 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick \
#   --options dp4a+prequant+pdl+qnext+fold+whole,dp4a+prequant+pdl+qnext+fold+whole+qtrigger
# the three-norm quantization kernel with joint reductions (exact), and caps on the quantization kernel's warps
part s13_quant_tests 150 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/ops/test_prequant_quant.py tests/infer/test_fused_gpu.py -k "three_norms or whole_row or prequant_real"
part s13_quant 240 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --quant-warps 32,16,8,4
# the session's last code: the issue's table, then the decode GPU tests
part s13_final_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
part s13_final_tests 330 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py
# session 14: "l2fill" (the looped prequant GEMVs, MLGRU input and GLU input at 13B / 2.7B, ask L2 for their
# whole weight slice before their wait, while the quantization kernel in front runs); then the decode GPU tests
part s14_fill 240 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick \
  --options dp4a+prequant+pdl+qnext+fold+whole,dp4a+prequant+pdl+qnext+fold+whole+l2fill
part s14_tests 330 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py
# a 4 x 4 whole-row tile for the 13B down_proj alone (o_proj keeps 8 x 4); "fold" for the 13B o_proj / down_proj
# on few, wide programs (32-64 rows, 16-32 warps: 4-8x less redundant normalization than session 13's 8x8 / 16x8)
part s14_whole 150 python3 benchmarks/decode_kernels.py --presets 13b --quick --whole-tiles default,2048:8x4+4096:4x4
part s14_fold13 300 python3 benchmarks/decode_kernels.py --presets 13b --quick --fold-tiles \
  bitlinear:32x16@512x8192,bitlinear:64x16@512x8192,bitlinear:32x16@1024x8192,bitlinear:32x32@1024x8192
# with the 13B down_proj at 4 x 4 (WHOLE_TILES) and "l2fill" removed: the decode GPU tests, then the issue's table
part s14_final_tests 300 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py
part s14_final_targets 280 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
# the batch-1 GEMV epilogues sum their [BN, BW] accumulator in its own layout (`_y_rows`; sm_90 SASS barriers:
# prequant MLGRU 26 -> 5, GLU 17 -> 3, whole BitLinear 20 -> 4, fold GLU 45 -> 23): per kernel, tests, the table
part s14_rows 200 python3 benchmarks/decode_kernels.py --presets 13b,1.3b,370m --quick
part s14_rows_tests 300 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py
part s14_rows_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
# next (session 15): the untimed register cap of the 1.3B down_proj fold launch (fold.FOLD_MAX_REGS), its tests
# first; the cap is meant to let it load its weights beside the GLU input's programs again
part s15_cap_tests 300 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py
part s15_cap 150 python3 benchmarks/decode_kernels.py --presets 1.3b,370m --quick --fold-caps default,none,default,none
# the quantization kernel: bf16 rounding by the hardware conversion on the GPU (`_HW_BF16`), codes read from the
# mantissa bits, the MLGRU input's three norms on three programs (static sm_90 SASS after the wait, 13B: 1311 ->
# 630 instructions a thread); tests, then an A/B against the commit before (`git archive HEAD mmfree` in
# abold/), then which launches find room beside the previous kernel
part s15_quant_tests 300 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py tests/ops/test_fused_parts.py
part s15_quant_ab 300 bash -c "for i in 1 2; do python3 benchmarks/decode_kernels.py --presets 13b,1.3b --quick; \
  PYTHONPATH=abold:. python3 benchmarks/decode_kernels.py --presets 13b,1.3b --quick; done"
part s15_residency 120 python3 benchmarks/residency.py --presets 370m,1.3b,13b
# with the cheaper quantization kernel: its warps and the looped 13B GEMV tiles (MLGRU and GLU inputs) again,
# then the issue's table
part s15_sweep13 300 bash -c "python3 benchmarks/decode_kernels.py --presets 13b --quick --quant-warps 32,8 && \
  python3 benchmarks/decode_kernels.py --presets 13b --quick --options dp4a+fold+pdl+prequant+qnext+whole+late \
  --tiles default,8x4,16x4x512,16x8x512,32x8x512"
part s15_targets 250 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
# per kernel: narrower looped tiles for the 13B MLGRU / GLU inputs (their rows of the table only: "late" also
# moves the whole-row GEMVs' operands), and wider whole tiles, read off the head's row (32000 outputs)
part s15_tiles13 300 bash -c "python3 benchmarks/decode_kernels.py --presets 13b --quick --options \
  dp4a+fold+pdl+prequant+qnext+whole+late --tiles default,16x2,8x2,32x4,16x4x128,8x4x512 && \
  python3 benchmarks/decode_kernels.py --presets 13b,1.3b --quick --whole-tiles default,2048:16x4+4096:4x4,2048:32x4+4096:4x4,2048:16x8+4096:4x4"
# register caps on the 13B prequant GEMVs (GLU input: 864 programs, 5 an SM at 96 registers, 6 at 80; whole
# BitLinear: down_proj 1280 and head 4000 programs, 5 an SM at 89-94, 6 at 80), and a 16 x 4 whole tile for
# the 370M / 1.3B heads (rows of up to 512 bytes); --gemv-caps was removed after this run (caps slower)
part s15_caps13 300 bash -c "python3 benchmarks/decode_kernels.py --presets 13b --quick \
  --gemv-caps default,glu:80,glu:72,bitlinear:80,glu:80+bitlinear:80 && \
  python3 benchmarks/decode_kernels.py --presets 370m,1.3b --quick --whole-tiles default,512:16x4+2048:8x4+4096:4x4"
# final: with the 16 x 4 head tile (WHOLE_TILES' new first row): the decode GPU tests, the issue's table, the kernels
part s15_final_tests 250 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py tests/ops/test_fused_parts.py
part s15_final_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
part s15_final_kernels 100 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick
# next (session 16): the "pieces" option (the quantization kernel's two-piece rows; built untimed in session 15):
# its kernel tests on the GPU (the interpret-marked ones run on CUDA there, at 5120 and 2552 columns), the decode
# GPU tests with it on, then per kernel at 13B and 2.7B, off and on twice
part s16_pieces_tests 300 bash -c "python3 -m pytest -q -rA -p no:cacheprovider tests/ops/test_prequant_quant.py && \
  MMFREE_FUSED_OPTIONS=dp4a,prequant,pdl,qnext,fold,whole,pieces python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/"
part s16_pieces 200 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole,dp4a+pdl+prequant+qnext+fold+whole+pieces,dp4a+pdl+prequant+qnext+fold+whole,dp4a+pdl+prequant+qnext+fold+whole+pieces
# whole-row tiles for the 13B MLGRU and GLU inputs again (session 13 found them slower, before `_y_rows` took
# their prequant GEMVs' barriers from 26 and 17 to 5 and 3): a BLOCK_Q of 2048 bytes holds both calls' 1280-byte
# rows; compare those two kernels' rows only ("late" also moves the whole BitLinear GEMVs' operands)
part s16_whole13 200 python3 benchmarks/decode_kernels.py --presets 13b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+late --tiles default,8x4x2048,4x4x2048,16x4x2048
# where the 13B step goes now (probes: the GEMVs alone, the quantization kernels alone)
part s16_probes13 120 python3 benchmarks/decode_kernels.py --presets 13b --quick --probes none,noquant,nogemv
# with "pieces" the default and the greedy argmax in the step's graph (`Decoder.greedy_step`; decode.py's new
# `gen ms` column): the issue's table, the per-kernel rows, then every decode GPU test
part s16_targets 200 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
part s16_kernels 100 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick
part s16_tests 330 python3 -m pytest -m gpu -q -rA -p no:cacheprovider tests/infer/ tests/ops/test_prequant_quant.py
# the greedy pick as a Triton launch chained to the head's (mmfree.ops.argmax): its kernel tests on the GPU,
# the decode GPU tests, then the issue's table (gen ms)
part s16_pick_tests 300 python3 -m pytest -m "gpu or interpret" -q -p no:cacheprovider tests/ops/test_argmax.py tests/infer/test_decode_gpu.py
# the session-16 probes of the chain's fixed costs (first run as scratch scripts with the same kernels)
part s16_flag 100 python3 benchmarks/boundary_probes.py flag
part s16_split 120 python3 benchmarks/boundary_probes.py split --widths 5120,2560
# narrower looped tiles for the 2.7B MLGRU input (160 programs at 16 rows for 132 SMs; only that call is looped)
part s16_tiles27 120 python3 benchmarks/decode_kernels.py --presets 2.7b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces+late --tiles default,8x4,4x4,default,8x4
# session 17: the tail probe (the last program of a GEMV quantizes the next input; first run as a scratch call),
# then the "csum" option (the GEMVs sum the codes; the quantization kernel loses its last reduction; commit
# c1a8c8e, removed after this run: slower): the sm_90 compiles under the device's triton, the decode GPU tests
# with it on, then off / on twice at 13B and 1.3B
part s17_tail 100 python3 benchmarks/boundary_probes.py tail
part s17_csum_tests 330 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_compile_sm90.py && \
  MMFREE_FUSED_OPTIONS=dp4a,prequant,pdl,qnext,fold,whole,pieces,csum python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/"
part s17_csum 220 python3 benchmarks/decode_kernels.py --presets 13b,1.3b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces,dp4a+pdl+prequant+qnext+fold+whole+pieces+csum,dp4a+pdl+prequant+qnext+fold+whole+pieces,dp4a+pdl+prequant+qnext+fold+whole+pieces+csum
# the "silu" option (the MLGRU kernel stores SiLU(h) for the output gate's quantization): sm_90 compiles, the
# decode GPU tests with it on (its bits cases at 1.3B and 2.7B included), then off / on twice at 13B, 1.3B, 370M
part s17_silu_tests 330 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_compile_sm90.py && \
  MMFREE_FUSED_OPTIONS=dp4a,prequant,pdl,qnext,fold,whole,pieces,silu python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/"
part s17_silu 240 python3 benchmarks/decode_kernels.py --presets 13b,1.3b,370m --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu,dp4a+pdl+prequant+qnext+fold+whole+pieces,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu
# with "silu" the default: "pieces3" (a third piece for the 13824- and 6912-wide down_proj inputs; commit a2d5b70,
# removed after this run: no faster): its kernel tests on the GPU, the sm_90 compiles, the decode GPU tests with
# it on, then off / on twice at 13B and 2.7B
part s17_p3_tests 330 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_prequant_quant.py tests/ops/test_compile_sm90.py && \
  MMFREE_FUSED_OPTIONS=dp4a,prequant,pdl,qnext,fold,whole,pieces,silu,pieces3 python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py"
part s17_p3 200 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces+silu,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+pieces3,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+pieces3
# "wsplit" (a whole 1280-byte row as 1024 + 256-byte tiles, not one 2048-byte tile with 768 padded bytes: 13B
# o_proj and head; 640 = 512 + 128 at 2.7B): sm_90 compiles, the fused GPU tests with it on, then off / on twice
part s17_ws_tests 300 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_compile_sm90.py && \
  MMFREE_FUSED_OPTIONS=dp4a,prequant,pdl,qnext,fold,whole,pieces,silu,wsplit python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py"
part s17_ws 200 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces+silu,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit
# with "silu" and "wsplit" the defaults: the issue's table
part s17_targets 240 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 --prompts 128 --contexts "" --budget 150
# "wsplit3" (built in session 17 after its device time ran out; 13B down_proj: 3456 = 2048 + 1024 + 512
# bytes; 2.7B 1728 = 1024 + 512 + 256; removed in session 18 after this part, in s18_wvec13: slower)
part s17_ws3 200 bash -c "python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py -k wsplit && \
  python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wsplit3,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wsplit3"
# session 18: "wvec" (whole-row tiles of 1-3 words a thread: no shared-memory conversion of the activation
# words after the wait) and "wsplit3" (untimed since session 17; removed after this run): sm_90 compiles, their GPU bits cases, then
# the four combinations twice at 13B, and without / with "wvec" twice at 2.7B and 1.3B
part s18_tests 300 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_compile_sm90.py && \
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py -k 'wsplit or wvec'"
part s18_wvec13 300 python3 benchmarks/decode_kernels.py --presets 13b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wsplit3,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wsplit3+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wsplit3,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wsplit3+wvec
part s18_wvec27 200 python3 benchmarks/decode_kernels.py --presets 2.7b,1.3b --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec
# with "wvec": 16-row whole tiles for the 1280-byte rows (13B o_proj and head; 21% fewer instructions a row
# after the wait, 95 registers against 56), twice
part s18_tiles13 250 python3 benchmarks/decode_kernels.py --presets 13b --quick --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec \
  --whole-tiles default,512:16x4+2048:16x4+4096:4x4,default,512:16x4+2048:16x4+4096:4x4
# "wmac" (one asm block a weight word: fewer registers, so more programs an SM or more rows a program):
# sm_90 compiles, the GPU bits cases, then with "wvec" without / with it at 13B, at the default whole tiles,
# with 8-row down_proj tiles (126 registers) and with 16-row 1280-byte tiles (72), then 1.3B and 370M twice
part s18_mac_tests 300 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_compile_sm90.py && \
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py -k 'wvec or wmac'"
part s18_mac13 300 python3 benchmarks/decode_kernels.py --presets 13b --quick --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec+wmac \
  --whole-tiles default,512:16x4+2048:8x4+4096:8x4,512:16x4+2048:16x4+4096:4x4
part s18_mac_small 200 python3 benchmarks/decode_kernels.py --presets 1.3b,370m --quick --options \
  dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec+wmac,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec+wmac
# "keep" (evict_last L2 policy on the quantization kernels' norm weights and the MLGRU state, so the weight
# stream does not evict them; "wmac" now fold-only): sm_90 compiles, GPU bits cases, then without / with twice
# (commit a3106b7, reverted after this run: no faster, and triton 3.6 rejected its defaulted string constexpr)
part s18_keep_tests 300 bash -c "python3 -m pytest -q -p no:cacheprovider tests/ops/test_compile_sm90.py && \
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py -k 'wvec or wmac or keep'"
part s18_keep 300 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec+keep,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec+keep
# the 13B looped prequant GEMVs: the GLU input (13824 outputs) at 128-byte tiles (session 15 found it 0.3 µs
# faster, with the MLGRU input slower, when one tile had to serve both), or at 8 rows; and both without "qnext"
# (the next tile's activation words: the MLGRU input's 168 registers are mostly those); the new wvec GPU test
part s18_glu_tests 200 python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py -k "wvec_tiles"
part s18_glu13 300 bash -c "python3 benchmarks/decode_kernels.py --presets 13b --quick --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+fold+whole+pieces+silu+wsplit+wvec \
  --tiles default,8192:16x4x256+16x4x128 && python3 benchmarks/decode_kernels.py --presets 13b --quick \
  --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec --tiles 8192:16x4x256+8x4x256,default,8192:16x4x256+16x4x128"
# with the GLU input's 128-byte tiles: with / without "qnext" twice at 13B and 2.7B (whose looped MLGRU and GLU
# inputs are the only other batch-1 calls it changes)
part s18_noq 250 python3 benchmarks/decode_kernels.py --presets 13b,2.7b --quick --options dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+qnext+fold+whole+pieces+silu+wsplit+wvec,dp4a+pdl+prequant+fold+whole+pieces+silu+wsplit+wvec \
  --tiles 8192:16x4x256+16x4x128
# the new defaults ("qnext" off, "wvec" and "wmac" on, the 13B GLU input's 128-byte tiles): the fused GPU bits
# tests, then the issue's table
part s18_final_tests 300 python3 -m pytest -m gpu -q -p no:cacheprovider tests/infer/test_fused_gpu.py \
  -k "same_bits or wvec or whole_row"
part s18_targets 240 python3 benchmarks/decode.py --presets 370m,1.3b,13b --models packed,fake,llama --batches 1 \
  --prompts 128 --contexts "" --budget 150
# "fold" for the 13B BitLinear calls (o_proj 512-word rows, down_proj 1024), with an added tile row (timing only)
part s13_fold13 200 python3 benchmarks/decode_kernels.py --presets 13b --quick \
  --fold-tiles default,bitlinear:8x8@1024x8192,bitlinear:16x8@1024x8192
# Nsight Compute on the 13B "whole" BitLinear GEMVs and the quantization kernels (few sections: little device time)
part s13_ncu_whole 150 ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy \
  --section LaunchStats -k regex:"_bitlinear_kernel|_quant_kernel" --launch-skip 40 --launch-count 8 \
  python3 benchmarks/decode_kernels.py --presets 13b --quick
# the 1.3B fold kernels, with per-instruction stall samples (SASS source page as CSV)
part s12_ncu_fold_src 300 bash -c "ncu --clock-control none --section SourceCounters --section WarpStateStats --section SpeedOfLight \
  --section InstructionStats --section SchedulerStats -k regex:'_mlgru_in_kernel|_bitlinear_kernel|_glu_in_kernel' --launch-skip 40 \
  --launch-count 4 -o $OUT/fold python3 benchmarks/decode_kernels.py --presets 1.3b --quick --options dp4a+prequant+pdl+qnext+fold \
  && ncu --import $OUT/fold.ncu-rep --page source --csv --print-source sass > $OUT/fold_source.csv && ncu --import $OUT/fold.ncu-rep --page details"
part s11_warm 150 python3 benchmarks/decode_kernels.py --presets 370m,1.3b,13b --quick --options dp4a+prequant+pdl+qnext --first-layer
# the 13B decode GEMVs run at 38-66% of the copy bandwidth (BENCHMARKS.md, sessions 5-6): why, per kernel
part decode_ncu 240 ncu --clock-control none -k regex:"_mlgru_in_kernel|_bitlinear_kernel|_glu_in_kernel|_quant_kernel" \
  --launch-skip 40 --launch-count 8 --section SpeedOfLight --section Occupancy --section WarpStateStats \
  --section MemoryWorkloadAnalysis --section LaunchStats \
  python3 benchmarks/decode_kernels.py --presets 13b --quick --options dp4a+prequant+pdl
part eval_370m 120 python3 benchmarks/eval_speed.py --preset 370m --device cuda --dtype bfloat16 --limit 500 \
  --batch-size 64 --repeats 2 --data-dir "${MMFREE_EVAL_DATA:-.carry/eval}"

if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  part data_prepare 90 python3 -m mmfree data prepare stdlib /tmp/mmdata --vocab-size 32000 --stdlib-bytes 8000000 \
    --val-fraction 0.05 --no-progress
  common=(train --preset 370m --data /tmp/mmdata --device cuda --seq-len 2048 --max-steps 30 --log-every 5
          --eval-every 0 --save-every 0 --eval-tokens 16384 --sample-prompt "" --no-progress --no-tensorboard)
  CUDA_VISIBLE_DEVICES=0 part scale_1gpu 120 torchrun --standalone --nproc_per_node 1 -m mmfree "${common[@]}" --batch-size 16 --out /tmp/r1
  part scale_2gpu 120 torchrun --standalone --nproc_per_node 2 -m mmfree "${common[@]}" --batch-size 32 --out /tmp/r2
  cp /tmp/r1/log.jsonl "$OUT/scale_1gpu.jsonl" 2>/dev/null; cp /tmp/r2/log.jsonl "$OUT/scale_2gpu.jsonl" 2>/dev/null
  python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
def tps(name):
    try:
        rows = [json.loads(l) for l in open(f"{out}/{name}.jsonl")]
    except OSError:
        return float("nan")
    vals = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r and r.get("step", 0) > 10]
    return statistics.median(vals) if vals else float("nan")
one, two = tps("scale_1gpu"), tps("scale_2gpu")
print(f"scaling 370m seq 2048: 1 GPU batch 16 {one:,.0f} tok/s | 2 GPUs batch 32 {two:,.0f} tok/s | efficiency {two / (2 * one):.2f}")
PY
fi
echo "== tables"
for f in kernels_mlgru train_370m_b32 train_13b_b8 decode_370m decode_options decode_kernels decode_tiles decode_targets decode_floor decode_fused decode_prequant decode_prequant_step decode_prequant2 decode_prequant_targets int8_sweep final_train_13b final_decode_kernels final_decode_targets prequant_tiles scan_tests scan_sweep scan_sweep_13b final_train_370m scan_ncu scan7_tests scan7_sweep scan7_sweep_13b scan7_train_370m scan8_sweep scan8_train_370m scan8_gpu_tests scan8_kernels scan8_train_13b scan9_tests scan9_kernels scan9_train_370m scan9_train_13b late_tests late_ab qnext_ab qnext_targets qnext_gpu_tests s10_tests s10_train s10q_tests s10q_ab s10q_targets s11_stream s11_cold s11_probes s11_fold_tests s11_fold s11_fold_targets s11_fold_sweep s11_gpu_tests s11_targets s12_fold_off s12_stream_work s12_ncu_probe s12_ncu_real s12_ncu_fold s12_ahead s12_warps s12_hints s12_decode_tests s12_targets s12_chunks s12_ncu_fold_src s13_all s13_one_tests s13_one s13_whole_tests s13_whole s13_whole_decode s13_gpu_tests s13_tiles2 s13_rows s13_targets s13_probes s13_fix_tests s13_fix s13_targets13 s13_quant_tests s13_quant s13_final_targets s13_final_tests s13_fold13 s13_ncu_whole s14_fill s14_tests s14_whole s14_fold13 s14_final_tests s14_final_targets s14_rows s14_rows_tests s14_rows_targets s15_cap_tests s15_cap s15_quant_tests s15_quant_ab s15_residency s15_sweep13 s15_targets s15_tiles13 s15_caps13 s15_final_tests s15_final_targets s15_final_kernels s16_pieces_tests s16_pieces s16_whole13 s16_probes13 s16_targets s16_kernels s16_tests s16_pick_tests s16_flag s16_split s16_tiles27 s17_tail s17_csum_tests s17_csum s17_silu_tests s17_silu s17_p3_tests s17_p3 s17_ws_tests s17_ws s17_targets s17_ws3 s18_tests s18_wvec13 s18_wvec27 s18_tiles13 s18_mac_tests s18_mac13 s18_mac_small s18_keep_tests s18_keep s18_glu_tests s18_glu13 s18_noq s18_final_tests s18_targets s11_warm decode_epi_tests decode_epi decode_epi_targets decode_ncu eval_370m; do echo "-- $f"; tail -n 60 "$OUT/$f.log"; done
