"""dsocr-nsys: where DeepSeek-OCR inference spends its GPU time, and how well it uses the GPU.

Pipeline: ``launch`` (profile under Nsight Systems) → ``trace`` (per-stage GPU time from the
SQLite export, in DuckDB SQL) → ``static`` (FLOPs and bytes per stage) → ``mfu`` (the join).
"""

__version__ = "0.1.0"

from .instrument import Instrumentation, instrument

__all__ = ["Instrumentation", "__version__", "instrument"]
