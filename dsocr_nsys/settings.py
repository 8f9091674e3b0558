"""What one inference run does: shared by the model (``run_inference``) and the launcher,
kept free of torch so the launcher's outer process (``dsocr-nsys profile``) stays light."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class InferenceSettings:
    """What to run. ``crops`` forces the gundam crop count (2..9); ``max_new_tokens`` tokens are
    generated (prefill gives the first, then ``max_new_tokens - 1`` decode steps).

    Variants (docs/launch.md, "Inference variants"): ``decode`` ``eager`` or ``cuda-graph``;
    ``moe`` ``loop`` or ``device`` (``None``: ``device`` when the decode step is captured or
    compiled, else ``loop``); ``compile``: torch.compile the decode step; ``batch``: pages
    per request."""

    preset: str = "full"
    mode: str = "base"
    image: Path | None = None
    weights: Path | None = None
    max_new_tokens: int = 32
    warmup: int = 1
    repeats: int = 1
    device: str = "cuda"
    dtype: str = "bfloat16"
    nvtx: bool = True
    seed: int = 0
    crops: int | None = None
    decode: str = "eager"
    moe: str | None = None
    compile: bool = False
    batch: int = 1

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict of the fields, in declaration order (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


DECODE_MODES = ("eager", "cuda-graph")
MOE_IMPLS = ("loop", "device")
#: The fields a run.json and a static file's config both carry, and ``mfu`` compares.
VARIANT_FIELDS = ("decode", "moe", "compile", "batch", "decode_attention")


def resolved_moe(settings: InferenceSettings) -> str:
    """The MoE implementation a run uses: the one asked for, else ``device`` when the decode
    step is captured or compiled (the loop's host reads break both), else ``loop`` (the
    published reference's behaviour, today's baseline)."""
    if settings.moe is not None:
        return settings.moe
    return "device" if settings.decode == "cuda-graph" or settings.compile else "loop"


def decode_attention(settings: InferenceSettings) -> str:
    """What a decode step attends: ``context`` (the real context, shapes grow per step) for the
    eager step, ``padded_cache`` (the whole cache of prefill + new tokens, masked) for the
    static-shape step that CUDA graphs and torch.compile run."""
    return "padded_cache" if settings.decode == "cuda-graph" or settings.compile else "context"


def variant_problem(settings: InferenceSettings) -> str | None:
    """One line saying why this combination of variants cannot run, or None."""
    if settings.decode == "cuda-graph" and not str(settings.device).startswith("cuda"):
        return (
            f"--decode cuda-graph needs a CUDA device, not {settings.device}; use --decode eager "
            "on a CPU (--compile works there)"
        )
    if settings.decode == "cuda-graph" and resolved_moe(settings) == "loop":
        return (
            "--decode cuda-graph cannot capture --moe loop (it reads the routing on the host "
            "every layer); use --moe device or leave --moe out"
        )
    return None


def variant(settings: InferenceSettings) -> dict[str, object]:
    """The variant fields recorded in run.json and in the static file's config."""
    return {
        "decode": settings.decode,
        "moe": resolved_moe(settings),
        "compile": settings.compile,
        "batch": settings.batch,
        "decode_attention": decode_attention(settings),
    }
