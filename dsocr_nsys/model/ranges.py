"""NVTX ranges in the launcher's domain (:data:`dsocr_nsys.vocab.NVTX_DOMAIN`), each with an
integer payload; removable. The range names are the vocabulary's
(:data:`~dsocr_nsys.vocab.RANGE_NAMES`).

With ``enabled=False`` every range is one shared ``nullcontext`` and the ``nvtx`` package is never
called (nor imported), so disabled instrumentation costs a Python ``with`` and nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..vocab import CLIP, DECODE, NVTX_DOMAIN, PREFILL, PROJECTOR, REQUEST, SAM, WARMUP

# Timeline colours in the Nsight Systems GUI (any name without one is blue).
_COLORS = {
    REQUEST: "grey",
    WARMUP: "grey",
    PREFILL: "blue",
    SAM: "green",
    CLIP: "cyan",
    PROJECTOR: "yellow",
    DECODE: "purple",
}


class _Range:
    """Push on enter, pop on exit, via a cached domain handle (the cheap nvtx path)."""

    __slots__ = ("_attrs", "_domain")

    def __init__(self, domain: Any, attrs: Any) -> None:
        self._domain = domain
        self._attrs = attrs

    def __enter__(self) -> None:
        self._domain.push_range(self._attrs)

    def __exit__(self, *exc: object) -> None:
        self._domain.pop_range()


class Ranges:
    """Factory of NVTX ranges: ``with ranges("decode", context_len): ...``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._null = contextlib.nullcontext()
        self._domain: Any = None
        if enabled:
            import nvtx

            self._domain = nvtx.get_domain(NVTX_DOMAIN)

    def __call__(self, name: str, payload: int) -> contextlib.AbstractContextManager[None]:
        if not self.enabled:
            return self._null
        attrs = self._domain.get_event_attributes(
            message=name, color=_COLORS.get(name, "blue"), payload=int(payload)
        )
        return _Range(self._domain, attrs)

    def off(self) -> Ranges:
        """A disabled twin (used inside warmup iterations)."""
        return Ranges(False)
