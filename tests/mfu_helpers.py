"""Shared fixtures for the mfu tests: the real H100 matmul export, its golden `nsys stats`
numbers, and edited copies of the export (a real trace with its NVTX rows renamed, moved or
given payloads: the trace engine then computes everything else from the real GPU work)."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRACES = HERE / "fixtures" / "traces"
GOLDEN = TRACES / "golden"
STATIC = HERE / "fixtures" / "static"
H100 = TRACES / "h100_matmul_nvtx_nsys2025.sqlite"
H100_STATIC = STATIC / "h100_matmul.json"
# each NVTX range of the H100 export ran five 2048x2048x2048 BF16 matmuls
MATMUL_FLOPS = 5 * 2 * 2048**3
MATMUL_BYTES = 5 * 3 * 2048 * 2048 * 2  # A and B read, C written, once each (bf16)

# NVTX rows of the H100 export (CPU start, end), from golden/..._nvtx_gpu_proj_trace.csv
SAM = (5597768374, 5705433418)
CLIP = (5705481119, 5705650686)
PREFILL = (5705652978, 5705797366)


def golden(report: str) -> list[dict[str, str]]:
    """Rows of a golden `nsys stats` CSV for the H100 export, keyed by header."""
    path = GOLDEN / f"h100_matmul_nvtx_nsys2025_{report}.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def golden_times() -> dict[str, dict[str, int]]:
    """Per range name: proj (nvtx_gpu_proj_trace), kernel (nvtx_kern_sum), cpu (nvtx_sum)."""
    out: dict[str, dict[str, int]] = {}
    for row in golden("nvtx_gpu_proj_trace"):
        out.setdefault(row["Name"].lstrip(":"), {})["proj"] = int(row["Projected Duration (ns)"])
    for row in golden("nvtx_kern_sum"):
        if row["NVTX Range"]:
            name = row["NVTX Range"].lstrip(":")
            out[name]["kernel"] = out[name].get("kernel", 0) + int(row["Total Time (ns)"])
    for row in golden("nvtx_sum"):
        out[row["Range"].lstrip(":")]["cpu"] = int(row["Total Time (ns)"])
    return out


def edited_trace(tmp_path: Path, statements: list[tuple[str, tuple[Any, ...]]]) -> Path:
    """A copy of the H100 export with SQL statements applied to the copy's NVTX rows."""
    dest = tmp_path / "edited.sqlite"
    shutil.copyfile(H100, dest)
    con = sqlite3.connect(dest)
    try:
        for sql, params in statements:
            con.execute(sql, params)
        con.commit()
    finally:
        con.close()
    return dest


def static_file(
    tmp_path: Path,
    stages: dict[str, Any],
    config: dict[str, Any] | None = None,
    name: str = "static.json",
) -> Path:
    """Write a static-compute file (schema v1) into tmp_path."""
    doc = {"schema_version": 1, "config": config or {}, "stages": stages}
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path
