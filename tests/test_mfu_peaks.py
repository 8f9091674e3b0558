"""Peak table, GPU detection from real exports' TARGET_INFO_GPU, and override precedence."""

from __future__ import annotations

import pytest
from mfu_helpers import TRACES

from dsocr_nsys.errors import DsocrError, UnknownGpuError
from dsocr_nsys.mfu.peaks import (
    TraceGpu,
    choose_peak,
    detect_gpu,
    known_gpus,
    lookup_gpu,
    normalise_gpu_name,
    peak_table,
    validate_gpu_name,
)
from dsocr_nsys.trace import open_trace

ISSUE_FIGURES = {  # the figures the issue asks for: TFLOP/s dense BF16 (FP32 acc), GB/s
    "RTX 5090": (209.5, 1792),
    "RTX 4090": (165.2, 1008),
    "RTX 3090": (71, 936),
    "A100 SXM": (312, 2039),
    "H100 SXM": (989, 3350),
    "H100 PCIe": (756, 2000),
    "H200": (989, 4800),
    "B200": (2250, 8000),
    "L40S": (362, 864),
    "L4": (121, 300),
}


def _gpus(name: str) -> list[TraceGpu]:
    info = open_trace(TRACES / name).info()
    return [TraceGpu(g.name, g.sm_count, g.memory_bandwidth_bps) for g in info.gpus]


def test_table_has_the_issue_figures_with_a_citation_each() -> None:
    rows = {r.gpu: r for r in peak_table()}
    for gpu, (tflops, gbps) in ISSUE_FIGURES.items():
        assert (rows[gpu].peak_tflops, rows[gpu].peak_gbps) == (tflops, gbps), gpu
    for row in peak_table():
        assert "datasheet" in row.source or "whitepaper" in row.source, row.gpu
    for gpu in ("RTX 5090", "RTX 4090", "RTX 3090"):
        assert "half the FP16-accumulate rate" in rows[gpu].source


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        ("h100_matmul_nvtx_nsys2025.sqlite", "H100 SXM"),  # NVIDIA H100 80GB HBM3, 3.35 TB/s
        ("pipit_cloverleaf_a100_nsys2024.sqlite", "A100 SXM"),  # A100-SXM4-80GB, 2.04 TB/s
        ("pipit_saxpy_a100_nsys2022.sqlite", "A100 40GB"),  # A100-SXM4-40GB, 1.56 TB/s
    ],
)
def test_detect_on_real_exports(trace: str, expected: str) -> None:
    choice = choose_peak(_gpus(trace), env={})
    assert choice.gpu == expected
    assert "detected from TARGET_INFO_GPU" in choice.tflops_source


def test_a100_40gb_has_the_40gb_bandwidth() -> None:
    # the SXM4-40GB recorded 1,555.2 GB/s: its row is the 40 GB one, not the 80 GB SXM's 2039
    choice = choose_peak(_gpus("pipit_saxpy_a100_nsys2022.sqlite"), env={})
    assert (choice.peak_tflops, choice.peak_gbps) == (312, 1555)


def test_unknown_gpu_on_real_export_lists_known_names() -> None:
    gpus = _gpus("nsysai_mock.sqlite")  # NVIDIA GeForce RTX 3080: not in the table
    with pytest.raises(UnknownGpuError) as err:
        choose_peak(gpus, env={})
    msg = str(err.value)
    assert "RTX 3080" in msg and "--gpu" in msg and "--peak-tflops" in msg
    for name in known_gpus():
        assert name in msg
    assert "\n" not in msg


def test_override_makes_unknown_gpu_usable() -> None:
    gpus = _gpus("nsysai_mock.sqlite")
    choice = choose_peak(gpus, peak_tflops=119.0, env={})
    assert choice.peak_tflops == 119.0 and choice.peak_gbps is None
    assert any("--peak-gbps" in n for n in choice.notes)
    assert choose_peak(gpus, gpu="RTX 3090", env={}).gpu == "RTX 3090"


