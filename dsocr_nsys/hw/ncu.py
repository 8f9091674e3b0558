"""Read an Nsight Compute raw CSV (``ncu --csv --page raw``) and sum hardware FLOPs per stage.

A stage is the innermost ``dsocr`` NVTX push/pop range of each kernel, read from the column
:data:`STACK_COLUMN` (entries ``"dsocr:prefill:Int64:282:…"``, outermost first; ranges of other
domains, e.g. CUB's, are skipped). Counted:

- tensor-core FLOPs per source precision from ``sm__ops_path_tensor_src_<p>[_dst_<acc>].sum``
  (the counter counts FLOPs, 2 per multiply-add, as measured on an H200: docs/hwflops.md);
- non-tensor FP32 FLOPs = 2 x FFMA + FADD + FMUL thread instructions
  (``smsp__sass_thread_inst_executed_op_{ffma,fadd,fmul}_pred_on.sum``), when all three are there;
- kernel time: ``gpu__time_duration.sum`` (ns, under ncu's replay: each kernel serialised).

Pure Python (csv, lzma, re): runs on the GPU image without polars. Rows are plain dicts; the CLI
turns them into frames. A file ending ``.xz`` is read through :mod:`lzma`.
"""

from __future__ import annotations

import csv
import lzma
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputFileError, TraceContentError
from ..vocab import (
    CLIP,
    DECODE,
    LLM_PREFILL,
    NVTX_DOMAIN,
    PREFILL,
    PROJECTOR,
    REQUEST,
    SAM,
    STAGE_BY_NAME,
    STAGE_ORDER,
    VISION,
    VISION_PARTS,
    WARMUP,
)

#: The raw page's per-kernel NVTX push/pop stack (ncu ``--nvtx``).
STACK_COLUMN = "thread Domain:Push/Pop_Range:PL_Type:PL_Value:CLR_Type:Color:Msg_Type:Msg"
TIME_METRIC = "gpu__time_duration.sum"
#: Aggregate tensor-path counters, one per source precision (Hopper also has per-instruction
#: ``…_op_hmma_…`` / ``…_op_hgmma_…`` variants, which the aggregate already sums; the hmma one
#: reads 0 for wgmma kernels, so only the aggregate is used).
TENSOR_METRIC_RE = re.compile(r"^sm__ops_path_tensor_src_([a-z0-9]+?)(_dst_[a-z0-9]+)?\.sum$")
#: Floating-point source precisions (integer tensor ops are not FLOPs).
FLOAT_PRECISIONS = ("bf16", "fp16", "tf32", "fp8", "fp64")
#: FP32 thread-instruction counters and the FLOPs each instruction does.
FP32_OPS = {"ffma": 2, "fadd": 1, "fmul": 1}
FP32_PREFIXES = ("smsp__", "sm__")
#: The one metric group ``profile --ncu`` collects where the chip has it (docs/hwflops.md).
DEFAULT_METRICS = ("sm__ops_path_tensor_src_bf16_dst_fp32.sum", TIME_METRIC)
#: ncu options every hardware-FLOPs recording needs (besides ``--metrics``).
NCU_FLAGS = (
    "--nvtx",
    "--nvtx-include",
    f"{NVTX_DOMAIN}@{REQUEST}/",
    "--csv",
    "--page",
    "raw",
    "--print-kernel-base",
    "function",
)
_HOW = (
    'record with: ncu --nvtx --nvtx-include "dsocr@request/" --csv --page raw '
    "--print-kernel-base function --metrics "
    "sm__ops_path_tensor_src_bf16_dst_fp32.sum,gpu__time_duration.sum <program> > ncu.csv"
)
_ENTRY_RE = re.compile(r'"([^"]*)"')
_HEADER_RE = re.compile(r'^"?ID"?,"?Process ID"?,')


def fp32_metric(op: str, prefix: str = "smsp__") -> str:
    """The thread-instruction counter of FP32 ``op`` (ffma, fadd or fmul)."""
    return f"{prefix}sass_thread_inst_executed_op_{op}_pred_on.sum"


