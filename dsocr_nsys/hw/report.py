"""Reports of the hardware commands (``hwflops``, ``calibrate``) as :class:`Report` objects."""

from __future__ import annotations

from typing import Any

import polars as pl

from ..errors import UnknownGpuError
from ..output import Report
from .calibrate import Calibration
from .ncu import HwFlops

HWFLOPS_TITLE = "dsocr-nsys hwflops: hardware FLOPs per stage (Nsight Compute counters)"
CALIBRATE_TITLE = "dsocr-nsys calibrate: measured GEMM and copy ceilings of this GPU"


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None)


def hwflops_report(result: HwFlops) -> Report:
    """Stages table (first) and decode steps table; notes say what each FLOP column counts."""
    notes = [
        "tensor_<p>_flops: sm__ops_path_tensor_src_<p>[_dst_fp32].sum per source precision "
        "(FLOPs, 2 per multiply-add, padding included); tensor_flops: their sum",
        "kernel_ns: gpu__time_duration.sum under ncu (each kernel replayed alone, serialised)",
    ]
    if result.has_fp32:
        notes.append("fp32_flops: non-tensor FP32 FLOPs = 2 FFMA + FADD + FMUL thread instructions")
    else:
        notes.append(
            "no FP32 counters: add smsp__sass_thread_inst_executed_op_{ffma,fadd,fmul}_pred_on.sum "
            "to --metrics for non-tensor FLOPs"
        )
    return Report(
        tables={"stages": _frame(result.stages), "decode_steps": _frame(result.decode_steps)},
        notes=notes + result.notes,
        meta={
            "source": result.source,
            "precisions": ", ".join(result.precisions),
            "metrics": ", ".join(result.metrics),
        },
        title=HWFLOPS_TITLE,
    )


def datasheet(gpu_name: str) -> tuple[float | None, float | None]:
    """(dense BF16 TFLOP/s, GB/s) of the peak table's row for ``gpu_name``, or Nones."""
    from ..mfu.peaks import detect_gpu

    try:
        row = detect_gpu(gpu_name)
    except UnknownGpuError:
        return None, None
    return (row.peak_tflops, row.peak_gbps) if row else (None, None)


def calibration_report(result: Calibration) -> Report:
    """One row per GEMM size, one for the copy; meta: the ceilings next to the datasheet."""
    tflops, gbps = datasheet(result.gpu_name)
    gemm = pl.DataFrame(
        [
            {
                "test": f"bf16 gemm {p.n}x{p.n}x{p.n}",
                "work_flops": p.flops,
                "median_tflops": p.tflops_median,
                "min_tflops": p.tflops_min,
                "max_tflops": p.tflops_max,
                "datasheet_pct": 100.0 * p.tflops_median / tflops if tflops else None,
            }
            for p in result.gemm
        ],
        schema_overrides={"datasheet_pct": pl.Float64},
    )
    copy = pl.DataFrame(
        [
            {
                "test": "device copy (read + write)",
                "moved_bytes": result.copy_bytes,
                "median_gbps": result.copy_gbps,
                "min_gbps": result.copy_gbps_min,
                "max_gbps": result.copy_gbps_max,
                "datasheet_pct": 100.0 * result.copy_gbps / gbps if gbps else None,
            }
        ],
        schema_overrides={"datasheet_pct": pl.Float64},
    )
    return Report(
        tables={"gemm": gemm, "copy": copy},
        meta={
            "gpu": result.gpu_name,
            "torch": result.torch_version,
            "cuda": result.cuda_version,
            "ceiling_tflops": result.gemm_tflops,
            "ceiling_gbps": result.copy_gbps,
            "datasheet_tflops": tflops,
            "datasheet_gbps": gbps,
            "repeats": result.repeats,
            "warmup": result.warmup,
        },
        notes=[
            "ceiling_tflops: best per-size median of dense BF16 torch.matmul (2 n^3 FLOPs each); "
            "ceiling_gbps: median device-to-device copy, bytes read + written; clocks as found",
        ],
        title=CALIBRATE_TITLE,
    )
