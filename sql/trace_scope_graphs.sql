-- Question: how many CUDA-graph executions in a scope were traced only as whole graphs?
-- Inputs: temp tables ops, kernel_scope (trace_kernel_scope_all.sql, or a stage's operations:
--   trace_stage_ranges.sql).
-- Definition: the scope's 'graph' operations (CUPTI_ACTIVITY_KIND_GRAPH_TRACE rows, one per
--   cudaGraphLaunch under --cuda-graph-trace=graph): their count and summed duration (ns).
SELECT count(*) AS launches, CAST(sum(o.end_ns - o.start_ns) AS BIGINT) AS graph_ns
FROM ops AS o
SEMI JOIN kernel_scope AS s ON s.op_id = o.op_id
WHERE o.kind = 'graph';
