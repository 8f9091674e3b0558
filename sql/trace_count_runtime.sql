-- Question: how many CUDA runtime API calls did the trace record?
-- Inputs: t.CUPTI_ACTIVITY_KIND_RUNTIME.
-- Definition: its row count (every traced runtime call, launching or not).
SELECT count(*) FROM t.CUPTI_ACTIVITY_KIND_RUNTIME;
