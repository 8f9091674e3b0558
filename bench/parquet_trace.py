"""Write an Nsight Systems SQLite export as a Parquet folder shaped like ``nsys export --type
parquetdir`` (one ``TABLE.parquet`` per table, same names and columns, rows in rowid order).

Usage: ``python bench/parquet_trace.py IN.sqlite OUT_DIR``

For benchmarks only: it lets a scaled SQLite export (bench/scale_trace.py) be timed as Parquet
on a machine without nsys. nsys' own writer may choose other row-group sizes and compression;
the column types stay SQLite's (BIGINT where nsys writes UBIGINT), which the engine reads the
same way. The folder is written as OUT_DIR.tmp and renamed; the input is opened read-only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dsocr_nsys.trace import db  # the pinned sqlite extension, loaded offline


def to_parquet(src: Path, dst: Path) -> int:
    """Copy every table of ``src`` into ``dst/<TABLE>.parquet``; return the number of tables."""
    con = db.connect(src)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = sorted(db.table_names(con))
    for i, name in enumerate(names, 1):
        out = str(tmp / f"{name}.parquet").replace("'", "''")
        con.execute(f"COPY (SELECT * FROM t.\"{name}\" ORDER BY rowid) TO '{out}' (FORMAT parquet)")
        print(f"[{i}/{len(names)}] {name}", file=sys.stderr)
    con.close()
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return len(names)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="input Nsight Systems SQLite export (read-only)")
    ap.add_argument("dst", type=Path, help="output folder")
    a = ap.parse_args(argv)
    print(f"{to_parquet(a.src, a.dst)} tables written to {a.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
