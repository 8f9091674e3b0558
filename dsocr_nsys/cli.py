"""Thin click wiring. Commands call library functions (which return data) and render it with
:mod:`dsocr_nsys.output`; every :class:`~dsocr_nsys.errors.DsocrError` becomes one line on
stderr and exit code 2, here and nowhere else.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .errors import DsocrError


class _Group(click.Group):
    """Maps the library's typed errors to one stderr line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DsocrError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays data only."""
    click.echo(message, err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dsocr-nsys")
def cli() -> None:
    """Where DeepSeek-OCR inference spends its GPU time, from Nsight Systems traces."""


# Commands are grouped by pipeline step; each is a few lines of wiring around a library call.

# --- trace engine: stages, kernels, info ------------------------------------------------


# --- static compute: static ---------------------------------------------------------------


# --- mfu: mfu --------------------------------------------------------------------------------


# --- launch: profile (and the inference entry it wraps) -------------------------------------


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="dsocr-nsys", standalone_mode=True))


if __name__ == "__main__":
    main()
