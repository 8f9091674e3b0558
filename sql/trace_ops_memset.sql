-- Question: which memsets ran on the GPU?
-- Inputs: t.CUPTI_ACTIVITY_KIND_MEMSET.
-- Definition: every memset row, op_id = rowid + 2^41 (columns as trace_ops_kernel.sql).
SELECT rowid + 2199023255552 AS op_id, start AS start_ns, "end" AS end_ns,
       deviceId AS device_id, correlationId AS correlation_id, globalPid AS global_pid
FROM t.CUPTI_ACTIVITY_KIND_MEMSET
