"""``python -m dsocr_nsys.launch infer|profile|report``: the launcher without polars or DuckDB.

The inner process that nsys wraps runs ``infer`` from here, and the GPU image (torch, no
polars) runs ``profile`` from here. The commands are those of ``dsocr-nsys`` itself
(:mod:`.commands`, declared once); only the group differs.
"""

from __future__ import annotations

import sys

import click

from ..clikit import CONTEXT_SETTINGS, DsocrGroup
from .commands import COMMANDS


@click.group(cls=DsocrGroup, context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """DeepSeek-OCR launcher (polars-free entry point of dsocr-nsys)."""


for _command in COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main.main(prog_name="python -m dsocr_nsys.launch", standalone_mode=True))
