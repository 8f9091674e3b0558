"""dsocr_nsys.hw.ncu on real Nsight Compute raw CSVs recorded on an H200 (tests/fixtures/ncu).

The known-shape file holds work whose FLOPs are computed here by hand (2·M·N·K for a GEMM,
4·B·H·S²·D for attention); the full-graph files are checked against an independent reading of
their raw rows (the csv module and the stack column, nothing of the module under test).
"""

from __future__ import annotations

import csv
import lzma
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dsocr_nsys.errors import InputFileError, TraceContentError
from dsocr_nsys.hw.ncu import STACK_COLUMN, HwFlops, hw_flops, parse_stack, read_ncu_csv

NCU = Path(__file__).resolve().parent / "fixtures" / "ncu"
KNOWN = NCU / "known_shapes_h200_ncu.csv"
KNOWN_BF16 = NCU / "known_shapes_h200_bf16_ncu.csv"
BASE2 = NCU / "dsocr_base2_h200_ncu.csv.xz"
GUNDAM2 = NCU / "dsocr_gundam2_h200_ncu.csv.xz"


def gemm(m: int, n: int, k: int) -> int:
    return 2 * m * n * k


def by_stage(result: HwFlops) -> dict[str, dict]:
    return {r["stage"]: r for r in result.stages}


def test_known_shapes_tensor_flops_are_exact():
    ncu = read_ncu_csv(KNOWN)
    assert ncu.precisions == ("bf16", "tf32")
    assert ncu.has_fp32
    rows = by_stage(hw_flops(ncu))
    assert rows["sam"]["tensor_bf16_flops"] == gemm(4096, 4096, 4096)
    # SDPA: Q·Kᵀ and P·V, each 2·B·H·S²·D
    assert rows["clip"]["tensor_bf16_flops"] == 4 * 1 * 16 * 1024**2 * 128
    # projector: an FP16 GEMM (no fp16 counter collected: 0 on bf16) and a TF32 GEMM
    assert rows["projector"]["tensor_bf16_flops"] == 0
    assert rows["projector"]["tensor_tf32_flops"] == gemm(1024, 1024, 1024)
    assert rows["projector"]["kernels"] == 2
    # the GEMM in prefill itself, outside the vision ranges
    assert rows["llm_prefill"]["tensor_flops"] == gemm(1024, 512, 2048)
    assert rows["prefill"]["tensor_flops"] == (
        rows["vision"]["tensor_flops"] + rows["llm_prefill"]["tensor_flops"]
    )
    assert rows["vision"]["tensor_flops"] == sum(
        rows[s]["tensor_flops"] for s in ("sam", "clip", "projector")
    )
    # 1x4096 @ 4096x4096: the tile computes 8 rows, so the hardware does 8x the model's work
    assert rows["decode"]["instances"] == 2
    assert rows["decode"]["tensor_bf16_flops"] == 2 * 8 * gemm(1, 4096, 4096)
    assert rows["request"]["tensor_flops"] == sum(
        rows[s]["tensor_flops"] for s in ("prefill", "decode")
    )


def test_known_shapes_fp32_flops_count_ffma_twice():
    ncu = read_ncu_csv(KNOWN)
    elementwise = [k for k in ncu.kernels if k.name == "vectorized_elementwise_kernel"]
    n = 1 << 20
    # addcmul: one FFMA per element; add: PyTorch computes a + alpha*b, one FFMA (2 FLOPs where
    # the model counts 1); mul: one FMUL
    assert [k.fp32_flops for k in elementwise] == [2 * n, 2 * n, n]
    assert all(k.tensor_flops == {"bf16": 0, "tf32": 0} for k in elementwise)


def test_known_shapes_decode_steps_by_payload():
    steps = hw_flops(read_ncu_csv(KNOWN)).decode_steps
    assert [(s["step"], s["request"], s["context"], s["kernels"]) for s in steps] == [
        (0, 0, 10, 2),
        (1, 0, 11, 5),
    ]
    assert [s["tensor_bf16_flops"] for s in steps] == [8 * gemm(1, 4096, 4096)] * 2


def _independent(lines: list[str]) -> list[dict[str, str]]:
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    rows = list(csv.DictReader(lines[start:]))
    return [r for r in rows if r["ID"].isdigit()]


