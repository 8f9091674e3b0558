#!/usr/bin/env bash
# The user's optimisation loop end to end on a bare GPU image, the way the README tells it:
#   1. eager baseline:  python -m dsocr_nsys.launch profile --ncu   (nsys, then ncu, then calibrate)
#   2. the fix:         the same with --decode cuda-graph
#   3. their own code:  profile --command '<a program of theirs>' (the CUDA-graph fixture program)
# Each step runs under its own timeout, logged, continuing on failure; the run folders (less the
# .nsys-rep) are tarred into $OUT after every step, so a cut-off run still returns files. The
# analysis (mfu --hw --ceiling, compare) runs on the CPU machine from what comes back.
# Run from the repository root with the package importable (PYTHONPATH=.) and the nvtx wheel
# installed; nsys from .carry/device/nsys-env.sh. Knobs: OUT=out TOKENS=8 GPU_NAME=h200.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
TOKENS="${TOKENS:-8}"
GPU_NAME="${GPU_NAME:-h200}"
mkdir -p "$OUT" runs
LOG="$OUT/e2e.log"
: >"$LOG"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
log() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$LOG" >&2; }
snap() { tar -cJf "$OUT/e2e_runs.tar.xz" --exclude='*.nsys-rep' --exclude='*.qdstrm' runs/e2e-* 2>/dev/null; }
step() {
    local limit=$1
    shift
    log "RUN $*"
    timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
    log "rc=$?"
    snap
}
if [ -f .carry/device/nsys-env.sh ]; then
    # shellcheck disable=SC1091
    source .carry/device/nsys-env.sh >>"$LOG" 2>&1
fi
ncu --version >>"$LOG" 2>&1
L=(python3 -m dsocr_nsys.launch profile --mode base --max-new-tokens "$TOKENS" --gpu "$GPU_NAME"
    --no-static)
step 200 "${L[@]}" --ncu --out runs/e2e-eager
step 200 "${L[@]}" --decode cuda-graph --ncu --out runs/e2e-cudagraph
step 60 python3 -m dsocr_nsys.launch profile --gpu "$GPU_NAME" --no-calibrate --out runs/e2e-command \
    --command "python3 tests/fixtures/programs/cuda_graph_decode.py"
for run in runs/e2e-*; do
    log "$run: $(ls "$run" | tr '\n' ' ')"
done
