#!/usr/bin/env bash
# Profile DeepSeek-OCR under Nsight Systems and leave a run folder (see docs/launch.md).
#   launch/profile.sh --mode gundam --max-new-tokens 64 --gpu h100 [--out runs/NAME] [...]
# Thin wrapper: every option is `dsocr-nsys profile`'s. Uses the dsocr-nsys on PATH, else the
# project's .venv, else `python3 -m dsocr_nsys.launch` (the polars-free entry, e.g. on a bare
# GPU image with PYTHONPATH pointing at the repository).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v dsocr-nsys >/dev/null 2>&1; then
    exec dsocr-nsys profile "$@"
elif [ -x "$here/.venv/bin/dsocr-nsys" ]; then
    exec "$here/.venv/bin/dsocr-nsys" profile "$@"
else
    exec "${PYTHON:-python3}" -m dsocr_nsys.launch profile "$@"
fi