def test_precedence_flag_over_env_over_detected() -> None:
    gpus = _gpus("h100_matmul_nvtx_nsys2025.sqlite")
    env = {"MFU_PEAK_TFLOPS": "500", "MFU_PEAK_GBPS": "1000"}
    detected = choose_peak(gpus, env={})
    assert (detected.peak_tflops, detected.peak_gbps) == (989, 3350)
    from_env = choose_peak(gpus, env=env)
    assert (from_env.peak_tflops, from_env.peak_gbps) == (500, 1000)
    assert from_env.tflops_source == "environment MFU_PEAK_TFLOPS"
    from_gpu = choose_peak(gpus, gpu="H100 PCIe", env=env)  # --gpu is a flag: beats env
    assert (from_gpu.peak_tflops, from_gpu.peak_gbps) == (756, 2000)
    from_flag = choose_peak(gpus, gpu="H100 PCIe", peak_tflops=900, env=env)
    assert (from_flag.peak_tflops, from_flag.peak_gbps) == (900, 2000)
    assert from_flag.tflops_source == "--peak-tflops"


def test_bad_env_value_is_one_line_error() -> None:
    with pytest.raises(DsocrError, match="MFU_PEAK_TFLOPS='fast' is not a positive number"):
        choose_peak([], env={"MFU_PEAK_TFLOPS": "fast"})


@pytest.mark.parametrize(
    ("name", "sm", "gbps", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", 132, 3352.32, "H100 SXM"),
        ("NVIDIA H100 PCIe", 114, 2039.0, "H100 PCIe"),
        ("NVIDIA H100", 114, None, "H100 PCIe"),  # bare name: SM count decides
        ("NVIDIA H100", 132, None, "H100 SXM"),
        ("NVIDIA A100 80GB PCIe", 108, 1935.0, "A100 PCIe 80GB"),
        ("NVIDIA A100-PCIE-40GB", 108, 1555.2, "A100 40GB"),
        ("NVIDIA A100", 108, 2039.0, "A100 SXM"),  # bare name: bandwidth decides
        ("NVIDIA H200", 132, 4800.0, "H200"),
        ("NVIDIA GeForce RTX 4090", 128, 1008.0, "RTX 4090"),
        ("NVIDIA GeForce RTX 5090", 170, 1792.0, "RTX 5090"),
        ("NVIDIA L40S", 142, 864.0, "L40S"),
        ("NVIDIA L4", 58, 300.0, "L4"),
        ("NVIDIA B200", 148, 8000.0, "B200"),
        ("NVIDIA H100 NVL", 132, 3900.0, None),  # another product: no silent H100 SXM
        ("NVIDIA L40", 142, 864.0, None),
        ("NVIDIA GeForce RTX 4090 D", 114, 1008.0, None),
        ("NVIDIA H100", None, None, None),  # ambiguous and nothing to decide with
    ],
)
def test_detect_names(name: str, sm: int | None, gbps: float | None, expected: str | None) -> None:
    row = detect_gpu(name, sm, gbps * 1e9 if gbps else None)
    assert (row.gpu if row else None) == expected


def test_gpu_flag_names() -> None:
    assert lookup_gpu("h100-pcie").gpu == "H100 PCIe"
    assert lookup_gpu("NVIDIA H100 80GB HBM3").gpu == "H100 SXM"  # a device name works too
    # a bare family name is narrowed by the GPU the trace recorded
    assert lookup_gpu("h100", _gpus("h100_matmul_nvtx_nsys2025.sqlite")).gpu == "H100 SXM"
    with pytest.raises(UnknownGpuError, match="ambiguous"):
        lookup_gpu("h100")
    with pytest.raises(UnknownGpuError, match="not in the peak table; known: RTX 5090"):
        lookup_gpu("MI300X")


def test_ridge_point() -> None:
    choice = choose_peak(_gpus("h100_matmul_nvtx_nsys2025.sqlite"), env={})
    assert choice.ridge_flops_per_byte == pytest.approx(989e12 / 3350e9, rel=1e-15)


