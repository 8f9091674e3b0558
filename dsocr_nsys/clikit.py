"""What both command-line entry points share: the click group that maps the library's typed
errors to one stderr line, and progress lines on stderr.

A leaf module (click and :mod:`dsocr_nsys.errors` only), so ``dsocr-nsys`` (:mod:`.cli`) and
the polars-free launcher (``python -m dsocr_nsys.launch``) both build on it and neither imports
the other.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import click

from .errors import DsocrError

#: ``-h`` as well as ``--help``, on every group and command.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


class OneLineUsageError(click.UsageError):
    """A click usage error shown as one line: ``Error: ... (see dsocr-nsys CMD --help)``."""

    def __init__(self, exc: click.UsageError) -> None:
        where = exc.ctx.command_path if exc.ctx else "dsocr-nsys"
        message = " ".join(exc.format_message().split())
        super().__init__(f"{message} (see {where} --help)", exc.ctx)

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class DsocrGroup(click.Group):
    """Maps every :class:`~dsocr_nsys.errors.DsocrError` to ``Error: <message>`` on stderr and
    its exit code (2), and Ctrl-C to ``Interrupted.`` and 130: no traceback. click's own usage
    errors (a bad option value, a missing argument, an unknown command) become one line too,
    exit code 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from None
        except DsocrError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays data only."""
    click.echo(message, err=True)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit


def keep_freed_memory() -> None:
    """Tune glibc's malloc for one command's process: blocks up to 32 MiB come from the heap,
    and freed memory stays there for the next, instead of each array being mapped fresh and
    returned (a new mapping costs a page fault per page touched). The trace engine makes and
    drops tens of such arrays per million operations; this cut a ``stages`` command's system
    time from 0.58 to 0.27 s, and its CPU time 24 %, on a 1.5 M-kernel export
    (docs/benchmarks.md). Larger blocks are mapped as before (peak RSS on a 2.3 GB export:
    4.17 GB either way). Elsewhere (not glibc) nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