@dataclass(frozen=True)
class Kernel:
    """One profiled kernel: its ``dsocr`` ranges (outermost first, with payloads), FLOPs and
    ncu time. ``tensor_flops``: precision -> FLOPs (None where ncu printed n/a)."""

    id: int
    name: str
    ranges: tuple[tuple[str, int | None], ...]
    tensor_flops: dict[str, int | None]
    fp32_flops: int | None
    kernel_ns: int | None

    @property
    def stage(self) -> str | None:
        """The innermost ``dsocr`` range (None outside every one)."""
        return self.ranges[-1][0] if self.ranges else None

    def within(self, name: str) -> bool:
        return any(n == name for n, _ in self.ranges)


@dataclass(frozen=True)
class NcuCsv:
    """A parsed raw CSV: kernels, the precisions measured, whether FP32 counts are there."""

    path: str
    kernels: tuple[Kernel, ...]
    precisions: tuple[str, ...]
    metrics: tuple[str, ...]
    has_fp32: bool
    ignored_metrics: tuple[str, ...] = ()


def _open_text(path: Path) -> list[str]:
    try:
        if path.suffix == ".xz":
            with lzma.open(path, "rt", encoding="utf-8", newline="") as fh:
                return fh.read().splitlines()
        with path.open("r", encoding="utf-8", newline="") as fh:
            return fh.read().splitlines()
    except (OSError, lzma.LZMAError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {path} ({exc}); pass an ncu raw CSV") from None


def _number(text: str) -> float | None:
    """ncu's cell: thousands separators, ``n/a`` for a counter it could not read."""
    cleaned = text.replace(",", "").strip()
    if cleaned in ("", "n/a", "N/A"):
        return None
    try:
        return float(cleaned)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    value = _number(text)
    return None if value is None else round(value)


def parse_stack(cell: str) -> tuple[tuple[str, int | None], ...]:
    """The ``dsocr`` push/pop ranges of a stack cell, outermost first, as (name, payload).

    A cell reads ``TID  "dsocr:request:Int64:0:RGB:0x…:REGISTERED:request"  "…"``; fields are
    Domain:Range:PL_Type:PL_Value:CLR_Type:Color:Msg_Type:Msg."""
    out = []
    for entry in _ENTRY_RE.findall(cell):
        parts = entry.split(":")
        if len(parts) < 2 or parts[0] != NVTX_DOMAIN:
            continue
        payload = None
        if len(parts) > 3:
            try:
                payload = int(parts[3])
            except ValueError:
                payload = None
        out.append((parts[1], payload))
    return tuple(out)


def _fp32_columns(header: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The FP32 counters present (op -> column) and the names of the missing ones."""
    found: dict[str, str] = {}
    for op in FP32_OPS:
        for prefix in FP32_PREFIXES:
            if fp32_metric(op, prefix) in header:
                found[op] = fp32_metric(op, prefix)
                break
    missing = [fp32_metric(op) for op in FP32_OPS if op not in found]
    return found, missing


def read_ncu_csv(path: str | Path) -> NcuCsv:
    """Parse an ``ncu --csv --page raw`` file (stdout as captured: ncu's ``==PROF==`` lines and
    the program's own output around the table are skipped).

    Raises :class:`InputFileError` (missing, not an ncu raw CSV) or :class:`TraceContentError`
    (no NVTX stack column, no tensor-FLOP metric, no kernel time, part of the FP32 counters)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"no such file: {p}; pass an ncu raw CSV ({_HOW})")
    lines = _open_text(p)
    start = next((i for i, line in enumerate(lines) if _HEADER_RE.match(line)), None)
    if start is None:
        raise InputFileError(f'{p} is not an ncu raw CSV (no "ID","Process ID",... header); {_HOW}')
    rows = list(csv.reader(lines[start:]))
    header = rows[0]
    width = len(header)
    if STACK_COLUMN not in header:
        raise TraceContentError(f"{p} has no NVTX push/pop column (ncu ran without --nvtx); {_HOW}")
    tensor: dict[str, list[str]] = {}
    ignored = []
    for name in header:
        m = TENSOR_METRIC_RE.match(name)
        if not m:
            continue
        if m.group(1) in FLOAT_PRECISIONS:
            tensor.setdefault(m.group(1), []).append(name)
        else:
            ignored.append(name)
    # An aggregate over every accumulator type (src_fp16.sum) already holds the dst variants.
    for prec, names in tensor.items():
        agg = f"sm__ops_path_tensor_src_{prec}.sum"
        if agg in names:
            tensor[prec] = [agg]
    if not tensor:
        raise TraceContentError(
            f"{p} has no tensor-FLOP metric (sm__ops_path_tensor_src_<bf16|fp16|tf32|fp8>"
            f"[_dst_fp32].sum); {_HOW}"
        )
    if TIME_METRIC not in header:
        raise TraceContentError(f"{p} has no {TIME_METRIC} column (kernel time); {_HOW}")
    fp32, missing = _fp32_columns(header)
    if fp32 and missing:
        raise TraceContentError(
            f"{p} has only part of the FP32 counters: add {','.join(missing)} to --metrics "
            "(non-tensor FLOPs = 2 FFMA + FADD + FMUL)"
        )
    col = {name: i for i, name in enumerate(header)}
    kernels = []
    for row in rows[1:]:
        # The units row has an empty ID; program output after the table has another width.
        if len(row) != width or not row[0].strip().isdigit():
            continue
        flops = {
            prec: _sum_cells(row[col[n]] for n in names) for prec, names in sorted(tensor.items())
        }
        fp32_flops = None
        if fp32:
            counts = [_int(row[col[fp32[op]]]) for op in FP32_OPS]
            if all(c is not None for c in counts):
                fp32_flops = sum(FP32_OPS[op] * c for op, c in zip(FP32_OPS, counts, strict=True))  # type: ignore[operator]
        kernels.append(
            Kernel(
                id=int(row[0]),
                name=row[col["Kernel Name"]] if "Kernel Name" in col else "",
                ranges=parse_stack(row[col[STACK_COLUMN]]),
                tensor_flops=flops,
                fp32_flops=fp32_flops,
                kernel_ns=_int(row[col[TIME_METRIC]]),
            )
        )
    if not kernels:
        raise TraceContentError(f"{p} holds an ncu header but no kernel rows; {_HOW}")
    metrics = tuple(n for names in tensor.values() for n in names) + tuple(fp32.values())
    return NcuCsv(
        path=str(p),
        kernels=tuple(kernels),
        precisions=tuple(pr for pr in FLOAT_PRECISIONS if pr in tensor),
        metrics=(*metrics, TIME_METRIC),
        has_fp32=bool(fp32),
        ignored_metrics=tuple(ignored),
    )


def _sum_cells(cells: Iterable[str]) -> int | None:
    values = [_int(c) for c in cells]
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


# --- per stage ---------------------------------------------------------------------------


@dataclass
class HwFlops:
    """Hardware FLOPs per stage of one ncu recording.

    ``stages``: one dict per stage row (``stage``, ``kind``, ``instances``, ``kernels``,
    ``tensor_<p>_flops`` per precision, ``tensor_flops``, ``fp32_flops`` when counted,
    ``kernel_ns``); ``decode_steps``: one dict per decode range instance (``request``,
    ``context`` = the range's payload, the same counts)."""

    source: str
    precisions: tuple[str, ...]
    metrics: tuple[str, ...]
    has_fp32: bool
    stages: list[dict[str, Any]]
    decode_steps: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The ``hw_flops.json`` document (what ``mfu --hw`` reads)."""
        return {
            "schema": SCHEMA,
            "source": self.source,
            "precisions": list(self.precisions),
            "metrics": list(self.metrics),
            "fp32_counted": self.has_fp32,
            "stages": self.stages,
            "decode_steps": self.decode_steps,
            "notes": self.notes,
        }


SCHEMA = "dsocr-nsys/hw_flops/1"


def _instance_key(k: Kernel, name: str) -> tuple[tuple[str, int | None], ...]:
    """The stack prefix down to range ``name``: one key per range instance (consecutive
    instances of one name differ by payload: the decode step's context length)."""
    for i, (n, _) in enumerate(k.ranges):
        if n == name:
            return k.ranges[: i + 1]
    return ()


def _totals(
    kernels: Sequence[Kernel], precisions: Sequence[str], has_fp32: bool, instances: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"instances": instances, "kernels": len(kernels)}
    total = 0
    for prec in precisions:
        value = sum(k.tensor_flops.get(prec) or 0 for k in kernels)
        row[f"tensor_{prec}_flops"] = value
        total += value
    row["tensor_flops"] = total
    if has_fp32:
        row["fp32_flops"] = sum(k.fp32_flops or 0 for k in kernels)
    row["kernel_ns"] = sum(k.kernel_ns or 0 for k in kernels)
    return row


def hw_flops(ncu: NcuCsv) -> HwFlops:
    """Per-stage hardware FLOPs (the rows of :data:`~dsocr_nsys.vocab.STAGE_ORDER` that have
    kernels), as ``mfu`` nests them: ``prefill`` as measured (vision nested in it),
    ``llm_prefill`` = prefill without its vision kernels, ``vision`` = sam + clip + projector,
    ``request`` = every kernel inside a ``request`` range. Kernels in ``warmup`` ranges are left
    out (the warm-up rule of every command)."""
    notes = []
    counted = [k for k in ncu.kernels if k.ranges and not k.within(WARMUP)]
    outside = len(ncu.kernels) - len(counted)
    if outside:
        notes.append(f"{outside} kernels lie outside every dsocr range or in warmup: not counted")
    if not counted:
        raise TraceContentError(f"{ncu.path}: no kernel inside a dsocr NVTX range; {_HOW}")
    na = sum(1 for k in counted if any(v is None for v in k.tensor_flops.values()))
    if na:
        notes.append(f"{na} kernels have n/a tensor counters (counted as 0)")
    if ncu.ignored_metrics:
        notes.append(
            "integer tensor counters not counted as FLOPs: " + ", ".join(ncu.ignored_metrics)
        )

    def row(stage: str, kernels: list[Kernel], instance_of: Sequence[str]) -> dict[str, Any]:
        keys = {_instance_key(k, n) for k in kernels for n in instance_of if k.within(n)}
        return {
            "stage": stage,
            "kind": STAGE_BY_NAME[stage].kind,
            **_totals(kernels, ncu.precisions, ncu.has_fp32, len(keys)),
        }

    by_stage: dict[str, list[Kernel]] = {}
    vision = [k for k in counted if k.stage in VISION_PARTS]
    by_stage[SAM] = [k for k in counted if k.stage == SAM]
    by_stage[CLIP] = [k for k in counted if k.stage == CLIP]
    by_stage[PROJECTOR] = [k for k in counted if k.stage == PROJECTOR]
    by_stage[VISION] = vision
    by_stage[PREFILL] = [k for k in counted if k.within(PREFILL)]
    by_stage[LLM_PREFILL] = [k for k in by_stage[PREFILL] if k.stage not in VISION_PARTS]
    by_stage[DECODE] = [k for k in counted if k.stage == DECODE]
    by_stage[REQUEST] = [k for k in counted if k.within(REQUEST)]
    instance_names = {
        VISION: VISION_PARTS,
        LLM_PREFILL: (PREFILL,),
    }
    stages = [
        row(s, by_stage[s], instance_names.get(s, (s,))) for s in STAGE_ORDER if by_stage.get(s)
    ]
    # vision's instances: the most of its parts (as mfu counts them).
    for r in stages:
        if r["stage"] == VISION:
            r["instances"] = max(x["instances"] for x in stages if x["stage"] in VISION_PARTS)
    steps: dict[tuple[tuple[str, int | None], ...], list[Kernel]] = {}
    for k in by_stage[DECODE]:
        steps.setdefault(_instance_key(k, DECODE), []).append(k)
    decode_steps = []
    for step, (key, kernels) in enumerate(steps.items()):
        request = next((p for n, p in key if n == REQUEST), None)
        decode_steps.append(
            {
                "step": step,
                "request": request,
                "context": key[-1][1],
                **{
                    c: v
                    for c, v in _totals(kernels, ncu.precisions, ncu.has_fp32, 1).items()
                    if c != "instances"
                },
            }
        )
    return HwFlops(
        source=ncu.path,
        precisions=ncu.precisions,
        metrics=ncu.metrics,
        has_fp32=ncu.has_fp32,
        stages=stages,
        decode_steps=decode_steps,
        notes=notes,
    )
