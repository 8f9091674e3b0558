"""The static-compute JSON format (``static_compute.json``): the contract between
``dsocr-nsys static`` (which writes it) and ``dsocr-nsys mfu`` (which reads it).

Versioned by ``schema_version``; the JSON Schema is ``static_compute.schema.json`` beside this
module. It is small enough to write by hand: only ``schema_version`` and, per stage, ``flops``
are required. Every count is per *instance* of the stage's NVTX range (one ``sam`` range, one
``decode`` step); FLOPs are 2 per multiply-add.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import StaticFileError
from ..jsonfile import read_json

SCHEMA_VERSION = 1
SCHEMA_NAME = "dsocr-nsys/static-compute"
_KNOWN = ("flops", "bytes", "params", "per_step")


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) for the current schema version."""
    text = resources.files(__package__).joinpath("static_compute.schema.json").read_text("utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class DecodeCoefficients:
    """One decode step as a linear function of its context length ``ctx`` (the number of
    key/value positions the step attends to, the new token's included):
    ``flops(ctx) = flops_base + flops_per_context * ctx`` and likewise for bytes."""

    flops_base: int
    flops_per_context: int
    bytes_base: int = 0
    bytes_per_context: int = 0

    def flops(self, context_tokens: int) -> int:
        """FLOPs of one decode step at this context length."""
        return self.flops_base + self.flops_per_context * context_tokens

    def bytes(self, context_tokens: int) -> int:
        """Bytes moved through device memory by one decode step at this context length."""
        return self.bytes_base + self.bytes_per_context * context_tokens


@dataclass(frozen=True)
class StageCompute:
    """What one instance of a stage computes and moves (FLOPs, bytes: counts, not rates)."""

    name: str
    flops: int
    bytes: int | None = None
    params: int | None = None
    per_step: DecodeCoefficients | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StaticCompute:
    """A loaded static-compute file: the configuration it was computed for and its stages."""

    config: dict[str, Any]
    stages: dict[str, StageCompute]
    raw: dict[str, Any]
    path: Path | None = None

    def stage(self, name: str) -> StageCompute | None:
        return self.stages.get(name)


def parse_static(data: dict[str, Any], path: Path | None = None) -> StaticCompute:
    """Validate a decoded static-compute document and return it as :class:`StaticCompute`."""
    where = f"{path}" if path else "static file"
    if not isinstance(data, dict):
        raise StaticFileError(f"{where}: not a JSON object; write it with `dsocr-nsys static`")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StaticFileError(
            f"{where}: schema_version {version!r}, this dsocr-nsys reads version "
            f"{SCHEMA_VERSION}; regenerate it with `dsocr-nsys static -o {path or 'FILE'}`"
        )
    try:
        jsonschema.validate(data, json_schema())
    except jsonschema.ValidationError as exc:
        loc = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise StaticFileError(
            f"{where}: invalid at {loc}: {exc.message}; see docs/static-compute.md"
        ) from None
    stages: dict[str, StageCompute] = {}
    for name, entry in data["stages"].items():
        coeff = entry.get("per_step")
        stages[name] = StageCompute(
            name=name,
            flops=int(entry["flops"]),
            bytes=entry.get("bytes"),
            params=entry.get("params"),
            per_step=DecodeCoefficients(**coeff) if coeff else None,
            extra={k: v for k, v in entry.items() if k not in _KNOWN},
        )
    return StaticCompute(config=dict(data.get("config", {})), stages=stages, raw=data, path=path)


def load_static(path: str | Path) -> StaticCompute:
    """Read and validate a static-compute JSON file (opened read-only)."""
    p = Path(path)
    data = read_json(
        p, StaticFileError, f"static file {p}", f"write one with `dsocr-nsys static -o {p}`"
    )
    return parse_static(data, p)
