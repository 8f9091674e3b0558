-- Question: which CUDA graphs ran on the GPU as whole-graph records?
-- Inputs: t.CUPTI_ACTIVITY_KIND_GRAPH_TRACE (written by `nsys profile
--   --cuda-graph-trace=graph`, whose graph kernels are absent from the kernel table).
-- Definition: every graph execution, op_id = rowid + 2^42 (columns as trace_ops_kernel.sql);
--   start/end span the execution on the GPU (first node start to last node end); correlationId
--   is the cudaGraphLaunch call's, so the record is attributed to ranges like any launch.
SELECT rowid + 4398046511104 AS op_id, start AS start_ns, "end" AS end_ns,
       deviceId AS device_id, correlationId AS correlation_id, globalPid AS global_pid
FROM t.CUPTI_ACTIVITY_KIND_GRAPH_TRACE
