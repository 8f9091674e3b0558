-- Question: which GPU operations does the trace hold, in one uniform table?
-- Inputs: none (creates the empty table); the engine fills it with one INSERT whose UNION ALL
--   branches are trace_ops_kernel/_memcpy/_memset/_graph.sql, for whichever of
--   CUPTI_ACTIVITY_KIND_KERNEL, _MEMCPY, _MEMSET, _GRAPH_TRACE the export has. One statement,
--   so DuckDB scans the tables side by side (a small table's SQLite scan runs on one thread).
-- Definition: one row per GPU operation. op_id is the source rowid plus a per-kind offset
--   (2^40 for memcpy, 2^41 for memset, 2^42 for graph) so ids are unique across kinds.
--   global_pid is the launching process as nsys encodes it (globalTid with the low 24 thread
--   bits cleared). Only the columns every report needs are read: reading a column from SQLite
--   costs time on each of millions of rows, so kernel names are read by trace_kernels.sql when
--   asked for.
CREATE OR REPLACE TEMP TABLE ops (
    op_id BIGINT,
    kind VARCHAR,           -- 'kernel', 'memcpy', 'memset' or 'graph' (one whole-graph record)
    start_ns BIGINT,
    end_ns BIGINT,
    device_id BIGINT,
    correlation_id BIGINT,
    global_pid BIGINT
);
