-- Question: which CUDA runtime calls did the trace record, on which threads?
-- Inputs: t.CUPTI_ACTIVITY_KIND_RUNTIME.
-- Definition: every runtime call's correlationId, globalTid, start and end, in the export's
--   names. The engine keeps those that launched a GPU operation (equal correlationId within one
--   process, as nsys joins them) and merges the two rows nsys 2022 writes per launch
--   (trace/attribution.py, join_launches).
SELECT correlationId, globalTid, start, "end"
FROM t.CUPTI_ACTIVITY_KIND_RUNTIME
WHERE correlationId IS NOT NULL AND globalTid IS NOT NULL
