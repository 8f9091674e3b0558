-- Question: which CUDA kernels ran?
-- Inputs: t.CUPTI_ACTIVITY_KIND_KERNEL.
-- Definition: one row per GPU operation (this branch: every kernel row), with the columns of
--   the engine's ops: op_id = the source rowid plus a per-kind offset (0 here; 2^40 for memcpy,
--   2^41 for memset, 2^42 for graph), so ids are unique across kinds and name their kind
--   (trace_ops.sql), and trace_kernels.sql reads a kernel's names back through it; start/end;
--   the device; correlation_id, which with global_pid (the launching process as nsys encodes
--   it: globalTid with the low 24 thread bits cleared) finds the launching call. Only the columns every report needs are read: reading a
--   column from SQLite costs time on each of millions of rows.
SELECT rowid AS op_id, start AS start_ns, "end" AS end_ns,
       deviceId AS device_id, correlationId AS correlation_id, globalPid AS global_pid
FROM t.CUPTI_ACTIVITY_KIND_KERNEL
