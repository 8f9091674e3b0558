"""Shared inputs for the compare tests: the real exports in tests/fixtures/traces, and a run
folder built from the DeepSeek-OCR export, its run.json and the matching static file."""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRACES = HERE / "fixtures" / "traces"
DSOCR = TRACES / "dsocr_base32_h100_nsys2025.sqlite"
DSOCR_RUN_JSON = TRACES / "dsocr_base32_h100_nsys2025.run.json"
DSOCR_STATIC = HERE.parent / "examples" / "dsocr_base32_h100_static.json"
MATMUL = TRACES / "h100_matmul_nvtx_nsys2025.sqlite"
BEFORE = TRACES / "nsysai_mfu_2gpu_before.sqlite"
AFTER = TRACES / "nsysai_mfu_2gpu_after.sqlite"


def run_folder(where: Path, name: str = "base-32", *, static: bool = True) -> Path:
    """A `dsocr-nsys profile` run folder: trace.sqlite (a link), run.json, static file."""
    folder = where / name
    folder.mkdir(parents=True)
    (folder / "trace.sqlite").symlink_to(DSOCR)
    shutil.copyfile(DSOCR_RUN_JSON, folder / "run.json")
    if static:
        shutil.copyfile(DSOCR_STATIC, folder / "static_compute.json")
    return folder
