-- Question: which CUDA graphs ran on the GPU as whole-graph records?
-- Inputs: t.CUPTI_ACTIVITY_KIND_GRAPH_TRACE (written by `nsys profile
--   --cuda-graph-trace=graph`, whose graph kernels are absent from the kernel table).
-- Definition: every graph execution, kind 'graph', op_id = rowid + 2^42; start/end span the
--   execution on the GPU (first node start to last node end); correlationId is the
--   cudaGraphLaunch call's, so the record is attributed to ranges like any launch.
SELECT rowid + 4398046511104, 'graph', start, "end", deviceId, correlationId, globalPid
FROM t.CUPTI_ACTIVITY_KIND_GRAPH_TRACE
