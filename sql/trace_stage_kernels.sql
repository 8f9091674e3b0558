-- Question: which kernels took the GPU time inside one stage (NVTX range name)?
-- Inputs: temp tables range_all, range_ops, ops, t.StringIds; $stage (VARCHAR),
--   $include_warmup (BOOLEAN), $top (INTEGER).
-- Definition: the kernels attributed (see trace_range_ops.sql) to any counted instance of
--   the stage, each kernel counted once even when instances of the stage nest; then as
--   trace_kernels.sql. (nsys nvtx_kern_sum instead sums per range instance, so a kernel inside
--   two nested ranges of one name counts twice there.)
WITH scope AS (
    SELECT DISTINCT ro.op_id
    FROM range_ops AS ro
    JOIN range_all AS r USING (range_id)
    WHERE r.name = $stage AND ($include_warmup OR NOT r.in_warmup)
),
k AS (
    SELECT o.name_id, o.short_name_id, o.end_ns - o.start_ns AS dur_ns
    FROM ops AS o
    SEMI JOIN scope AS s ON s.op_id = o.op_id
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
SELECT coalesce(n.value, '') AS name,
       coalesce(s.value, '') AS short_name,
       g.instances, g.total_ns, g.mean_ns, g.median_ns, g.min_ns, g.max_ns, g.stddev_ns,
       100.0 * g.total_ns / sum(g.total_ns) OVER () AS share_pct
FROM g
LEFT JOIN t.StringIds AS n ON n.id = g.name_id
LEFT JOIN t.StringIds AS s ON s.id = g.short_name_id
ORDER BY g.total_ns DESC, name
LIMIT $top;
