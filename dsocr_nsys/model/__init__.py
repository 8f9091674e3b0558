"""DeepSeek-OCR's exact inference graph (random or loaded weights) with NVTX stage ranges.

Public entry points: :func:`run_inference` (the launcher's), :func:`plan_request` (pure token and
view arithmetic for static compute), :func:`build_model` and :func:`parameter_counts`.
"""

from .config import PRESETS, ModelConfig, get_config
from .deepseek_ocr import DeepseekOCR, build_model, parameter_counts
from .generate import InferenceResult, InferenceSettings, run_inference
from .inputs import MODES, RequestPlan, plan_request, select_crop_grid, tokens_per_side

__all__ = [
    "MODES",
    "PRESETS",
    "DeepseekOCR",
    "InferenceResult",
    "InferenceSettings",
    "ModelConfig",
    "RequestPlan",
    "build_model",
    "get_config",
    "parameter_counts",
    "plan_request",
    "run_inference",
    "select_crop_grid",
    "tokens_per_side",
]
