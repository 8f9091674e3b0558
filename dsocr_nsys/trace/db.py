"""The one place that reads an Nsight Systems export (SQLite file or Parquet folder).

Either way every table is ``t.<TABLE>`` on an in-process DuckDB connection, with the same
table and column names, so the SQL in ``sql/`` never knows which it reads:

- an ``nsys export --type parquetdir`` folder: one view per ``<TABLE>.parquet`` file over
  DuckDB's built-in ``read_parquet`` (no extension), with a ``rowid`` column (the file's row
  number + 1, which is the SQLite rowid: nsys writes both in the same order) and unsigned
  integer columns cast to BIGINT (SQLite's type, so joins and results match exactly);
- an SQLite file: attached read-only as ``t`` through DuckDB's ``sqlite`` extension.

The extension is not downloaded: the binary shipped in the PyPI package
``duckdb-extension-sqlite-scanner`` (pinned to the exact ``duckdb`` version) is loaded from
disk, with DuckDB's automatic extension install/load switched off. Every query in ``sql/``
reads ``t.<TABLE>`` only, so another reader can replace :func:`connect` without touching them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

from ..errors import InputFileError, TraceContentError
from ..sqlfiles import export_tables
from .source import REPORT_SUFFIXES

SQLITE_MAGIC = b"SQLite format 3\x00"
PARQUET_HINT = "give an `nsys export --type parquetdir` folder, an .sqlite export or a .nsys-rep"
_UNSIGNED = ("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
EXPORT_HINT = "export the report with `nsys export --type sqlite REPORT.nsys-rep`"


def extension_path() -> Path:
    """Path of the sqlite extension binary shipped for the installed ``duckdb`` version."""
    try:
        import duckdb_extension_sqlite_scanner as pkg
    except ImportError as exc:  # pragma: no cover - a broken install
        raise InputFileError(
            "DuckDB's sqlite extension package is missing; "
            "install it with `pip install duckdb-extension-sqlite-scanner=="
            + duckdb.__version__
            + "`"
        ) from exc
    ext = resources.files(pkg) / "extensions" / f"v{duckdb.__version__}"
    path = Path(str(ext)) / "sqlite_scanner.duckdb_extension"
    if not path.is_file():  # pragma: no cover - version skew between the pinned pair
        raise InputFileError(
            f"no sqlite extension for duckdb {duckdb.__version__} at {path}; "
            f"install duckdb-extension-sqlite-scanner=={duckdb.__version__}"
        )
    return path


def check_sqlite_file(path: Path) -> None:
    """Raise :class:`InputFileError` unless ``path`` is a complete SQLite database file.

    A file shorter than the page count its header declares is reported as truncated
    (SQLite itself only notices when a query reaches a missing page).
    """
    if not path.exists():
        raise InputFileError(f"{path}: no such file; give the .sqlite file ({EXPORT_HINT})")
    if not path.is_file():
        raise InputFileError(f"{path}: not a file; give the .sqlite file ({EXPORT_HINT})")
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise InputFileError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from exc
    size = os.path.getsize(path)
    if not header.startswith(SQLITE_MAGIC):
        hint = (
            EXPORT_HINT
            if path.suffix in REPORT_SUFFIXES
            else f"expected an nsys SQLite export; {EXPORT_HINT}"
        )
        raise InputFileError(f"{path}: not an SQLite file; {hint}")
    if len(header) < 100:
        raise InputFileError(f"{path}: truncated SQLite file ({size} bytes); export it again")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    # The in-header page count is valid only when "version-valid-for" equals the change counter.
    if header[92:96] == header[24:28] and page_count and page_size * page_count > size:
        raise InputFileError(
            f"{path}: truncated SQLite file ({size:,} of {page_size * page_count:,} bytes); "
            "copy or export it again"
        )


def connect(path: Path, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the export attached read-only as schema ``t``.

    Raises :class:`InputFileError` for files that are not (complete) SQLite databases and
    :class:`TraceContentError` for SQLite files that are not Nsight Systems exports.
    """
    path = Path(path)
    if path.is_dir():
        return connect_parquet(path, threads=threads)
    check_sqlite_file(path)
    con = _memory_connection(threads, sqlite_extension=True)
    try:
        con.execute(f"LOAD '{_quote(str(extension_path()))}'")
        # ATTACH takes no bound parameters: the path goes in as a quoted string literal.
        con.execute(f"ATTACH '{_quote(str(path.resolve()))}' AS t (TYPE sqlite, READ_ONLY)")
        names = table_names(con)
    except duckdb.Error as exc:
        raise _unreadable(con, path, "SQLite", exc) from exc
    if "StringIds" not in names and not names & {"META_DATA_EXPORT", "EXPORT_META_DATA"}:
        con.close()
        raise TraceContentError(
            f"{path}: an SQLite file but not an Nsight Systems export (no StringIds or "
            f"META_DATA_EXPORT table); {EXPORT_HINT}"
        )
    return con


