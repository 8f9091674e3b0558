-- Question: how long did each NVTX range keep the GPU busy, in each time base?
-- Inputs: temp tables range_launches, op_sweep (the operations, swept per device).
-- Definition, per range with at least one GPU operation:
--   gpu_start_ns / gpu_end_ns = first op start / last op end (nsys "Projected Start", and
--   "Projected Duration" = gpu_end - gpu_start = proj_ns);
--   gpu_launches = runtime calls in the range that launched GPU work (nsys NumGPUOps, which
--   counts distinct correlation ids: a CUDA-graph launch counts once however many kernels it
--   runs; nsys does not see whole-graph records, we count their launches too);
--   gpu_ops = GPU operations executed: kernels + memcpys + memsets + graph_launches;
--   kernels / memcpys / memsets = operations of each kind; graph_launches = whole-graph
--   records (CUPTI_ACTIVITY_KIND_GRAPH_TRACE: one per cudaGraphLaunch traced with
--   --cuda-graph-trace=graph), graph_ns = the sum of their durations;
--   kernel_ns = sum of kernel durations (overlaps counted twice: nsys nvtx_kern_sum Total Time;
--   the kernels inside whole-graph records are unknown, so graph_ns is not in it);
--   busy_ns = length of the union of all op intervals, whole-graph records included, on all
--   streams and devices (overlap counted once); device_ids = the devices the ops ran on.
-- Method for the union. A range whose operations all ran on one device, as the consecutive
--   operations i..j of that device's sweep (trace_op_sweep.sql), with nothing before i reaching
--   past i's start (opens), is busy for the sum of their busy_add_ns: no sort per range. Any
--   other range (several devices, or other work interleaved on its GPU) takes order
--   statistics: sort its N op starts and, separately, its N op ends; with s_(k), e_(k) the
--   k-th smallest, the union is [s_(1), e_(N)] minus the gaps s_(k+1) - e_(k) wherever positive
--   (k < N). Why: by time e_(k) at least k ops have ended, so at least k have started; if
--   exactly k have started (s_(k+1) > e_(k)) all of them have ended and nothing runs until
--   s_(k+1). Those ranges' starts and ends are sorted as two lists in one pass over their
--   operations (docs/benchmarks.md has the timings). An op with end < start (never in nsys
--   output) counts as zero-length, as in the sweep.
CREATE OR REPLACE TEMP TABLE range_metrics AS
WITH pairs AS (
    SELECT h.range_id, o.kind, o.start_ns, o.end_ns, o.device_id, o.sweep_k, o.busy_add_ns,
           o.opens
    FROM range_launches AS h
    JOIN op_sweep AS o ON o.correlation_id = h.correlation_id AND o.global_pid = h.global_pid
),
agg AS MATERIALIZED (
    SELECT *, len(device_ids) = 1 AND last_k - first_k + 1 = gpu_ops AND first_opens AS swept
    FROM (
        SELECT range_id,
               min(start_ns) AS gpu_start_ns,
               max(end_ns) AS gpu_end_ns,
               count(*) AS gpu_ops,
               count(*) FILTER (WHERE kind = 'kernel') AS kernels,
               count(*) FILTER (WHERE kind = 'memcpy') AS memcpys,
               count(*) FILTER (WHERE kind = 'memset') AS memsets,
               count(*) FILTER (WHERE kind = 'graph') AS graph_launches,
               CAST(coalesce(sum(end_ns - start_ns) FILTER (WHERE kind = 'kernel'), 0)
                    AS BIGINT) AS kernel_ns,
               CAST(coalesce(sum(end_ns - start_ns) FILTER (WHERE kind = 'graph'), 0)
                    AS BIGINT) AS graph_ns,
               list(DISTINCT device_id ORDER BY device_id) AS device_ids,
               min(sweep_k) AS first_k,
               max(sweep_k) AS last_k,
               arg_min(opens, sweep_k) AS first_opens,
               CAST(sum(busy_add_ns) AS BIGINT) AS swept_busy_ns
        FROM pairs
        GROUP BY range_id
    )
),
sorted AS (
    -- its own join, the ranges picked first: a second read of `pairs` would make DuckDB
    -- write all (range, operation) pairs out once for both readers
    SELECT h.range_id,
           list_sort(list(o.start_ns)) AS starts,
           list_sort(list(greatest(o.end_ns, o.start_ns))) AS ends
    FROM (SELECT * FROM range_launches
          WHERE range_id IN (SELECT range_id FROM agg WHERE NOT swept)) AS h
    JOIN op_sweep AS o ON o.correlation_id = h.correlation_id AND o.global_pid = h.global_pid
    GROUP BY h.range_id
),
launch_counts AS (
    SELECT range_id, count(*) AS gpu_launches FROM range_launches GROUP BY range_id
)
SELECT a.range_id, a.gpu_start_ns, a.gpu_end_ns, c.gpu_launches, a.gpu_ops, a.kernels,
       a.memcpys, a.memsets, a.graph_launches, a.kernel_ns, a.graph_ns, a.device_ids,
       CASE WHEN a.swept THEN a.swept_busy_ns ELSE CAST(
           s.ends[-1] - s.starts[1]
           - coalesce(list_sum(list_transform(
                 -- pairs (s_(k+1), e_(k)) for k = 1 .. N-1
                 list_zip(list_slice(s.starts, 2, len(s.starts)),
                          list_slice(s.ends, 1, len(s.ends) - 1)),
                 p -> greatest(0, p[1] - p[2]))), 0)
           AS BIGINT) END AS busy_ns
FROM agg AS a
JOIN launch_counts AS c USING (range_id)
LEFT JOIN sorted AS s USING (range_id);
