-- Question: which CUDA runtime calls launched the GPU operations, and on which thread, in an
--   export that records each launch twice?
-- Inputs: t.CUPTI_ACTIVITY_KIND_RUNTIME, temp table ops.
-- Definition: as trace_launches.sql (the calls whose correlationId and process equal a GPU
--   operation's), for exports without a META_DATA_EXPORT table (schema 2, nsys 2022), which
--   record a launch twice: the API call and, nested in it, its _v7000 entry. One row per
--   launch: the innermost interval (latest start, earliest end) is kept, which lies in a range
--   whenever either row does. The GROUP BY that merges them costs 0.4-0.5 s of CPU on 1.5 M
--   launches (docs/benchmarks.md), so newer exports skip it.
CREATE OR REPLACE TEMP TABLE launches AS
SELECT r.globalTid AS global_tid,
       max(r.start) AS start_ns,
       min(r."end") AS end_ns,
       r.correlationId AS correlation_id,
       (r.globalTid >> 24) << 24 AS global_pid
FROM t.CUPTI_ACTIVITY_KIND_RUNTIME AS r
SEMI JOIN ops AS o
    ON r.correlationId = o.correlation_id AND (r.globalTid >> 24) << 24 = o.global_pid
GROUP BY r.globalTid, r.correlationId;
