#!/usr/bin/env bash
# Second decode-variant session (after launch/gpu_variants.sh): the device MoE's two
# routed-expert kernels inside the captured step, compiled + captured gundam decode, and one
# batch-16 CUDA-graph run under nsys (MBU at batch 16). Same conventions as gpu_variants.sh:
# OUT, PYTHON, GPU_NAME, DEADLINE (s); files: session.log, bench_*.json, base32_b16_graph.tar.xz.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
PY="${PYTHON:-python3}"
GPU_NAME="${GPU_NAME:-h200}"
DEADLINE="${DEADLINE:-230}"
mkdir -p "$OUT" runs
LOG="$OUT/session.log"
: >"$LOG"
export PYTHONUNBUFFERED=1
SECONDS=0
log() { echo "[${SECONDS}s] $*" | tee -a "$LOG" >&2; }
limit() { local left=$((DEADLINE - SECONDS - 10)); [ "$left" -ge 20 ] || return 1; echo $(($1 < left ? $1 : left)); }
bench() { # out-name limit args...
    local name=$1 lim
    lim=$(limit "$2") || { log "bench $1: skipped (no time left)"; return; }
    shift 2
    log "bench $name (limit ${lim}s): $*"
    timeout -k 10 "$lim" "$PY" bench/decode_variants.py --json "$OUT/$name.json" "$@" >>"$LOG" 2>&1
    log "bench $name: exit $?"
}
bench bench_kernels_base 60 --mode base --max-new-tokens 32 --batches 1,4,16 \
    --variants cuda-graph-grouped,cuda-graph-gather
bench bench_kernels_gundam 70 --mode gundam --max-new-tokens 128 --batches 1,4,16 \
    --variants cuda-graph-grouped,cuda-graph-gather --repeats 2
lim=$(limit 50) && {
    log "profile base32-b16-graph"
    timeout -k 10 "$lim" "$PY" -m dsocr_nsys.launch profile --out runs/base32-b16-graph \
        --gpu "$GPU_NAME" --repeats 1 --warmup 1 --no-static --mode base --max-new-tokens 32 \
        --decode cuda-graph --batch 16 >>"$LOG" 2>&1
    log "profile: exit $?"
    tar -C runs -cJf "$OUT/base32_b16_graph.tar.xz" base32-b16-graph/run.json \
        base32-b16-graph/trace.sqlite 2>>"$LOG"
}
bench bench_compile_graph_gundam 90 --mode gundam --max-new-tokens 128 --batches 1,16 \
    --variants compile-graph --repeats 2
grep -h '^{' "$LOG" | cut -c1-400
log "done; $OUT: $(ls "$OUT" | tr '\n' ' ')"
