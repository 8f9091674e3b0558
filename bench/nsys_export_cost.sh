#!/usr/bin/env bash
# What a `.nsys-rep` TRACE costs to turn into something the engine reads: `nsys export` to
# SQLite vs to a Parquet folder, on one real report (DeepSeek-OCR base mode, 32 new tokens, made
# here first with the launcher), each timed RUNS times side by side. Prints one line per measurement and a
# summary (medians); writes them to $OUT/export_cost.txt. Run on a GPU machine from the
# repository root (PYTHONPATH=. with the nvtx wheel; nsys from .carry/device/nsys-env.sh).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
RUNS="${RUNS:-3}"
mkdir -p "$OUT" runs
RES="$OUT/export_cost.txt"
: >"$RES"
[ -f .carry/device/nsys-env.sh ] && source .carry/device/nsys-env.sh >/dev/null 2>&1
"$NSYS" --version | tee -a "$RES"
timeout 240 python3 -m dsocr_nsys.launch profile --mode base --max-new-tokens 32 --gpu h200 \
    --no-static --no-calibrate --out runs/export-cost >"$OUT/profile.log" 2>&1 || echo "profile failed" | tee -a "$RES"
REP=runs/export-cost/trace.nsys-rep
echo "report $(stat -c %s "$REP") bytes" | tee -a "$RES"
secs() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
for i in $(seq "$RUNS"); do
    rm -rf /tmp/ec.sqlite /tmp/ec_parquet
    s=$(secs "$NSYS" export --type=sqlite --force-overwrite=true -o /tmp/ec.sqlite "$REP")
    p=$(secs "$NSYS" export --type=parquetdir --force-overwrite=true -o /tmp/ec_parquet "$REP")
    echo "run $i export_sqlite_s $s export_parquetdir_s $p" | tee -a "$RES"
done
echo "sqlite_bytes $(stat -c %s /tmp/ec.sqlite) parquetdir_bytes $(du -sb /tmp/ec_parquet | cut -f1)" | tee -a "$RES"
python3 - "$RES" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("run ")]
s = statistics.median(float(r[3]) for r in rows); p = statistics.median(float(r[5]) for r in rows)
print(f"median export: sqlite {s:.2f} s, parquetdir {p:.2f} s ({len(rows)} runs each)")
EOF
