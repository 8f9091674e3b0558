"""The inference options shared by ``infer`` and ``profile``, and their round trip to argv.

:class:`LaunchOptions` is :class:`dsocr_nsys.settings.InferenceSettings` with the launcher's
methods; neither imports torch nor polars: the outer ``profile`` process only turns it back into
the argv of the inner ``infer`` process (:meth:`LaunchOptions.to_argv`), and the GPU image that
runs it has no polars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import InputFileError, ModelError
from ..settings import DECODE_MODES, MOE_IMPLS, InferenceSettings, variant_problem

PRESETS = ("full", "tiny")
MODES = ("tiny", "small", "base", "large", "gundam")
DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class LaunchOptions(InferenceSettings):
    """What to run (the model's :class:`InferenceSettings`), plus what the launcher does with
    it: early validation and the ``infer`` argv that reproduces it."""

    def validate(self) -> None:
        """Fail early, before a model is built or nsys started, on inputs we can check here."""
        problem = variant_problem(self)
        if problem:
            raise ModelError(problem)
        if self.image is not None and not Path(self.image).is_file():
            raise InputFileError(
                f"image not found: {self.image}; pass an existing PNG/JPEG file with --image, "
                "or leave --image out to use the generated document page"
            )
        if self.weights is not None and not Path(self.weights).is_dir():
            raise InputFileError(
                f"weights folder not found: {self.weights}; pass the folder holding the "
                "DeepSeek-OCR *.safetensors files, or leave --weights out for random weights"
            )

    def to_argv(self) -> list[str]:
        """The ``infer`` options that reproduce these settings (every field spelled out, so
        the inner process never depends on its own defaults)."""
        argv = [
            f"--preset={self.preset}",
            f"--mode={self.mode}",
            f"--max-new-tokens={self.max_new_tokens}",
            f"--warmup={self.warmup}",
            f"--repeats={self.repeats}",
            f"--device={self.device}",
            f"--dtype={self.dtype}",
            f"--seed={self.seed}",
        ]
        if self.crops is not None:
            argv.append(f"--crops={self.crops}")
        if self.image is not None:
            argv.append(f"--image={Path(self.image).resolve()}")
        if self.weights is not None:
            argv.append(f"--weights={Path(self.weights).resolve()}")
        if not self.nvtx:
            argv.append("--no-nvtx")
        argv.append(f"--decode={self.decode}")
        if self.moe is not None:
            argv.append(f"--moe={self.moe}")
        if self.compile:
            argv.append("--compile")
        argv.append(f"--batch={self.batch}")
        return argv

    def to_settings(self) -> InferenceSettings:
        """The plain :class:`InferenceSettings` that ``run_inference`` takes."""
        return InferenceSettings(**asdict(self))


F = TypeVar("F", bound=Callable[..., Any])


#: The run's variant (decode step, MoE kernels, compile, batch): options of the launcher's
#: commands and of `static`, which describes such a run.
VARIANT_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--decode",
        type=click.Choice(DECODE_MODES),
        default="eager",
        show_default=True,
        help="eager: one kernel launch per op; cuda-graph: the decode step captured once "
        "(static cache) and replayed per token (CUDA only).",
    ),
    click.option(
        "--moe",
        type=click.Choice(MOE_IMPLS),
        default=None,
        help="Routed experts: loop (host reads the routing per layer, as the reference "
        "code) or device (grouped GEMM, no host sync). Default: device with cuda-graph or "
        "--compile, else loop.",
    ),
    click.option(
        "--compile",
        is_flag=True,
        default=False,
        help="torch.compile the decode step (compiled before the first request).",
    ),
    click.option(
        "--batch",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Pages per request (the page repeated): vision, prefill and decode batched.",
    ),
]


def variant_options(func: F) -> F:
    """Click options for the variant fields only (``decode``, ``moe``, ``compile``, ``batch``)."""
    for spec in reversed(VARIANT_OPTIONS):
        func = spec(func)
    return func


def inference_options(func: F) -> F:
    """Click options for every :class:`LaunchOptions` field; the command receives them as
    keyword arguments named like the fields (``no_nvtx`` for ``--no-nvtx``)."""
    specs: list[Callable[[F], F]] = [
        click.option(
            "--preset",
            type=click.Choice(PRESETS),
            default="full",
            show_default=True,
            help="full: the real DeepSeek-OCR graph; tiny: same topology, small widths (CPU).",
        ),
        click.option(
            "--mode",
            type=click.Choice(MODES),
            default="base",
            show_default=True,
            help="Resolution: tiny 512, small 640, base 1024, large 1280, gundam 1024 + 640 crops.",
        ),
        click.option(
            "--crops",
            type=click.IntRange(min=0),
            default=None,
            help="gundam: number of 640 crops (default: the aspect-ratio tiling rule, 2..9).",
        ),
        click.option(
            "--image",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Input page (PNG/JPEG). Default: a generated A4 document-like page.",
        ),
        click.option(
            "--weights",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="Folder with the real DeepSeek-OCR safetensors. Default: random weights.",
        ),
        click.option(
            "--max-new-tokens",
            type=click.IntRange(min=1),
            default=32,
            show_default=True,
            help="Decode steps (exactly this many; greedy, no early stop).",
        ),
        click.option(
            "--warmup",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="Untimed requests before the timed ones (NVTX range 'warmup').",
        ),
        click.option(
            "--repeats",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Timed requests (NVTX range 'request').",
        ),
        click.option("--device", default="cuda", show_default=True, help="torch device."),
        click.option("--dtype", type=click.Choice(DTYPES), default="bfloat16", show_default=True),
        click.option(
            "--no-nvtx",
            is_flag=True,
            default=False,
            help="Run without the NVTX ranges (for the overhead benchmark).",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Random-weight seed."),
        *VARIANT_OPTIONS,
    ]
    for spec in reversed(specs):
        func = spec(func)
    return func


def options_from_kwargs(kwargs: dict[str, Any]) -> LaunchOptions:
    """Pop the :func:`inference_options` keyword arguments into a :class:`LaunchOptions`."""
    return LaunchOptions(
        preset=kwargs.pop("preset"),
        mode=kwargs.pop("mode"),
        crops=kwargs.pop("crops"),
        image=kwargs.pop("image"),
        weights=kwargs.pop("weights"),
        max_new_tokens=kwargs.pop("max_new_tokens"),
        warmup=kwargs.pop("warmup"),
        repeats=kwargs.pop("repeats"),
        device=kwargs.pop("device"),
        dtype=kwargs.pop("dtype"),
        nvtx=not kwargs.pop("no_nvtx"),
        seed=kwargs.pop("seed"),
        decode=kwargs.pop("decode"),
        moe=kwargs.pop("moe"),
        compile=kwargs.pop("compile"),
        batch=kwargs.pop("batch"),
    )
