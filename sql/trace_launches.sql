-- Question: which CUDA runtime calls launched the GPU operations, and on which thread?
-- Inputs: t.CUPTI_ACTIVITY_KIND_RUNTIME, temp table ops.
-- Definition: the runtime calls whose correlationId and process equal a GPU operation's
--   (as nsys joins them: op.globalPid = runtime.globalTid with its 24 thread bits cleared).
--   Calls that launched nothing are dropped here, in the scan, so that the millions of other
--   runtime calls are never materialised. One row per launch, as schema-3 exports (with a
--   META_DATA_EXPORT table) record it; the engine reads the older exports, which record a
--   launch twice, with trace_launches_merged.sql instead.
CREATE OR REPLACE TEMP TABLE launches AS
SELECT r.globalTid AS global_tid,
       r.start AS start_ns,
       r."end" AS end_ns,
       r.correlationId AS correlation_id,
       (r.globalTid >> 24) << 24 AS global_pid
FROM t.CUPTI_ACTIVITY_KIND_RUNTIME AS r
SEMI JOIN ops AS o
    ON r.correlationId = o.correlation_id AND (r.globalTid >> 24) << 24 = o.global_pid;
