"""The engine's steps as declared in dsocr_nsys.trace.steps: complete and in order."""

from __future__ import annotations

import re
from pathlib import Path

from dsocr_nsys.sqlfiles import load_sql
from dsocr_nsys.trace.attribution import KIND_SHIFT, OP_KINDS
from dsocr_nsys.trace.engine import Trace
from dsocr_nsys.trace.steps import NVTX_PARAMS, OP_SOURCES, STEP_FOR, STEPS
from dsocr_nsys.vocab import NvtxEventType

SQL = Path(__file__).resolve().parent.parent / "sql"


def test_each_step_needs_only_tables_made_before_it() -> None:
    made: set[str] = set()
    for step in STEPS:
        assert set(step.needs) <= made, step.sql
        made |= set(step.creates)
    assert len(STEP_FOR) == sum(len(s.creates) for s in STEPS)  # one creator per table


def test_each_sql_step_creates_and_reads_what_it_declares() -> None:
    for step in STEPS:
        if step.numpy:
            continue
        text = load_sql(step.name)
        created = set(re.findall(r"CREATE OR REPLACE TEMP (?:TABLE|VIEW) (\w+)", text))
        assert created == set(step.creates), step.name
        for table in step.reads:
            assert f"t.{table}" in text, (step.name, table)
        for need in step.needs:
            # trace_nvtx_ranges reads ops and launches through $last_ns (their last timestamp).
            assert re.search(rf"\b{need}\b", text) or step.name == "trace_nvtx_ranges", need
        bound = set(re.findall(r"\$(\w+)", _body(text)))
        assert bound == set(step.params), step.name


def test_each_numpy_step_has_its_method_and_sql() -> None:
    numpy_steps = [step for step in STEPS if step.numpy]
    assert {s.name for s in numpy_steps} == {
        "ops",
        "ops_view",
        "launches",
        "sweep",
        "range_metrics",
    }
    for step in numpy_steps:
        assert callable(getattr(Trace, f"_step_{step.name}")), step.name
        texts = [load_sql(sql) for sql in step.sql_files]
        for table in step.reads:
            assert any(f"t.{table}" in text for text in texts), (step.name, table)
        bound = {p for text in texts for p in re.findall(r"\$(\w+)", _body(text))}
        assert bound == set(step.params), step.name
    # each op source's op_id offset names its kind (trace_ops_*.sql, trace_ops.sql)
    for table, sql in OP_SOURCES.items():
        kind = sql.removeprefix("trace_ops_")
        offset = (
            0 if kind == "kernel" else int(re.search(r"rowid \+ (\d+)", _body(load_sql(sql)))[1])
        )
        assert offset >> KIND_SHIFT == OP_KINDS[kind], table
        assert f"WHEN {OP_KINDS[kind]} THEN '{kind}'" in load_sql("trace_ops") or kind == "graph"


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
