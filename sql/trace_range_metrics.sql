-- Question: how long did each NVTX range keep the GPU busy, in each time base?
-- Inputs: temp tables range_launches, range_ops, ops.
-- Definition, per range with at least one GPU operation:
--   gpu_start_ns / gpu_end_ns = first op start / last op end (nsys "Projected Start", and
--   "Projected Duration" = gpu_end - gpu_start = proj_ns);
--   gpu_ops = launches (runtime calls) in the range (nsys NumGPUOps, which counts distinct
--   correlation ids: a CUDA-graph launch counts once however many kernels it runs);
--   kernels / memcpys / memsets = operations of each kind;
--   kernel_ns = sum of kernel durations (overlaps counted twice: nsys nvtx_kern_sum Total Time);
--   gpu_busy_ns = length of the union of all op intervals, on all streams and devices
--   (overlap counted once); device_ids = the devices the ops ran on.
-- Method for the union: ops sorted by (start, end) within a range; each op adds the part of
--   it past the furthest end seen before it: max(0, end - max(start, max earlier end)).
CREATE OR REPLACE TEMP TABLE range_metrics AS
WITH ro AS MATERIALIZED (
    SELECT r.range_id, o.kind, o.start_ns, o.end_ns, o.device_id
    FROM range_ops AS r
    JOIN ops AS o USING (op_id)
),
busy AS (
    -- Only the three columns the window needs are sorted (the costly step).
    SELECT range_id,
           CAST(sum(greatest(0, end_ns - greatest(start_ns, coalesce(reach_ns, start_ns))))
                AS BIGINT) AS gpu_busy_ns
    FROM (
        SELECT range_id, start_ns, end_ns,
               max(end_ns) OVER (
                   PARTITION BY range_id ORDER BY start_ns, end_ns
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_ns
        FROM ro
    )
    GROUP BY range_id
),
agg AS (
    SELECT range_id,
           min(start_ns) AS gpu_start_ns,
           max(end_ns) AS gpu_end_ns,
           count(*) FILTER (WHERE kind = 'kernel') AS kernels,
           count(*) FILTER (WHERE kind = 'memcpy') AS memcpys,
           count(*) FILTER (WHERE kind = 'memset') AS memsets,
           CAST(coalesce(sum(end_ns - start_ns) FILTER (WHERE kind = 'kernel'), 0) AS BIGINT)
               AS kernel_ns,
           list(DISTINCT device_id ORDER BY device_id) AS device_ids
    FROM ro
    GROUP BY range_id
),
launch_counts AS (
    SELECT range_id, count(*) AS gpu_ops FROM range_launches GROUP BY range_id
)
SELECT a.range_id, a.gpu_start_ns, a.gpu_end_ns, c.gpu_ops, a.kernels, a.memcpys, a.memsets,
       a.kernel_ns, a.device_ids, b.gpu_busy_ns
FROM agg AS a
JOIN busy AS b USING (range_id)
JOIN launch_counts AS c USING (range_id);