def _memory_connection(
    threads: int | None, sqlite_extension: bool = False
) -> duckdb.DuckDBPyConnection:
    config: dict[str, object] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        # Temp tables are filled from parallel scans; no query relies on their row order
        # (results are read with it on: Trace._frame).
        "preserve_insertion_order": False,
    }
    if sqlite_extension:
        # The one extension loaded is the file of the pinned PyPI package, by path (nothing is
        # installed or autoloaded). Its signature check hashes the 35 MB binary, 0.09 s of
        # every SQLite command on 2 cores, and guards against nothing here: whoever could
        # replace that file could replace duckdb's own library beside it.
        config["allow_unsigned_extensions"] = True
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    # DuckDB draws a progress bar on stdout for queries over 2 s (large exports), where only
    # the report belongs; a session setting (it cannot be set in the config).
    con.execute("SET enable_progress_bar = false")
    return con


def connect_parquet(folder: Path, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the Parquet export in ``folder`` as views ``t.*``.

    Only the files' footers are read here (names and types), of the tables ``sql/`` reads
    (the others get no view); the views read the columns a query asks for. Raises
    :class:`InputFileError` for a folder without Parquet files or with a damaged one,
    :class:`TraceContentError` when it is not an nsys export.
    """
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise InputFileError(f"{folder}: a folder without .parquet files; {PARQUET_HINT}")
    if not {f.stem for f in files} & {"StringIds", "META_DATA_EXPORT"}:
        raise TraceContentError(
            f"{folder}: Parquet files but not an Nsight Systems export (no StringIds or "
            f"META_DATA_EXPORT table); {PARQUET_HINT}"
        )
    con = _memory_connection(threads)
    # views only for the tables the queries read (each costs a footer read and a bind)
    read = export_tables()
    views = [
        (f.stem, f"read_parquet('{_quote(str(f.resolve()))}'") for f in files if f.stem in read
    ]
    try:
        # Three statements for all files, not two per file: while a command's start-up imports
        # numpy and polars on another thread, each return from DuckDB waits for the GIL (up to
        # Python's 5 ms switch interval), which made 20 small calls cost 0.1-0.2 s.
        con.execute("ATTACH ':memory:' AS t")
        con.execute(
            "".join(f'CREATE VIEW t."{name}" AS SELECT * FROM {src});' for name, src in views)
        )
        unsigned = con.execute(
            "SELECT table_name, list(column_name) FROM duckdb_columns() WHERE database_name = 't' "
            f"AND data_type IN ({', '.join(repr(kind) for kind in _UNSIGNED)}) GROUP BY table_name"
        ).fetchall()
        casts = {
            table: ", ".join(f'CAST("{c}" AS BIGINT) AS "{c}"' for c in columns)
            for table, columns in unsigned
        }
        con.execute(
            "".join(
                f'CREATE OR REPLACE VIEW t."{name}" AS SELECT * EXCLUDE (file_row_number)'
                + (f" REPLACE ({casts[name]})" if name in casts else "")
                + f", file_row_number + 1 AS rowid FROM {src}, file_row_number = true);"
                for name, src in views
            )
        )
    except duckdb.Error as exc:
        raise _unreadable(con, folder, "a Parquet export", exc) from exc
    return con


def _unreadable(
    con: duckdb.DuckDBPyConnection, path: Path, what: str, exc: duckdb.Error
) -> InputFileError:
    """Close ``con`` and say in one line that ``path`` cannot be read as ``what``."""
    con.close()
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputFileError(f"{path}: cannot be read as {what} ({first}); export it again")


@contextmanager
def no_pandas_import() -> Iterator[None]:
    """Keep DuckDB from importing pandas while it binds query parameters.

    DuckDB's Python client compares every bound value with ``pandas.NaT`` and ``pandas.NA``
    and so imports pandas on the first parameterised query when pandas is installed: 0.5 to
    0.7 s, the largest single cost of a ``stages`` command on a GPU host. A value can only be
    a pandas object when pandas is already imported, so while it is not, its import is blocked
    for the duration of the call (DuckDB then skips the comparison, and retries on later
    calls); when it is, nothing changes. Not for use while another thread imports pandas.
    """
    if "pandas" in sys.modules:
        yield
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail fast
    try:
        yield
    finally:
        if sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables in the export (SQLite tables, or the Parquet folder's views)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 't' "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 't'"
    ).fetchall()
    return {r[0] for r in rows}


def _quote(text: str) -> str:
    """Escape a string for a single-quoted SQL literal."""
    if "\x00" in text:
        raise InputFileError("path contains a NUL byte")
    return text.replace("'", "''")
