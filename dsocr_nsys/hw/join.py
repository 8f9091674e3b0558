"""Hardware FLOPs and the measured ceiling joined onto ``mfu``'s per-stage frame.

- :func:`join_hw`: per stage, the tensor-core FLOPs ncu counted (``hw_flops``), HFU (hardware
  FLOPs per second of GPU busy time over the datasheet peak) and the useful share (model FLOPs
  over hardware FLOPs). The ncu recording is a short request of the same configuration (2 new
  tokens by default), so its FLOPs are taken per range instance and scaled to the trace's
  instance count (``hw_scaled`` says where that happened);
- :func:`with_ceiling`: MFU and MBU against the calibrated ceiling (``…_measured_pct``) next
  to the datasheet ones (``mfu_…_pct``, ``mbu_…_pct``), from existing rate columns.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import InputFileError
from ..jsonfile import read_json
from ..mfu.notes import Finding
from ..vocab import BUSY, DECODE, PREFILL, RATE_BASES, REQUEST, time_base
from .calibrate import Calibration
from .ncu import SCHEMA

#: The columns :func:`join_hw` adds, in order (the ``hardware`` table of the human report).
HW_COLUMNS = (
    "hw_flops",
    "hw_scaled",
    "hw_busy_tflops",
    "hfu_busy_pct",
    "useful_pct",
)
#: The mfu row that holds the whole request ("total" when the trace has no request ranges).
_TOTAL_ROWS = (REQUEST, "total")


def load_hw_flops(path: str | Path) -> dict[str, Any]:
    """Read an ``hw_flops.json`` document (``dsocr-nsys hwflops -o``), opened read-only."""
    p = Path(path)
    doc = read_json(
        p, InputFileError, f"--hw {p}", f"write it with `dsocr-nsys hwflops NCU.csv -o {p}`"
    )
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputFileError(
            f"--hw {p} is not an hw_flops document (schema {SCHEMA}); write it with "
            "`dsocr-nsys hwflops NCU.csv -o hw_flops.json`"
        )
    return doc


def load_calibration(path: str | Path) -> Calibration:
    """The calibration in ``run.json`` (its ``calibration`` key) or a calibrate JSON record."""
    p = Path(path)
    doc = read_json(p, InputFileError, f"--ceiling {p}", "pass a run folder's run.json")
    record = doc.get("calibration", doc) if isinstance(doc, dict) else None
    try:
        return Calibration.from_record(record)  # type: ignore[arg-type]
    except (TypeError, KeyError, AttributeError):
        raise InputFileError(
            f"--ceiling {p} holds no calibration; profile without --no-calibrate or run "
            "`dsocr-nsys calibrate -f json` on the GPU"
        ) from None


def join_hw(
    stages: pl.DataFrame, doc: dict[str, Any], peak_tflops: float | None
) -> tuple[pl.DataFrame, list[Finding]]:
    """``stages`` (mfu's frame: ``stage``, ``instances``, ``total_flops``, ``busy_total_ns``)
    with :data:`HW_COLUMNS` added, and the findings to show (hardware below model, scaling)."""
    hw = {r["stage"]: r for r in doc.get("stages", [])}
    busy_col = time_base(BUSY).total
    notes: list[Finding] = []
    cols: dict[str, list[Any]] = {c: [] for c in HW_COLUMNS}
    scaled_any = []
    rows = list(stages.iter_rows(named=True))
    trace_instances = {r["stage"]: r.get("instances") for r in rows}

    def scaled_flops(name: str, flops: int, instances: int) -> int | None:
        """Per range instance of the ncu run, times the trace's instances (exact until here)."""
        want = trace_instances.get(name)
        if not instances or not want:
            return None
        if instances != want:
            scaled_any.append(f"{name} ({instances} -> {want})")
        return round(Fraction(flops, instances) * want)

    for row in rows:
        name = row["stage"]
        flops = None
        scaled = None
        if name in _TOTAL_ROWS and REQUEST in hw:
            # the request: its top-level stages (each scaled) plus what lies between them
            parts = [hw[s] for s in (PREFILL, DECODE) if s in hw and s in trace_instances]
            rest = int(hw[REQUEST]["tensor_flops"]) - sum(int(p["tensor_flops"]) for p in parts)
            pieces = [
                scaled_flops(p["stage"], int(p["tensor_flops"]), p["instances"]) for p in parts
            ]
            between = scaled_flops(name, rest, hw[REQUEST]["instances"])
            if between is not None and all(x is not None for x in pieces):
                flops = between + sum(pieces)  # type: ignore[arg-type]
                scaled = any(p["instances"] != trace_instances[p["stage"]] for p in parts)
        elif name in hw:
            h = hw[name]
            flops = scaled_flops(name, int(h["tensor_flops"]), h["instances"])
            scaled = None if flops is None else h["instances"] != row.get("instances")
        busy = row.get(busy_col)
        rate = float(Fraction(flops, busy) / 1000) if flops is not None and busy else None
        model = row.get("total_flops")
        useful = 100.0 * model / flops if flops and model is not None else None
        cols["hw_flops"].append(flops)
        cols["hw_scaled"].append(scaled)
        cols["hw_busy_tflops"].append(rate)
        cols["hfu_busy_pct"].append(100.0 * rate / peak_tflops if rate and peak_tflops else None)
        cols["useful_pct"].append(useful)
        if flops is not None and model is not None and flops < model:
            notes.append(
                Finding("hw_below_model", {"stage": name, "hw_flops": flops, "model_flops": model})
            )
    schema = {
        "hw_flops": pl.Int64,
        "hw_scaled": pl.Boolean,
        "hw_busy_tflops": pl.Float64,
        "hfu_busy_pct": pl.Float64,
        "useful_pct": pl.Float64,
    }
    added = pl.DataFrame(cols, schema=schema)
    notes.insert(
        0,
        Finding(
            "hw_source",
            {"precisions": list(doc.get("precisions", [])), "source": doc.get("source")},
        ),
    )
    if scaled_any:
        notes.insert(1, Finding("hw_scaled", {"stages": list(dict.fromkeys(scaled_any))}))
    return pl.concat([stages, added], how="horizontal"), notes


def ceiling_columns() -> list[str]:
    """The columns :func:`with_ceiling` adds."""
    return [f"mfu_{b.key}_measured_pct" for b in RATE_BASES] + [
        f"mbu_{b.key}_measured_pct" for b in RATE_BASES
    ]


def with_ceiling(stages: pl.DataFrame, cal: Calibration) -> pl.DataFrame:
    """MFU/MBU against the measured ceiling: ``{base}_tflops`` over ``cal.gemm_tflops`` and
    ``{base}_gbps`` over ``cal.copy_gbps``, in percent, for every rate base."""
    exprs = []
    for b in RATE_BASES:
        if b.tflops in stages.columns:
            exprs.append(
                (100.0 * pl.col(b.tflops) / cal.gemm_tflops).alias(f"mfu_{b.key}_measured_pct")
            )
        if b.gbps in stages.columns:
            exprs.append(
                (100.0 * pl.col(b.gbps) / cal.copy_gbps).alias(f"mbu_{b.key}_measured_pct")
            )
    return stages.with_columns(exprs)


def apply(result: Any, hw_path: str | Path | None, ceiling_path: str | Path | None) -> None:
    """Add the hardware and ceiling columns, findings and meta to an ``MfuResult`` in place."""
    if hw_path is not None:
        doc = load_hw_flops(hw_path)
        result.stages, findings = join_hw(result.stages, doc, result.peak.peak_tflops)
        result.findings.extend(findings)
        result.meta["hw_flops"] = str(hw_path)
    if ceiling_path is not None:
        cal = load_calibration(ceiling_path)
        result.stages = with_ceiling(result.stages, cal)
        traced = result.peak.detected_name
        if traced and traced != cal.gpu_name:
            result.findings.append(
                Finding("ceiling_other_gpu", {"measured_on": cal.gpu_name, "traced_on": traced})
            )
        result.meta["measured_ceiling"] = (
            f"{cal.gemm_tflops:.1f} TFLOP/s dense BF16 GEMM, {cal.copy_gbps:.1f} GB/s device "
            f"copy ({cal.gpu_name}, calibrate, {ceiling_path})"
        )
        result.findings.append(Finding("ceiling_columns"))


def display_tables(stages: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The human report's extra tables: ``hardware`` (model vs hardware FLOPs, HFU, useful
    share) and ``ceiling`` (MFU/MBU on GPU busy time against datasheet and measured ceiling)."""
    tables = {}
    if "hw_flops" in stages.columns:
        tables["hardware"] = stages.select("stage", "instances", "total_flops", *HW_COLUMNS)
    if "mfu_busy_measured_pct" in stages.columns:
        tables["ceiling"] = stages.select(
            "stage",
            "mfu_busy_pct",
            "mfu_busy_measured_pct",
            "mbu_busy_pct",
            "mbu_busy_measured_pct",
        )
    return tables
