"""What a TRACE argument names: an SQLite export, a Parquet export folder, or a report.

A ``.nsys-rep`` (or ``.qdrep``) report is not readable without Nsight Systems: it is exported
once, with the nsys found from ``--nsys``, ``$NSYS`` or ``PATH``, into a sibling cache
``<report>.parquetdir/`` (``nsys export --type parquetdir``; Parquet reads faster than SQLite,
docs/benchmarks.md), written under a temporary name and renamed into place so that a killed
export never leaves a half cache. Later runs read the cache while it is newer than the report.
An SQLite export beside the report (``<stem>.sqlite``, as ``dsocr-nsys profile`` leaves) that is
newer than the report is used as is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputFileError, ToolNotFoundError
from ..launch.nsys import NSYS, find_tool

REPORT_SUFFIXES = (".nsys-rep", ".qdrep")
CACHE_SUFFIX = ".parquetdir"
EXPORT_TIMEOUT_S = 3600


def export_argv(nsys: Path, report: Path, out_dir: Path) -> list[str]:
    """``nsys export`` of ``report`` to the Parquet folder ``out_dir``."""
    return [
        str(nsys),
        "export",
        "--type=parquetdir",
        "--force-overwrite=true",
        f"--output={out_dir}",
        str(report),
    ]


def cache_dir(report: Path) -> Path:
    """Where the Parquet export of ``report`` is cached: ``<report>.parquetdir`` beside it."""
    return report.with_name(report.name + CACHE_SUFFIX)


def _fresh(export: Path, report: Path) -> bool:
    return export.exists() and export.stat().st_mtime >= report.stat().st_mtime


def resolve(
    path: Path, nsys: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The export to read for ``path``: ``path`` itself unless it is a report; for a report,
    its fresh sibling SQLite export, else its Parquet cache (made now when missing or stale).

    Raises :class:`ToolNotFoundError` (one line: how to export by hand) when a report has to
    be exported and no nsys is found, :class:`InputFileError` when the export fails.
    """
    if path.suffix not in REPORT_SUFFIXES or not path.is_file():
        return path
    sibling = path.with_suffix(".sqlite")
    if _fresh(sibling, path):
        return sibling
    cache = cache_dir(path)
    if _fresh(cache, path):
        return cache
    env = os.environ if environ is None else environ
    try:
        tool = find_tool(NSYS, nsys, env)
    except ToolNotFoundError as exc:
        reason = str(exc).split(";")[0]
        raise ToolNotFoundError(
            f"{path}: a report, not an export, and {reason}; export it "
            f"with `nsys export --type sqlite {path}` and give the .sqlite, or pass --nsys PATH"
        ) from exc
    return _export(tool, path, cache)


def _export(nsys: Path, report: Path, cache: Path) -> Path:
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", suffix=".tmp", dir=cache.parent))
    except OSError as exc:
        raise InputFileError(
            f"{report}: cannot write the export cache beside it ({exc.strerror}); export it "
            f"with `nsys export --type sqlite {report}` into a writable folder"
        ) from exc
    out = tmp / "export"
    try:
        done = subprocess.run(
            export_argv(nsys, report, out),
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not out.is_dir():
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            why = lines[-1].strip() if lines else f"exit {done.returncode}"
            raise InputFileError(f"{report}: `nsys export --type parquetdir` failed ({why})")
        if cache.exists():  # stale: replaced by the new export
            shutil.rmtree(cache)
        out.rename(cache)
        os.utime(cache)  # the cache's time is the export's: fresh until the report changes
    except subprocess.TimeoutExpired as exc:
        raise InputFileError(f"{report}: nsys export ran over {EXPORT_TIMEOUT_S} s") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache
