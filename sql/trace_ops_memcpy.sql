-- Question: which memory copies ran on the GPU?
-- Inputs: t.CUPTI_ACTIVITY_KIND_MEMCPY.
-- Definition: every memcpy row, op_id = rowid + 2^40 (columns as trace_ops_kernel.sql).
SELECT rowid + 1099511627776 AS op_id, start AS start_ns, "end" AS end_ns,
       deviceId AS device_id, correlationId AS correlation_id, globalPid AS global_pid
FROM t.CUPTI_ACTIVITY_KIND_MEMCPY
