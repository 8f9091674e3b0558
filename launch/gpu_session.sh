#!/usr/bin/env bash
# One GPU session in one call, on a bare GPU image (torch + transformers, no polars/duckdb):
#   1. dsocr-nsys profile, base mode (BASE_TOKENS new tokens), under Nsight Systems;
#   2. the same in gundam mode (GUNDAM_TOKENS new tokens);
#   3. the NVTX-overhead benchmark (hooks on vs off, same process, same model);
# then copies what matters into $OUT (at most 8 files, each <= 16 MB, no sub-folders):
#   session.log, summary.txt, nvtx_overhead.json, nvtx_overhead_nsys.json,
#   <run>.run.json and <run>.sqlite[.xz] for the two runs
# and prints a short summary table last. Static compute (device-independent, needs polars and
# jsonschema, which the image lacks) is left to `make report` on the CPU machine.
#
# Run from the repository root, with the package importable (PYTHONPATH=. or an editable
# install) and the nvtx wheel installed; nsys comes from .carry/device/nsys-env.sh when present
# (a copy of ../shared/device), else $NSYS / PATH. Environment knobs (defaults):
#   OUT=out  GPU_NAME=h100  BASE_TOKENS=32  GUNDAM_TOKENS=64  BENCH_PAIRS=5  BENCH_TOKENS=32
#   PYTHON=python3  BASE_LIMIT=170  GUNDAM_LIMIT=200  BENCH_LIMIT=110 (seconds per step)
#   MODEL_ARGS=  (added to every run; a CPU dry run: "--preset tiny --device cpu --dtype float32")
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT="${OUT:-out}"
GPU_NAME="${GPU_NAME:-h100}"
BASE_TOKENS="${BASE_TOKENS:-32}"
GUNDAM_TOKENS="${GUNDAM_TOKENS:-64}"
BENCH_PAIRS="${BENCH_PAIRS:-5}"
BENCH_TOKENS="${BENCH_TOKENS:-32}"
PY="${PYTHON:-python3}"
read -r -a MODEL_ARGS <<<"${MODEL_ARGS:-}"
MAX_BYTES=$((15 * 1000 * 1000)) # compress above this; $OUT takes files up to 16 MiB
mkdir -p "$OUT" runs
LOG="$OUT/session.log"
: >"$LOG"
export PYTHONUNBUFFERED=1
SECONDS=0

log() { echo "[${SECONDS}s] $*" | tee -a "$LOG" >&2; }

if [ -z "${NSYS:-}" ] && [ -f .carry/device/nsys-env.sh ]; then
    # shellcheck disable=SC1091
    source .carry/device/nsys-env.sh >>"$LOG" 2>&1 || log "nsys-env.sh failed (see above)"
fi
log "nsys: ${NSYS:-$(command -v nsys || echo none)}"
"$PY" - >>"$LOG" 2>&1 <<'EOF'
import torch, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$LOG" 2>&1

# Copy a file into $OUT, compressed (xz, else gzip) when larger than MAX_BYTES.
keep() { # src dest-name
    local src=$1 dest=$2 size
    [ -f "$src" ] || { log "missing: $src"; return; }
    size=$(stat -c %s "$src")
    if [ "$size" -le "$MAX_BYTES" ]; then
        cp "$src" "$OUT/$dest"
    elif command -v xz >/dev/null; then
        xz -T0 -6 -c "$src" >"$OUT/$dest.xz"
        dest="$dest.xz"
    else
        gzip -9 -c "$src" >"$OUT/$dest.gz"
        dest="$dest.gz"
    fi
    if [ "$(stat -c %s "$OUT/$dest")" -gt $((16 * 1024 * 1024)) ]; then
        log "too large even compressed, left out: $OUT/$dest ($size bytes raw)"
        rm -f "$OUT/$dest"
    else
        log "kept $OUT/$dest ($size bytes raw)"
    fi
}

