-- Question: which CUDA runtime calls launched the GPU operations, and on which thread?
-- Inputs: t.CUPTI_ACTIVITY_KIND_RUNTIME, temp table ops.
-- Definition: the runtime calls whose correlationId and process equal a GPU operation's
--   (as nsys joins them: op.globalPid = runtime.globalTid with its 24 thread bits cleared).
--   Calls that launched nothing are dropped here, in the scan, so that the millions of other
--   runtime calls are never materialised. One row per launch: old exports (nsys 2022) record
--   a launch twice (the API call and, nested in it, its _v7000 entry); the innermost interval
--   (latest start, earliest end) is kept, which lies in a range whenever either row does.
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
