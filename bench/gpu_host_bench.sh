#!/usr/bin/env bash
# Issue 11's GPU-host target, on the lent H200 machine: `dsocr-nsys stages` against
# `nsys stats -r nvtx_gpu_proj_sum` on the same export, same loan, beside the floor (the bare
# query, and the same query as a command of its own: bench/floor_query.py) and the start-up
# pieces every command pays; earlier engines (each BASE a `git archive` of a commit's
# dsocr_nsys/ and sql/) beside it, one interleaved set each; the same trace as Parquet; with
# SCALE=150 also the x150 export (2.3 GB; about 3 minutes more). Writes everything it prints
# to $OUT/gpu_host_bench.txt.
#
# The image lacks duckdb, its sqlite extension and polars, whose wheels (88 MB) do not travel
# in one call beside the repository, so they travel in two calls of one warm machine, each
# installing into /tmp/site (kept while the machine stays warm):
#   call 1: bench/gpu_host_bench.sh install .carry/whlA     (polars, polars-runtime-32)
#   call 2: bench/gpu_host_bench.sh run .carry/whlB [BASE...] (duckdb + sqlite extension, and
#           jsonschema with its needs, which older CLIs import; runs)
# with the fixture traces other than the DeepSeek-OCR one moved out of the working tree for
# both calls (and that one too for call 1), so that tree + wheels stay under 64 MiB.
set -euo pipefail
mode=$1 wheels=$2
python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl
export PYTHONPATH=/tmp/site
[ "$mode" = install ] && exit 0

shift 2
log=${OUT:-/tmp}/gpu_host_bench.txt
exec > >(tee "$log") 2>&1
# shellcheck disable=SC1091
source .carry/device/nsys-env.sh
python3 -c "import duckdb, polars, numpy; print('duckdb', duckdb.__version__, 'polars', polars.__version__, 'numpy', numpy.__version__)"
"$NSYS" --version
nproc; grep -m1 "model name" /proc/cpuinfo; date -u
mkdir -p bench/out
python3 bench/scale_trace.py tests/fixtures/traces/dsocr_base32_h100_nsys2025.sqlite bench/out/dsocr_x21.sqlite --times 21
python3 bench/parquet_trace.py bench/out/dsocr_x21.sqlite bench/out/dsocr_x21_parquet > /dev/null
echo "start-up, wall s of 5 runs each (OPENBLAS_NUM_THREADS=1, as the CLI sets it):"
for prog in "pass" "import duckdb" "import numpy" "import polars" "import dsocr_nsys.cli" \
    "import dsocr_nsys.cli, duckdb, numpy, polars"; do
    printf '  %-46s' "$prog"
    for _ in 1 2 3 4 5; do
        /usr/bin/time -f "%e" env OPENBLAS_NUM_THREADS=1 PYTHONPATH=.:/tmp/site python3 -c "$prog" 2>&1 | tr '\n' ' '
    done
    echo
done
for trace in bench/out/dsocr_x21.sqlite bench/out/dsocr_x21_parquet; do
    python3 bench/bench_trace.py --trace "$trace" --methods floor floor_cli engine_cli --runs 7 \
        --interleave
done
for base in "$@"; do
    echo "baseline: $base"
    for trace in bench/out/dsocr_x21.sqlite bench/out/dsocr_x21_parquet; do
        python3 bench/bench_trace.py --trace "$trace" --methods engine_cli baseline_cli \
            --baseline "$(realpath "$base")" --runs 5 --interleave
    done
done
python3 bench/bench_trace.py --trace bench/out/dsocr_x21.sqlite --methods nsys_proj_sum --runs 5 --nsys "$NSYS"
# the same rows from both readings of one trace
PYTHONPATH=.:/tmp/site python3 -m dsocr_nsys.cli stages bench/out/dsocr_x21.sqlite -f csv > /tmp/a.csv
PYTHONPATH=.:/tmp/site python3 -m dsocr_nsys.cli stages bench/out/dsocr_x21_parquet -f csv > /tmp/b.csv
cmp /tmp/a.csv /tmp/b.csv && echo "stages: SQLite and Parquet rows identical"
[ "${SCALE:-}" = 150 ] || exit 0
rm -rf bench/out/dsocr_x21_parquet
python3 bench/scale_trace.py tests/fixtures/traces/dsocr_base32_h100_nsys2025.sqlite bench/out/dsocr_x150.sqlite --times 150 2>&1 | tail -1
for _ in 1 2; do
    /usr/bin/time -f "stages x150: %e s wall, %U s user, %S s sys, %M kB peak" \
        env PYTHONPATH=.:/tmp/site python3 -m dsocr_nsys.cli stages bench/out/dsocr_x150.sqlite -f csv > /tmp/x150.csv
done
md5sum /tmp/x150.csv
for _ in 1 2; do
    /usr/bin/time -f "floor_cli x150: %e s wall, %U s user, %S s sys, %M kB peak" \
        python3 bench/floor_query.py bench/out/dsocr_x150.sqlite > /dev/null
done
/usr/bin/time -f "nsys stats -r nvtx_gpu_proj_sum x150: %e s wall, %U s user, %S s sys, %M kB peak" \
    "$NSYS" stats --report nvtx_gpu_proj_sum --format csv bench/out/dsocr_x150.sqlite > /dev/null
