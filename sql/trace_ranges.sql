-- Question: the full per-range table (one row per NVTX range instance).
-- Inputs: temp tables nvtx_range, range_tree, range_metrics.
-- Definition: CPU range cpu_ns = end - start; proj_ns = gpu_end - gpu_start (NULL when the
--   range launched no GPU operation); idle_ns = proj_ns - busy_ns (GPU idle inside
--   the projected span); counts and kernel_ns are 0 for ranges without GPU operations.
CREATE OR REPLACE TEMP TABLE range_all AS
SELECT r.range_id, r.name, r.domain, r.style, r.pid, r.tid,
       t.level, t.parent_id,
       r.start_ns, r.end_ns, r.end_ns - r.start_ns AS cpu_ns,
       m.gpu_start_ns, m.gpu_end_ns,
       m.gpu_end_ns - m.gpu_start_ns AS proj_ns,
       coalesce(m.gpu_ops, 0) AS gpu_ops,
       coalesce(m.kernels, 0) AS kernels,
       coalesce(m.memcpys, 0) AS memcpys,
       coalesce(m.memsets, 0) AS memsets,
       coalesce(m.kernel_ns, 0) AS kernel_ns,
       m.gpu_busy_ns AS busy_ns,
       m.gpu_end_ns - m.gpu_start_ns - m.gpu_busy_ns AS idle_ns,
       coalesce(m.device_ids, []::BIGINT[]) AS device_ids,
       len(coalesce(m.device_ids, []::BIGINT[])) AS gpus,
       r.payload,
       r.unclosed,
       t.in_warmup
FROM nvtx_range AS r
JOIN range_tree AS t USING (range_id)
LEFT JOIN range_metrics AS m USING (range_id);
