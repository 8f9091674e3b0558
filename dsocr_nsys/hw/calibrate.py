"""``dsocr-nsys calibrate``: the GPU's measured ceilings, next to its datasheet peaks.

- dense BF16 GEMM: square ``n x n @ n x n`` products through ``torch.matmul`` for a few large
  ``n``; each size is warmed up, then timed one GEMM at a time with CUDA events; the figure of
  a size is the median of its repeats (``2 n^3`` FLOPs each), the ceiling the best size's median;
- device memory bandwidth: a device-to-device ``Tensor.copy_`` of a large buffer, counting the
  bytes read plus the bytes written (2 x buffer size), median of the repeats.

Clocks are left as they are (no locking), so the figures are what a run at default clocks can
reach. Imports torch only (no polars): the launcher runs it on the bare GPU image as
``python -m dsocr_nsys.hw.calibrate``, which prints the JSON record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DsocrError, NoGpuError

#: Square GEMM sizes measured (the ceiling is the best median among them).
GEMM_SIZES = (4096, 8192, 16384)
#: Bytes of the copied buffer (the copy reads and writes this many bytes each).
COPY_BUFFER_BYTES = 1 << 31


@dataclass(frozen=True)
class GemmPoint:
    """One GEMM size: ``n``, FLOPs per GEMM (``2 n^3``) and TFLOP/s statistics over repeats."""

    n: int
    flops: int
    tflops_median: float
    tflops_min: float
    tflops_max: float


@dataclass(frozen=True)
class Calibration:
    """The measured ceilings of one GPU (TFLOP/s = 10^12 FLOP/s, GB/s = 10^9 byte/s)."""

    gpu_name: str
    torch_version: str
    cuda_version: str | None
    dtype: str
    repeats: int
    warmup: int
    gemm: tuple[GemmPoint, ...]
    #: Best per-size median: the achievable dense BF16 GEMM rate.
    gemm_tflops: float
    #: Bytes read plus bytes written by one copy.
    copy_bytes: int
    copy_gbps: float
    copy_gbps_min: float
    copy_gbps_max: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`as_record` (``run.json``'s ``calibration``)."""
        fields = dict(record)
        fields["gemm"] = tuple(GemmPoint(**p) for p in fields["gemm"])
        return cls(**fields)

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict (what ``run.json``'s ``calibration`` holds)."""
        record = asdict(self)
        record["gemm"] = [asdict(p) for p in self.gemm]
        return record


def _median_ms(torch: Any, fn: Any, repeats: int, warmup: int) -> tuple[float, float, float]:
    """(median, min, max) milliseconds of ``fn()``, each call timed alone with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), min(times), max(times)


def calibrate(
    sizes: tuple[int, ...] = GEMM_SIZES,
    repeats: int = 10,
    warmup: int = 3,
    copy_buffer_bytes: int = COPY_BUFFER_BYTES,
    device: int = 0,
) -> Calibration:
    """Measure the GEMM and copy ceilings of CUDA device ``device`` (a few seconds).

    Raises :class:`NoGpuError` when torch sees no CUDA device."""
    if repeats < 10:
        raise DsocrError(f"repeats={repeats}: calibrate takes the median of at least 10 repeats")
    try:
        import torch
    except ImportError as exc:
        raise NoGpuError(
            "calibrate needs torch with CUDA; install torch on the GPU machine"
        ) from exc
    if not torch.cuda.is_available():
        raise NoGpuError(
            "no CUDA GPU visible (torch.cuda.is_available() is False); run calibrate on the "
            "GPU machine"
        )
    dev = torch.device("cuda", device)
    torch.cuda.set_device(dev)
    points = []
    for n in sizes:
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        out = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
        med, lo, hi = _median_ms(
            torch, lambda a=a, b=b, out=out: torch.matmul(a, b, out=out), repeats, warmup
        )
        flops = 2 * n**3
        # Fastest time gives the highest rate: min ms -> max TFLOP/s.
        points.append(GemmPoint(n, flops, flops / med / 1e9, flops / hi / 1e9, flops / lo / 1e9))
        del a, b, out
    elements = copy_buffer_bytes // 2
    src = torch.empty(elements, device=dev, dtype=torch.bfloat16).normal_()
    dst = torch.empty_like(src)
    med, lo, hi = _median_ms(torch, lambda src=src, dst=dst: dst.copy_(src), repeats, warmup)
    moved = 2 * src.numel() * src.element_size()
    del src, dst
    torch.cuda.empty_cache()
    return Calibration(
        gpu_name=torch.cuda.get_device_name(dev),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        dtype="bfloat16",
        repeats=repeats,
        warmup=warmup,
        gemm=tuple(points),
        gemm_tflops=max(p.tflops_median for p in points),
        copy_bytes=moved,
        copy_gbps=moved / med / 1e6,
        copy_gbps_min=moved / hi / 1e6,
        copy_gbps_max=moved / lo / 1e6,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m dsocr_nsys.hw.calibrate``: the record as JSON on stdout; errors one line."""
    parser = argparse.ArgumentParser(prog="python -m dsocr_nsys.hw.calibrate")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        result = calibrate(repeats=args.repeats)
    except DsocrError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result.as_record(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
