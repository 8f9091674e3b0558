-- Question: which kernels took the GPU time in a scope (the whole trace, or one stage)?
-- Inputs: temp tables ops and kernel_scope (trace_kernel_scope_all.sql, or a stage's
--   operations: trace_stage_ranges.sql), t.CUPTI_ACTIVITY_KIND_KERNEL (names, by rowid =
--   op_id), t.StringIds; $top (INTEGER).
-- Definition (= nsys stats cuda_gpu_kern_sum over the whole trace): the scope's kernels grouped
--   by demangled name; instances, total/mean/median/min/max/stddev (sample) of durations
--   (end - start); share_pct = the group's total over the scope's kernel time * 100. Median
--   averages the two middle values of an even count. The $top groups with the largest total.
WITH k AS (
    SELECT kt.demangledName AS name_id, kt.shortName AS short_name_id,
           o.end_ns - o.start_ns AS dur_ns
    FROM ops AS o
    SEMI JOIN kernel_scope AS s ON s.op_id = o.op_id
    JOIN t.CUPTI_ACTIVITY_KIND_KERNEL AS kt ON kt.rowid = o.op_id
    WHERE o.kind = 'kernel'
),
g AS (
    SELECT name_id,
           any_value(short_name_id) AS short_name_id,
           count(*) AS instances,
           CAST(sum(dur_ns) AS BIGINT) AS total_ns,
           avg(dur_ns) AS mean_ns,
           median(dur_ns) AS median_ns,
           min(dur_ns) AS min_ns,
           max(dur_ns) AS max_ns,
           coalesce(stddev_samp(dur_ns), 0.0) AS stddev_ns
    FROM k
    GROUP BY name_id
)
SELECT n.value AS name,  -- NULL: a damaged export (the engine raises)
       coalesce(s.value, '') AS short_name,
       g.instances, g.total_ns, g.mean_ns, g.median_ns, g.min_ns, g.max_ns, g.stddev_ns,
       100.0 * g.total_ns / sum(g.total_ns) OVER () AS share_pct
FROM g
LEFT JOIN t.StringIds AS n ON n.id = g.name_id
LEFT JOIN t.StringIds AS s ON s.id = g.short_name_id
ORDER BY g.total_ns DESC, name
LIMIT $top;