def _num(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_known_shapes_time_equals_raw_rows():
    raw = _independent(KNOWN.read_text().splitlines())
    rows = by_stage(hw_flops(read_ncu_csv(KNOWN)))
    assert rows["request"]["kernel_ns"] == sum(_num(r["gpu__time_duration.sum"]) for r in raw)
    assert rows["sam"]["kernel_ns"] == 178_944
    assert rows["request"]["kernels"] == len(raw) == 12


def test_one_metric_group_file_reads_the_same_tensor_flops():
    one = by_stage(hw_flops(read_ncu_csv(KNOWN_BF16)))
    many = by_stage(hw_flops(read_ncu_csv(KNOWN)))
    assert "fp32_flops" not in one["sam"]
    for stage in one:
        assert one[stage]["tensor_bf16_flops"] == many[stage]["tensor_bf16_flops"], stage


@pytest.mark.parametrize("path", [BASE2, GUNDAM2], ids=["base", "gundam"])
def test_full_graph_equals_independent_reading(path: Path):
    with lzma.open(path, "rt", encoding="utf-8", newline="") as fh:
        raw = _independent(fh.read().splitlines())
    innermost: dict[str, list[dict[str, str]]] = {}
    for r in raw:
        names = [e.split(":")[1] for e in re.findall(r'"([^"]*)"', r[STACK_COLUMN])
                 if e.startswith("dsocr:")]  # fmt: skip
        innermost.setdefault(names[-1], []).append(r)
    rows = by_stage(hw_flops(read_ncu_csv(path)))
    metric = "sm__ops_path_tensor_src_bf16_dst_fp32.sum"
    for stage in ("sam", "clip", "projector", "decode"):
        assert rows[stage]["kernels"] == len(innermost[stage])
        assert rows[stage]["tensor_bf16_flops"] == sum(_num(r[metric]) for r in innermost[stage])
        assert rows[stage]["kernel_ns"] == sum(
            _num(r["gpu__time_duration.sum"]) for r in innermost[stage]
        )
    assert rows["llm_prefill"]["kernels"] == len(innermost["prefill"])
    assert rows["request"]["kernels"] == len(raw)
    assert rows["request"]["tensor_flops"] == sum(_num(r[metric]) for r in raw)


def test_base_mode_figures():
    rows = by_stage(hw_flops(read_ncu_csv(BASE2)))
    assert rows["sam"]["tensor_bf16_flops"] == 991_853_281_280
    assert rows["llm_prefill"]["tensor_bf16_flops"] == 359_990_820_864
    assert rows["decode"]["tensor_bf16_flops"] == 46_622_310_400
    assert rows["request"]["kernels"] == 6062


def test_gundam_cub_ranges_are_not_stages():
    # CUB opens its own NVTX domain inside prefill; the stage is the innermost dsocr range.
    ncu = read_ncu_csv(GUNDAM2)
    assert {k.stage for k in ncu.kernels} == {"sam", "clip", "projector", "prefill", "decode"}
    rows = by_stage(hw_flops(ncu))
    assert rows["llm_prefill"]["kernels"] == 4216


def test_parse_stack():
    cell = (
        '638  "dsocr:request:Int64:0:RGB:0xff:REGISTERED:request"  '
        '"CCCL:cub::DeviceRadixSort:Int64:0:RGB:0xff:REGISTERED:x"  '
        '"dsocr:decode:Int64:283:RGB:0x800080:REGISTERED:decode" '
    )
    assert parse_stack(cell) == (("request", 0), ("decode", 283))
    assert parse_stack("") == ()


# --- bad input ------------------------------------------------------------------------------


def _rewrite(tmp_path: Path, drop: Callable[[str], bool]) -> Path:
    """The known-shape file without the columns ``drop(name)`` selects."""
    lines = KNOWN.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    rows = list(csv.reader(lines[start:]))
    keep = [i for i, name in enumerate(rows[0]) if not drop(name)]
    out = tmp_path / "bad.csv"
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        for row in rows:
            writer.writerow([row[i] for i in keep])
    return out


def test_not_ncu(tmp_path: Path):
    bad = tmp_path / "stats.csv"
    bad.write_text("Time (%),Total Time (ns),Instances\n1,2,3\n")
    with pytest.raises(InputFileError, match=r"not an ncu raw CSV"):
        read_ncu_csv(bad)
    with pytest.raises(InputFileError, match=r"no such file"):
        read_ncu_csv(tmp_path / "missing.csv")


def test_no_nvtx_column(tmp_path: Path):
    with pytest.raises(TraceContentError, match=r"no NVTX push/pop column.*--nvtx"):
        read_ncu_csv(_rewrite(tmp_path, lambda n: n == STACK_COLUMN))


def test_no_flop_metric(tmp_path: Path):
    with pytest.raises(TraceContentError, match=r"no tensor-FLOP metric.*--metrics"):
        read_ncu_csv(_rewrite(tmp_path, lambda n: n.startswith("sm__ops_path_tensor")))


def test_no_time_metric(tmp_path: Path):
    with pytest.raises(TraceContentError, match=r"gpu__time_duration.sum"):
        read_ncu_csv(_rewrite(tmp_path, lambda n: n.startswith("gpu__time_duration")))


def test_part_of_the_fp32_counters(tmp_path: Path):
    with pytest.raises(TraceContentError, match=r"fmul_pred_on.sum"):
        read_ncu_csv(_rewrite(tmp_path, lambda n: "op_fmul" in n))
