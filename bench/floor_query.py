"""The floor of issue 11: the least any stage table can cost on a file.

One bare DuckDB query (FLOOR_SQL) reads every column ``dsocr-nsys stages`` needs (NVTX ranges
and their names, the runtime calls, kernels/memcpy/memset) once, with the one correlation join
(launch call -> operation, same process), and aggregates so that nothing is materialised.
bench/bench_trace.py times it two ways: ``floor``, from the connection to the result in a
process that has imported DuckDB already, and ``floor_cli``, this file run as a program
(``python bench/floor_query.py TRACE``), timed by the parent from spawn to exit like
``engine_cli``: Python's start, DuckDB's import, loading the sqlite extension and the query.
So it imports nothing else. TRACE: an ``nsys export --type sqlite`` file or a Parquet folder.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

TABLES = {
    "kernel": "CUPTI_ACTIVITY_KIND_KERNEL",
    "runtime": "CUPTI_ACTIVITY_KIND_RUNTIME",
    "memcpy": "CUPTI_ACTIVITY_KIND_MEMCPY",
    "memset": "CUPTI_ACTIVITY_KIND_MEMSET",
    "nvtx": "NVTX_EVENTS",
    "strings": "StringIds",
}

FLOOR_SQL = """
WITH ops AS (
    SELECT start, "end", deviceId, correlationId, globalPid FROM {kernel}
    UNION ALL SELECT start, "end", deviceId, correlationId, globalPid FROM {memcpy}
    UNION ALL SELECT start, "end", deviceId, correlationId, globalPid FROM {memset}
), calls AS (
    SELECT o.start, o."end", o.deviceId, r.globalTid, r.start AS call_start, r."end" AS call_end
    FROM {runtime} r JOIN ops o
      ON r.correlationId = o.correlationId AND (r.globalTid >> 24) << 24 = o.globalPid
), ranges AS (
    SELECT n.start, n."end", n.globalTid, coalesce(s.value, n.text) AS name
    FROM {nvtx} n LEFT JOIN {strings} s ON s.id = n.textId
    WHERE n.eventType IN (59, 60, 70, 71)
)
SELECT (SELECT count(*) + sum("end" - start) + sum(call_end - call_start) + sum(globalTid)
               + sum(deviceId) FROM calls),
       (SELECT count(DISTINCT name) + sum("end" - start) + sum(globalTid) FROM ranges)
"""


def duckdb_with_sqlite():
    """A DuckDB connection with the sqlite extension loaded from the pinned wheel (offline)."""
    import duckdb
    import duckdb_extension_sqlite_scanner as ext_pkg

    found = glob.glob(
        os.path.join(os.path.dirname(ext_pkg.__file__), "extensions", "*", "*.duckdb_extension")
    )
    # the engine's settings (dsocr_nsys/trace/db.py), the signature check of the extension
    # binary off with them: it hashes the 35 MB file on every LOAD (0.1-0.2 s on 2 cores), which
    # the floor would otherwise pay and the engine does not
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": True,
        }
    )
    con.execute(f"LOAD '{found[0]}'")
    return con


def run_floor(trace: Path) -> tuple:
    """Connect to ``trace`` and run FLOOR_SQL; returns its one row."""
    quoted = str(trace).replace("'", "''")  # ATTACH and read_parquet take no bound parameters
    if trace.is_dir():
        import duckdb

        con = duckdb.connect()
        rel = {k: f"read_parquet('{quoted}/{v}.parquet')" for k, v in TABLES.items()}
    else:
        con = duckdb_with_sqlite()
        con.execute(f"ATTACH '{quoted}' AS t (TYPE sqlite, READ_ONLY)")
        rel = {k: f"t.{v}" for k, v in TABLES.items()}
    return con.execute(FLOOR_SQL.format(**rel)).fetchone()


if __name__ == "__main__":
    print(run_floor(Path(sys.argv[1])))
