-- Question: where and when is each NVTX range open?
-- Inputs: temp table nvtx_range.
-- Definition: range_id, its thread (globalTid) and CPU start/end, the input of the projection
--   (trace/attribution.py, range_metrics).
SELECT range_id, global_tid, start_ns, end_ns
FROM nvtx_range