def test_docs_peak_table_matches_the_package_table() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "mfu.md").read_text("utf-8")
    for row in peak_table():
        line = f"| {row.gpu} | {row.peak_tflops:g} | {row.peak_gbps:g} |"
        assert line in doc, f"docs/mfu.md peak table: update the row for {row.gpu} ({line})"


# --- issue 10: spellings, finite peaks, lazy environment, empty --gpu, mismatch ----------


@pytest.mark.parametrize(
    ("spelling", "row"),
    [
        ("rtx5090", "RTX 5090"),  # the README's `make profile GPU=rtx5090`
        ("RTX 5090", "RTX 5090"),
        ("rtx-5090", "RTX 5090"),
        ("GeForce RTX5090", "RTX 5090"),
        ("h100sxm", "H100 SXM"),
        ("H100-SXM", "H100 SXM"),
        ("h100_pcie", "H100 PCIe"),
        ("a100-sxm4-80gb", "A100 SXM"),
        ("l40s", "L40S"),
    ],
)
def test_spellings_users_type(spelling: str, row: str) -> None:
    assert lookup_gpu(spelling).gpu == row
    validate_gpu_name(spelling)


def test_normaliser() -> None:
    assert normalise_gpu_name("NVIDIA GeForce RTX-5090") == "rtx 5090"
    assert normalise_gpu_name("h100sxm") == normalise_gpu_name("H100 SXM") == "h100 sxm"
    assert normalise_gpu_name("NVIDIA H100 80GB HBM3") == "h100 80gb hbm3"


def test_validate_gpu_name() -> None:
    validate_gpu_name("h100")  # several rows: the trace's SM count settles it at mfu time
    for bad in ("", "  ", "MI300X"):
        with pytest.raises(UnknownGpuError):
            validate_gpu_name(bad)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"peak_tflops": float("nan")}, "--peak-tflops nan"),
        ({"peak_tflops": float("inf")}, "--peak-tflops inf"),
        ({"peak_gbps": float("inf")}, "--peak-gbps inf"),
        ({"peak_gbps": -1.0}, "--peak-gbps -1.0"),
    ],
)
def test_peak_overrides_finite_positive(kwargs: dict, flag: str) -> None:
    with pytest.raises(DsocrError, match=f"^{flag} is not a finite positive number"):
        choose_peak(_gpus("h100_matmul_nvtx_nsys2025.sqlite"), env={}, **kwargs)


def test_environment_read_only_when_used() -> None:
    gpus = _gpus("h100_matmul_nvtx_nsys2025.sqlite")
    bad = {"MFU_PEAK_TFLOPS": "fast", "MFU_PEAK_GBPS": "inf"}
    choice = choose_peak(gpus, peak_tflops=500, peak_gbps=2000, env=bad)
    assert (choice.peak_tflops, choice.peak_gbps) == (500, 2000)
    assert choose_peak(gpus, gpu="H100 PCIe", env=bad).peak_tflops == 756  # --gpu beats env
    with pytest.raises(DsocrError, match="MFU_PEAK_GBPS='inf' is not a positive number"):
        choose_peak(gpus, peak_tflops=500, env=bad)  # GB/s now comes from the environment


def test_empty_gpu_is_an_error_not_ignored() -> None:
    with pytest.raises(UnknownGpuError, match="--gpu '' names no GPU"):
        choose_peak(_gpus("h100_matmul_nvtx_nsys2025.sqlite"), gpu="", env={})


def test_gpu_other_than_detected_warns() -> None:
    gpus = _gpus("h100_matmul_nvtx_nsys2025.sqlite")
    choice = choose_peak(gpus, gpu="A100", env={})
    assert choice.gpu == "A100 SXM"  # SM count 132 fits no A100: the bandwidth picks
    (warning,) = choice.warnings
    assert warning.startswith("--gpu A100 (A100 SXM) is not the GPU the trace recorded")
    assert "NVIDIA H100 80GB HBM3" in warning and warning in choice.notes
    assert choose_peak(gpus, gpu="h100sxm", env={}).warnings == ()
