-- Question: which GPU operations belong to which NVTX range?
-- Inputs: temp tables nvtx_range, launches, ops.
-- Definition (nsys' "projection"): an operation belongs to EVERY range on the launching
--   thread (same globalTid) that contains the CUDA runtime call that launched it:
--   range.start <= call.start and call.end <= range.end. The call is joined to the operation
--   on correlationId within the same process.
-- Output: range_launches, one row per (range, launch) — its count per range is nsys'
--   NumGPUOps — and the view range_ops, one row per (range, operation) with the operation's
--   kind, times and device. A view, not a table: each reader makes one pass over the join, and
--   writing its millions of rows out first cost more than the join itself.
-- Method: an interval join done as a hash join. Time is cut into buckets of `width` ns; each
--   range is expanded to the buckets it touches, each call falls in the bucket of its start;
--   the equi-join on (thread, bucket) finds the candidates, the exact test keeps the right
--   ones. No sort, no cross product: cost ~ calls + bucket rows + (range, call) pairs, for few
--   long stage ranges and for many tiny op ranges alike.
CREATE OR REPLACE TEMP TABLE range_launches AS
WITH params AS (
    -- Bucket width minimising bucket rows (total range length / width) plus false candidates
    -- (ranges x calls per bucket): sqrt(range length x span / (ranges x calls)); at least 1 µs
    -- and never more than 50M bucket rows.
    SELECT greatest(
               1024,
               CAST(r.total_ns // 50000000 AS BIGINT),
               coalesce(CAST(sqrt(r.total_ns::DOUBLE * l.span_ns
                                  / nullif(r.ranges::DOUBLE * l.calls, 0)) AS BIGINT), 1048576)
           ) AS width
    FROM (SELECT coalesce(sum(end_ns - start_ns), 0) AS total_ns, count(*) AS ranges
          FROM nvtx_range) AS r,
         (SELECT coalesce(max(end_ns) - min(start_ns), 0) AS span_ns, count(*) AS calls
          FROM launches) AS l
),
range_buckets AS (
    SELECT r.range_id, r.global_tid, r.start_ns, r.end_ns,
           unnest(range(r.start_ns // p.width, r.end_ns // p.width + 1)) AS bucket
    FROM nvtx_range AS r, params AS p
),
call_buckets AS (
    SELECT l.global_tid, l.start_ns, l.end_ns, l.correlation_id, l.global_pid,
           l.start_ns // p.width AS bucket
    FROM launches AS l, params AS p
)
SELECT rb.range_id, cb.correlation_id, cb.global_pid
FROM range_buckets AS rb
JOIN call_buckets AS cb ON cb.global_tid = rb.global_tid AND cb.bucket = rb.bucket
WHERE rb.start_ns <= cb.start_ns AND cb.end_ns <= rb.end_ns;

CREATE OR REPLACE TEMP VIEW range_ops AS
SELECT h.range_id, o.op_id, o.kind, o.start_ns, o.end_ns, o.device_id
FROM range_launches AS h
JOIN ops AS o ON o.correlation_id = h.correlation_id AND o.global_pid = h.global_pid;
