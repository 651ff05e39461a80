#!/usr/bin/env bash
# Every GPU figure the WebGPU backend is judged by, in one run on a machine with a GPU, each next to PyTorch measured in
# the same call: f32 GEMM at 4096, the Qwen2.5-0.5B-shape AdamW step on 8×1024 tokens (and where its GPU time goes),
# greedy decode of that shape (batch 64, 32-token prompts, 256 new tokens), the 1.5B-shape step with its peak GPU
# memory, and (MAIN_JOB=1) the bundled main job on the GPU and on the CPU. Also the A/B runs that choose defaults no GPU
# has measured yet: skinny GEMMs and the 0.5B step with split-K and per-head dk/dv on and off, and other GEMM tiles.
#
#   bash bench/gpu-report.sh OUT_DIR        (after `npm ci` or `npx tsc`; NODE=/path/to/node if node is not on PATH)
#
# Each item runs under its own time limit; its stdout/stderr go to OUT_DIR/<item>.out|.err and one line per item
# (exit status, seconds) to OUT_DIR/summary.txt; OUT_DIR/report.md has the table (bench/gpu-report-summary.ts). PyTorch
# runs need python3 with torch and transformers.
set -u
OUT=${1:?usage: bash bench/gpu-report.sh OUT_DIR}
mkdir -p "$OUT"
NODE=${NODE:-node}
SHAPE_05B='random:layers=24,hidden=896,heads=14,kv-heads=2,intermediate=4864,vocab=151936'
# SMOKE=1: tiny sizes, to check the script itself on any adapter (lavapipe) in a minute.
# Skinny GEMMs of the 0.5B step and decode (split-K's cases): q/o and k/v weight gradients over 8×1024 tokens, and a
# batch-64 decode step's q and down projections.
SKINNY=896x896x8192:tn,128x896x8192:tn,64x896x896:nt,64x896x4864:nt
GEMM=4096 STEP=0.5b BIG=1.5b STEP_ARGS=(--batch 8 --seq 1024) DECODE=(--batch 64 --prompt-len 32 --new-tokens 256 --runs 3) TORCH_DECODE=(--batch 64 --prompt 32 --new 256)
if [ "${SMOKE:-0}" = 1 ]; then
  SKINNY=128x128x1024:tn,16x128x512:nt
  GEMM=256 STEP=tiny BIG=tiny STEP_ARGS=(--batch 2 --seq 64) DECODE=(--batch 4 --prompt-len 8 --new-tokens 8 --runs 1) TORCH_DECODE=(--batch 4 --prompt 8 --new 8)
  SHAPE_05B='random:layers=2,hidden=128,heads=4,kv-heads=2,intermediate=256,vocab=512'
fi

item() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 3 "$OUT/$name.out"
}

# Peak GPU memory in use (MiB) over a command, sampled by nvidia-smi every 100 ms (when there is one).
with_peak_memory() {
  local name=$1
  shift
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/$name.mem" &
    local pid=$!
    "$@"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "$name peak GPU memory: $(sort -n "$OUT/$name.mem" | tail -n 1) MiB" | tee -a "$OUT/summary.txt"
  else
    "$@"
  fi
}

item gemm-webgpu 120 "$NODE" dist/bench/webgpu-gemm.js --sizes "$GEMM" --shapes "$SKINNY" --variants bk16,bk16:off --json
item gemm-torch 120 python3 bench/gpu_anchor.py --sizes "$GEMM" --shapes "$SKINNY"
# Other tiles at the square size, for choosing the default (src/engine/webgpu/gemm.ts); none is measured on a GPU yet.
item gemm-webgpu-tiles 180 "$NODE" dist/bench/webgpu-gemm.js --sizes "$GEMM" --json \
  --variants bk16u,bk8u,bk16@128x64/8x4,bk16@64x128/4x8,bk16@128x128/8x4,bk16@128x128/4x8,bk32@64x64/4x4,bk16@64x64/4x4,bk8@128x256/8x8,bk16@256x128/8x8
item step-0.5b-webgpu 240 "$NODE" dist/bench/webgpu-step.js --shape "$STEP" "${STEP_ARGS[@]}" --json
item step-0.5b-webgpu-nosplit 240 "$NODE" dist/bench/webgpu-step.js --shape "$STEP" "${STEP_ARGS[@]}" --split off --rounds 1 --json
item step-0.5b-torch 120 python3 bench/gpu_anchor.py --step "$STEP" "${STEP_ARGS[@]}"
item decode-0.5b-webgpu 240 "$NODE" bin/oreal.js bench decode --model "$SHAPE_05B" --backend webgpu "${DECODE[@]}" --json
item decode-0.5b-torch 180 python3 bench/gpu_anchor.py --decode "$STEP" "${TORCH_DECODE[@]}"
item profile-0.5b-webgpu 180 "$NODE" dist/bench/webgpu-step.js --shape "$STEP" "${STEP_ARGS[@]}" --rounds 1 --profile
with_peak_memory step-1.5b-webgpu item step-1.5b-webgpu 300 "$NODE" dist/bench/webgpu-step.js --shape "$BIG" "${STEP_ARGS[@]}" --rounds 2 --json
item step-1.5b-torch 120 python3 bench/gpu_anchor.py --step "$BIG" "${STEP_ARGS[@]}"
if [ "${MAIN_JOB:-0}" = 1 ]; then
  item main-job-webgpu 600 "$NODE" bin/oreal.js start --set backend=webgpu --plain --out "$OUT/main-webgpu"
  item main-job-cpu 600 "$NODE" bin/oreal.js start --plain --out "$OUT/main-cpu"
fi
# Every figure next to PyTorch's, with the ratios and the goals, in one table.
"$NODE" dist/bench/gpu-report-summary.js "$OUT" > "$OUT/report.md" && cat "$OUT/report.md"
