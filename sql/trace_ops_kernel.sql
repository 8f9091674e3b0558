-- Question: which CUDA kernels ran?
-- Inputs: t.CUPTI_ACTIVITY_KIND_KERNEL.
-- Definition: every kernel row, kind 'kernel', op_id = rowid (trace_kernels.sql reads the
--   kernel's names back through it).
SELECT rowid, 'kernel', start, "end", deviceId, correlationId, globalPid
FROM t.CUPTI_ACTIVITY_KIND_KERNEL
