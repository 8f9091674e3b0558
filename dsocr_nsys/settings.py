"""What one inference run does: shared by the model (``run_inference``) and the launcher,
kept free of torch so the launcher's outer process (``dsocr-nsys profile``) stays light."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InferenceSettings:
    """What to run. ``crops`` forces the gundam crop count (2..9); ``max_new_tokens`` tokens are
    generated (prefill gives the first, then ``max_new_tokens - 1`` decode steps)."""

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
