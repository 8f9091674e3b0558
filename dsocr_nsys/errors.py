"""Typed exceptions. Each message is one line: what is wrong, then what to do about it.

The library raises these; the CLI group (``dsocr_nsys.clikit.DsocrGroup``, used by both entry
points) maps every one of them to a line on stderr and its ``exit_code`` (2, or 3 for
:class:`ImpossibleFiguresError`; no traceback).
"""

from __future__ import annotations


class DsocrError(Exception):
    """Base class: an input or environment problem the user can fix."""

    exit_code = 2


class InputFileError(DsocrError):
    """A path that does not exist, is not the expected kind of file, or is damaged."""


class TraceContentError(DsocrError):
    """A readable trace that lacks what the analysis needs (NVTX, kernels, a table)."""


class StageNotFoundError(DsocrError):
    """A stage/range name that matches nothing in the trace."""


class StaticFileError(DsocrError):
    """A static-compute JSON file that is missing, invalid or of another schema version."""


class ConfigMismatchError(DsocrError):
    """The static configuration does not describe the traced run."""


class UnknownGpuError(DsocrError):
    """No peak figures for the GPU and no override given."""


class ToolNotFoundError(DsocrError):
    """An external tool (nsys) is not installed or not found."""


class ModelError(DsocrError):
    """Model construction, weights or inference problems (bad mode, missing tensors, OOM)."""


class OutputFileError(DsocrError):
    """An output path (``-o``) that cannot be written: its folder is read-only or a file."""


class NoGpuError(DsocrError):
    """A step that measures the GPU (calibrate) found no CUDA device."""


class ImpossibleFiguresError(DsocrError):
    """``mfu --strict`` and a figure above 100 % of peak (exit 3: the inputs were read, the
    result is not to be trusted)."""

    exit_code = 3
