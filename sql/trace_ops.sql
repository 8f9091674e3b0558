-- Question: which GPU operations does the trace hold, in one uniform table?
-- Inputs: ops_columns, the engine's numpy columns of the union of trace_ops_kernel/_memcpy/
--   _memset/_graph.sql (one statement, so DuckDB scans the tables side by side).
-- Definition: one row per GPU operation: op_id (the source rowid plus the kind's offset), kind
--   ('kernel', 'memcpy', 'memset' or 'graph' = one whole-graph record, read from the offset:
--   op_id >> 40 = 0, 1, 2 or 4), start_ns, end_ns, device_id, correlation_id, global_pid.
CREATE OR REPLACE TEMP VIEW ops AS
SELECT op_id,
       CASE op_id >> 40 WHEN 0 THEN 'kernel' WHEN 1 THEN 'memcpy' WHEN 2 THEN 'memset'
                        ELSE 'graph' END AS kind,
       start_ns, end_ns, device_id, correlation_id, global_pid
FROM ops_columns;
