#!/usr/bin/env bash
# One GPU session in one call, on a bare GPU image (torch + transformers, no polars/duckdb):
#   1. dsocr-nsys profile, base mode (BASE_TOKENS new tokens), under Nsight Systems;
#   2. the same in gundam mode (GUNDAM_TOKENS new tokens);
#   3. the NVTX-overhead benchmark (hooks on vs off, same process, same model);
# then copies what matters into $OUT (at most 8 files, each <= 16 MB, no sub-folders):
#   session.log (everything, the summary last), nvtx_overhead.json (plain and under nsys),
#   <run>.run.json and <run>.sqlite[.xz] for the two runs (a .xz above 16 MiB in .partN pieces)
# and prints a short summary table last. Static compute (device-independent, needs polars and
# jsonschema, which the image lacks) is left to `make report` on the CPU machine.
#
# Run from the repository root, with the package importable (PYTHONPATH=. or an editable
# install) and the nvtx wheel installed; nsys comes from .carry/device/nsys-env.sh when present
# (a copy of ../shared/device), else $NSYS / PATH. Environment knobs (defaults):
#   OUT=out  GPU_NAME=h100  BASE_TOKENS=32  GUNDAM_TOKENS=64  BENCH_PAIRS=5  BENCH_TOKENS=32
#   PYTHON=python3  BASE_LIMIT=150  GUNDAM_LIMIT=180  BENCH_LIMIT=90 (seconds per step; the
#   four steps' limits add up to 8.5 min, and a typical H100 session takes a fraction of that)
#   MODEL_ARGS=  (added to every run; a CPU dry run: "--preset tiny --device cpu --dtype float32")
#   COMPRESS_ABOVE=15000000  OUT_FILE_MAX=16777216  PART_BYTES=15728640 (bytes)
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
# $OUT takes files up to 16 MiB: compress above 15 MB, cut what is still too large in parts.
MAX_BYTES="${COMPRESS_ABOVE:-15000000}"
FILE_MAX="${OUT_FILE_MAX:-16777216}"
PART_BYTES="${PART_BYTES:-15728640}"
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
    local packed parts
    packed=$(stat -c %s "$OUT/$dest")
    if [ "$packed" -le "$FILE_MAX" ]; then
        log "kept $OUT/$dest ($size bytes raw, $packed kept)"
        return
    fi
    # Too large for one file: parts (cat them back together), if the 8-file cap allows (one
    # place is held back for nvtx_overhead.json, written last).
    parts=$(((packed + PART_BYTES - 1) / PART_BYTES))
    if [ $(($(find "$OUT" -maxdepth 1 -type f | wc -l) - 1 + parts)) -le 7 ]; then
        split -b "$PART_BYTES" -d -a 1 "$OUT/$dest" "$OUT/$dest.part"
        rm -f "$OUT/$dest"
        log "kept $OUT/$dest in $parts parts ($size bytes raw; cat $dest.part* > $dest)"
    else
        rm -f "$OUT/$dest"
        log "too large even compressed, left out: $dest ($size bytes raw, $packed compressed)"
    fi
}

profile() { # name limit-seconds extra-args...
    local name=$1 limit=$2 rc
    shift 2
    log "profile $name: $*"
    rm -rf "runs/$name" # never report a previous session's files as this one's
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

profile "base-$BASE_TOKENS" "${BASE_LIMIT:-150}" --mode base --max-new-tokens "$BASE_TOKENS"
profile "gundam-$GUNDAM_TOKENS" "${GUNDAM_LIMIT:-180}" --mode gundam --max-new-tokens "$GUNDAM_TOKENS"

# The hooks' cost twice: plain (what users pay when not profiling: NVTX calls with no tool
# attached) and under nsys collecting cuda,nvtx (what they pay while profiling).
bench=(bench/nvtx_overhead.py --mode base --max-new-tokens "$BENCH_TOKENS" --pairs "$BENCH_PAIRS"
    "${MODEL_ARGS[@]}")
rm -f runs/nvtx_overhead.json runs/nvtx_overhead_nsys.json
log "nvtx overhead benchmark: $BENCH_PAIRS pairs, base mode, $BENCH_TOKENS tokens"
timeout -k 10 "${BENCH_LIMIT:-90}" "$PY" "${bench[@]}" --json runs/nvtx_overhead.json \
    >>"$LOG" 2>&1
log "benchmark: exit $?"
if [ -n "${NSYS:-}" ] || command -v nsys >/dev/null; then
    log "nvtx overhead benchmark under nsys"
    timeout -k 10 "${BENCH_LIMIT:-90}" "${NSYS:-nsys}" profile --trace=cuda,nvtx --sample=none \
        --cpuctxsw=none --force-overwrite=true --output=runs/bench-nsys \
        "$PY" "${bench[@]}" --json runs/nvtx_overhead_nsys.json >>"$LOG" 2>&1
    log "benchmark under nsys: exit $?"
fi

"$PY" - "$OUT" "runs/base-$BASE_TOKENS" "runs/gundam-$GUNDAM_TOKENS" <<'EOF' | tee -a "$LOG"
import json, os, sys
out, runs = sys.argv[1], sys.argv[2:]
bench = {}
for key, name in (("plain", "nvtx_overhead.json"), ("under_nsys", "nvtx_overhead_nsys.json")):
    try:
        bench[key] = json.load(open(os.path.join("runs", name)))
    except (OSError, ValueError):
        bench[key] = None
json.dump(bench, open(os.path.join(out, "nvtx_overhead.json"), "w"), indent=2)
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
for key, b in bench.items():
    if not b:
        print(f"NVTX overhead ({key}): no result (see session.log)")
        continue
    print(f"NVTX overhead ({key}): on {b['median_on_ns'] / 1e6:.2f} ms, off "
          f"{b['median_off_ns'] / 1e6:.2f} ms per request (median of {b['pairs']}), "
          f"{b['overhead_pct']:+.2f} % (median pair ratio {b['median_pair_ratio_pct']:+.2f} %)")
EOF
log "session done in ${SECONDS}s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