profile() { # name limit-seconds extra-args...
    local name=$1 limit=$2 rc
    shift 2
    log "profile $name: $*"
    timeout -k 10 "$limit" "$PY" -m dsocr_nsys.launch profile --out "runs/$name" \
        --gpu "$GPU_NAME" --warmup 1 --repeats 1 --no-static "${MODEL_ARGS[@]}" "$@" >>"$LOG" 2>&1
    rc=$?
    log "profile $name: exit $rc"
    for f in runs/"$name"/*.log; do
        [ -f "$f" ] && { echo "===== $f (last 40 lines)"; tail -n 40 "$f"; } >>"$LOG"
    done
    keep "runs/$name/run.json" "$name.run.json"
    keep "runs/$name/trace.sqlite" "$name.sqlite"
}

profile "base-$BASE_TOKENS" "${BASE_LIMIT:-170}" --mode base --max-new-tokens "$BASE_TOKENS"
profile "gundam-$GUNDAM_TOKENS" "${GUNDAM_LIMIT:-200}" --mode gundam --max-new-tokens "$GUNDAM_TOKENS"

# The hooks' cost twice: plain (what users pay when not profiling: NVTX calls with no tool
# attached) and under nsys collecting cuda,nvtx (what they pay while profiling).
bench=(bench/nvtx_overhead.py --mode base --max-new-tokens "$BENCH_TOKENS" --pairs "$BENCH_PAIRS"
    "${MODEL_ARGS[@]}")
log "nvtx overhead benchmark: $BENCH_PAIRS pairs, base mode, $BENCH_TOKENS tokens"
timeout -k 10 "${BENCH_LIMIT:-110}" "$PY" "${bench[@]}" --json "$OUT/nvtx_overhead.json" \
    >>"$LOG" 2>&1
log "benchmark: exit $?"
if [ -n "${NSYS:-}" ] || command -v nsys >/dev/null; then
    log "nvtx overhead benchmark under nsys"
    timeout -k 10 "${BENCH_LIMIT:-110}" "${NSYS:-nsys}" profile --trace=cuda,nvtx --sample=none \
        --cpuctxsw=none --force-overwrite=true --output=runs/bench-nsys \
        "$PY" "${bench[@]}" --json "$OUT/nvtx_overhead_nsys.json" >>"$LOG" 2>&1
    log "benchmark under nsys: exit $?"
fi

"$PY" - "$OUT" "runs/base-$BASE_TOKENS" "runs/gundam-$GUNDAM_TOKENS" <<'EOF' | tee "$OUT/summary.txt"
import json, os, sys
out, runs = sys.argv[1], sys.argv[2:]
print(f"{'run':<12} {'views':>5} {'prefill':>7} {'steps':>5} {'request ms':>10} {'ms/step':>8} "
      f"{'sqlite MB':>9} {'KB/step':>8}  gpu")
for run in runs:
    name = os.path.basename(run)
    try:
        rec = json.load(open(os.path.join(run, "run.json")))
    except (OSError, ValueError):
        print(f"{name:<12} (no run.json: see session.log)")
        continue
    t = rec.get("timings") or {}
    def first(key):
        v = t.get(key) if isinstance(t, dict) else None
        return v[0] if isinstance(v, list) and v else v
    req, dec = first("request_ns"), first("decode_ns")
    steps = rec.get("decode_steps") or 0
    db = os.path.join(run, "trace.sqlite")
    size = os.path.getsize(db) if os.path.exists(db) else 0
    # The trace holds warm-up + timed requests: bytes per decode step over all of them.
    total_steps = steps * ((rec.get("warmup") or 0) + (rec.get("repeats") or 1))
    fmt = lambda v, d=1e6: f"{v / d:.1f}" if isinstance(v, (int, float)) else "-"
    print(f"{name:<12} {rec.get('views') or '-':>5} {rec.get('prefill_tokens') or '-':>7} "
          f"{steps:>5} {fmt(req):>10} {fmt(dec / steps if dec and steps else None):>8} "
          f"{size / 1e6:>9.1f} {fmt(size / total_steps if total_steps else None, 1e3):>8}  "
          f"{(rec.get('gpu') or {}).get('name')}")
for name in ("nvtx_overhead.json", "nvtx_overhead_nsys.json"):
    try:
        b = json.load(open(os.path.join(out, name)))
        print(f"{name}: on {b['median_on_ns'] / 1e6:.2f} ms, off {b['median_off_ns'] / 1e6:.2f} ms"
              f" per request (median of {b['pairs']}), overhead {b['overhead_pct']:+.2f} %")
    except (OSError, ValueError, KeyError):
        print(f"{name}: no result (see session.log)")
EOF
log "session done in ${SECONDS}s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
