-- Question: per stage (NVTX range name), how much GPU time did its instances take?
-- Inputs: temp table range_all; $include_warmup (BOOLEAN), $names (VARCHAR[] or NULL = all),
--   $split_pid / $split_device (BOOLEAN: one row per process / per device set when the trace
--   has several), $trace_busy_ns (union of all GPU op intervals in the trace, summed over
--   devices).
-- Definition: instances = range instances counted (warm-up excluded unless $include_warmup:
--   a range named `warmup` and every range it encloses on its thread); gpu_instances = those
--   that launched at least one GPU operation; gpu_launches, gpu_ops, kernels, graph_launches
--   and graph_total_ns (time in whole-graph records, part of proj/busy, not of kernel) are
--   sums over instances (see trace_ranges.sql). For the GPU time bases (proj, busy,
--   kernel, idle) total/mean/median/min/max/p90 run over gpu_instances; for cpu over all instances. median
--   averages the two middle values of an even count (as nsys does); p90 interpolates linearly.
--   gpu_pct = busy_total / $trace_busy_ns * 100. first_start_ns / first_gpu_start_ns = the
--   earliest counted instance's CPU start / GPU start. Rows ordered by first_start_ns.
WITH sel AS (
    SELECT *,
           CASE WHEN $split_pid THEN pid END AS g_pid,
           CASE WHEN $split_device THEN device_ids END AS g_dev
    FROM range_all
    WHERE ($include_warmup OR NOT in_warmup)
      AND ($names IS NULL OR list_contains($names, name))
)
SELECT name,
       CASE WHEN count(DISTINCT pid) = 1 THEN min(pid) END AS pid,
       list_sort(list_distinct(flatten(list(device_ids)))) AS device_ids,
       count(*) AS instances,
       count(gpu_start_ns) AS gpu_instances,
       CAST(sum(gpu_launches) AS BIGINT) AS gpu_launches,
       CAST(sum(gpu_ops) AS BIGINT) AS gpu_ops,
       CAST(sum(kernels) AS BIGINT) AS kernels,
       CAST(sum(graph_launches) AS BIGINT) AS graph_launches,
       CAST(sum(graph_ns) AS BIGINT) AS graph_total_ns,
       CAST(sum(proj_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS BIGINT) AS proj_total_ns,
       avg(proj_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS proj_mean_ns,
       median(proj_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS proj_median_ns,
       min(proj_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS proj_min_ns,
       max(proj_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS proj_max_ns,
       quantile_cont(proj_ns, 0.9) FILTER (WHERE gpu_start_ns IS NOT NULL) AS proj_p90_ns,
       CAST(sum(busy_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS BIGINT) AS busy_total_ns,
       avg(busy_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS busy_mean_ns,
       median(busy_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS busy_median_ns,
       min(busy_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS busy_min_ns,
       max(busy_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS busy_max_ns,
       quantile_cont(busy_ns, 0.9) FILTER (WHERE gpu_start_ns IS NOT NULL) AS busy_p90_ns,
       CAST(sum(kernel_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS BIGINT) AS kernel_total_ns,
       avg(kernel_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS kernel_mean_ns,
       median(kernel_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS kernel_median_ns,
       min(kernel_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS kernel_min_ns,
       max(kernel_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS kernel_max_ns,
       quantile_cont(kernel_ns, 0.9) FILTER (WHERE gpu_start_ns IS NOT NULL) AS kernel_p90_ns,
       CAST(sum(cpu_ns) AS BIGINT) AS cpu_total_ns,
       avg(cpu_ns) AS cpu_mean_ns,
       median(cpu_ns) AS cpu_median_ns,
       min(cpu_ns) AS cpu_min_ns,
       max(cpu_ns) AS cpu_max_ns,
       quantile_cont(cpu_ns, 0.9) AS cpu_p90_ns,
       CAST(sum(idle_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS BIGINT) AS idle_total_ns,
       avg(idle_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS idle_mean_ns,
       median(idle_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS idle_median_ns,
       min(idle_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS idle_min_ns,
       max(idle_ns) FILTER (WHERE gpu_start_ns IS NOT NULL) AS idle_max_ns,
       quantile_cont(idle_ns, 0.9) FILTER (WHERE gpu_start_ns IS NOT NULL) AS idle_p90_ns,
       100.0 * sum(busy_ns) / nullif(CAST($trace_busy_ns AS BIGINT), 0) AS gpu_pct,
       min(start_ns) AS first_start_ns,
       min(gpu_start_ns) AS first_gpu_start_ns
FROM sel
GROUP BY name, g_pid, g_dev
ORDER BY first_start_ns, name;
