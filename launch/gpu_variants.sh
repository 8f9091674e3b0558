#!/usr/bin/env bash
# The decode-variant session in one call, on a bare GPU image (torch, no polars/duckdb):
#   1. two small traces for tests/fixtures: base mode, 16 new tokens, batch 1, one warm-up,
#      eager (--moe loop) and --decode cuda-graph, under nsys, plus their `nsys stats` goldens;
#   2. bench/decode_variants.py: base-32 and gundam-128, eager-loop / eager-device /
#      cuda-graph at batch 1, 4, 16 (one model build per mode), the MoE kernels per batch;
#   3. gundam-128 --decode cuda-graph under nsys (decode GPU-idle % of a long run);
#   4. bench/decode_variants.py with --compile variants (base-32 and gundam-128, batch 1 and 16).
# Into $OUT (at most 8 files): session.log, fixtures.tar.xz (both run folders' run.json,
# result.json, trace.sqlite, the goldens), bench_base.json, bench_gundam.json,
# bench_compile_base.json, bench_compile_gundam.json, gundam128_graph.tar.xz.
# Each step has its own time limit and a failing step is logged; the summary comes last.
# Knobs: OUT=out PYTHON=python3 GPU_NAME=h200 DEADLINE=500 (s) MODEL_ARGS= (a CPU dry run: MODEL_ARGS="--preset
# tiny --device cpu --dtype float32" with BENCH_ARGS the same plus "--mode tiny").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
PY="${PYTHON:-python3}"
GPU_NAME="${GPU_NAME:-h200}"
read -r -a MODEL_ARGS <<<"${MODEL_ARGS:-}"
read -r -a BENCH_ARGS <<<"${BENCH_ARGS:-}"
mkdir -p "$OUT" runs
LOG="$OUT/session.log"
: >"$LOG"
export PYTHONUNBUFFERED=1
SECONDS=0
log() { echo "[${SECONDS}s] $*" | tee -a "$LOG" >&2; }
# The whole session stays within DEADLINE seconds: each step gets min(its limit, time left).
DEADLINE="${DEADLINE:-500}"
limit() { # wanted-seconds -> echo the limit, or fail when under 20 s are left
    local left=$((DEADLINE - SECONDS - 10))
    [ "$left" -ge 20 ] || return 1
    echo $(($1 < left ? $1 : left))
}

if [ -z "${NSYS:-}" ] && [ -f .carry/device/nsys-env.sh ]; then
    # shellcheck disable=SC1091
    source .carry/device/nsys-env.sh >>"$LOG" 2>&1 || log "nsys-env.sh failed"
fi
log "nsys: ${NSYS:-$(command -v nsys || echo none)}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
    >>"$LOG" 2>&1

profile() { # name limit args...
    local name=$1 limit
    limit=$(limit "$2") || { log "profile $1: skipped (no time left)"; return; }
    shift 2
    rm -rf "runs/$name"
    log "profile $name (limit ${limit}s): $*"
    timeout -k 10 "$limit" "$PY" -m dsocr_nsys.launch profile --out "runs/$name" \
        --gpu "$GPU_NAME" --repeats 1 --no-static "${MODEL_ARGS[@]}" "$@" >>"$LOG" 2>&1
    log "profile $name: exit $?"
    tail -n 5 "runs/$name"/*.log >>"$LOG" 2>&1
}

golden() { # name fixture-name
    local run=runs/$1 name=$2
    [ -f "$run/trace.sqlite" ] || return
    mkdir -p "$run/golden"
    timeout -k 5 "$(limit 40 || echo 1)" "${NSYS:-nsys}" stats --force-export=false \
        -r nvtx_gpu_proj_trace,nvtx_gpu_proj_sum,nvtx_sum,nvtx_kern_sum,cuda_gpu_kern_sum,cuda_gpu_mem_time_sum \
        --format csv -o "$run/golden/$name" "$run/trace.sqlite" >>"$LOG" 2>&1
    log "nsys stats $name: exit $?"
}

bench() { # out-name limit args...
    local name=$1 limit
    limit=$(limit "$2") || { log "bench $1: skipped (no time left)"; return; }
    shift 2
    log "bench $name (limit ${limit}s): $*"
    timeout -k 10 "$limit" "$PY" bench/decode_variants.py --json "$OUT/$name.json" "$@" \
        "${BENCH_ARGS[@]}" >>"$LOG" 2>&1
    log "bench $name: exit $?"
}

# 1. the fixtures
profile base16-eager 100 --mode base --max-new-tokens 16 --warmup 1
profile base16-graph 100 --mode base --max-new-tokens 16 --warmup 1 --decode cuda-graph
golden base16-eager dsocr_base16_eager_h200_nsys2025
golden base16-graph dsocr_base16_cudagraph_h200_nsys2025
tar -C runs -cJf "$OUT/fixtures.tar.xz" \
    $(cd runs && ls -d base16-eager/{run.json,result.json,trace.sqlite,golden} \
        base16-graph/{run.json,result.json,trace.sqlite,golden} 2>/dev/null) 2>>"$LOG"
log "fixtures.tar.xz: $(stat -c %s "$OUT/fixtures.tar.xz" 2>/dev/null) bytes"

# 2. the variant benchmark
bench bench_base 100 --mode base --max-new-tokens 32 --batches 1,4,16 \
    --variants eager-loop,eager-device,cuda-graph --moe-kernels
bench bench_gundam 130 --mode gundam --max-new-tokens 128 --batches 1,4,16 \
    --variants eager-loop,eager-device,cuda-graph --repeats 2

# 3. a long cuda-graph run under nsys
profile gundam128-graph 90 --mode gundam --max-new-tokens 128 --warmup 0 --decode cuda-graph
tar -C runs -cJf "$OUT/gundam128_graph.tar.xz" gundam128-graph/run.json \
    gundam128-graph/trace.sqlite 2>>"$LOG"

# 4. compiled decode (compilation is the slow part: last)
bench bench_compile_base 150 --mode base --max-new-tokens 32 --batches 1,16 \
    --variants compile,compile-graph --repeats 2
bench bench_compile_gundam 100 --mode gundam --max-new-tokens 128 --batches 1 \
    --variants compile --repeats 2

for f in "$OUT"/bench_*.json; do
    [ -f "$f" ] || continue
    "$PY" - "$f" <<'EOF' | tee -a "$LOG"
import json, sys
d = json.load(open(sys.argv[1]))
print(f"== {sys.argv[1]}: {d['mode']} prefill {d['prefill_tokens']} views {d['views']} "
      f"new {d['max_new_tokens']} on {d['device']} (build {d['build_s']} s)")
for r in d["rows"]:
    if "error" in r:
        print(f"  {r['variant']:<14} b{r['batch']:<3} error {r['error'][:100]}")
    else:
        print(f"  {r['variant']:<14} b{r['batch']:<3} step {r['step_ms']:.3f} ms "
              f"{r['decode_tokens_per_s']:.0f} tok/s {r['pages_per_s']:.2f} pages/s "
              f"prefill {r['prefill_ms']:.1f} ms prep {r['prepare_s']} s same {r.get('same_tokens')}")
for r in d.get("moe_kernels", []):
    print(f"  moe b{r['batch']} {r['impl']}/{r['kernel']}: {r.get('layer_ms', r.get('error'))}")
EOF
done
log "session done in ${SECONDS}s; $OUT: $(ls "$OUT" | tr '\n' ' ')"
