"""``dsocr-nsys compare``: runs side by side, per stage and per kernel, with the noise.

:mod:`.inputs` loads a run folder, an mfu.json or an export; :mod:`.core` compares;
:mod:`.noise` is the bootstrap; :mod:`.kernels` matches kernels; :mod:`.report` shapes the
output; :mod:`.plot` draws (matplotlib, lazily).
"""

from .core import CompareResult, compare_runs
from .inputs import Run, load_run

__all__ = ["CompareResult", "Run", "compare_runs", "load_run"]
