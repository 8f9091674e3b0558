"""The engine's SQL steps as declared in dsocr_nsys.trace.steps: complete and in order."""

from __future__ import annotations

import re
from pathlib import Path

from dsocr_nsys.sqlfiles import load_sql
from dsocr_nsys.trace.steps import NVTX_PARAMS, OP_SOURCES, SCHEMA2_SQL, STEP_FOR, STEPS
from dsocr_nsys.vocab import NvtxEventType

SQL = Path(__file__).resolve().parent.parent / "sql"


def test_each_step_needs_only_tables_made_before_it() -> None:
    made: set[str] = set()
    for step in STEPS:
        assert set(step.needs) <= made, step.sql
        made |= set(step.creates)
    assert len(STEP_FOR) == sum(len(s.creates) for s in STEPS)  # one creator per table


def test_each_step_creates_and_reads_what_it_declares() -> None:
    variants = [(step, SCHEMA2_SQL[step.sql]) for step in STEPS if step.sql in SCHEMA2_SQL]
    assert variants  # the schema-2 variants are checked like the steps they replace
    for step, sql in [(step, step.sql) for step in STEPS] + variants:
        text = load_sql(sql)
        created = set(re.findall(r"CREATE OR REPLACE TEMP (?:TABLE|VIEW) (\w+)", text))
        assert created == set(step.creates), step.sql
        for table in step.reads:
            assert f"t.{table}" in text or table in OP_SOURCES, (step.sql, table)
        for need in step.needs:
            # trace_nvtx_ranges reads ops and launches through $last_ns (their last timestamp).
            assert re.search(rf"\b{need}\b", text) or step.sql == "trace_nvtx_ranges", need
        bound = set(re.findall(r"\$(\w+)", _body(text)))
        assert bound == set(step.params), step.sql


def _body(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("--"))


def test_nvtx_event_types_come_from_the_vocabulary() -> None:
    assert NVTX_PARAMS["push_pop"] == NvtxEventType.PUSH_POP_RANGE == 59
    assert NVTX_PARAMS["domain_create"] == NvtxEventType.DOMAIN_CREATE == 75
    for path in SQL.glob("trace_*.sql"):
        body = _body(path.read_text())
        assert not re.search(r"eventType\s*(=|IN)\s*\(?\s*\d", body), path.name


def test_every_op_source_file_exists() -> None:
    for sql in OP_SOURCES.values():
        assert (SQL / f"{sql}.sql").is_file()
