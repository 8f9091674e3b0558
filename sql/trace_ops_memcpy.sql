-- Question: which memory copies ran on the GPU?
-- Inputs: t.CUPTI_ACTIVITY_KIND_MEMCPY.
-- Definition: every memcpy row, kind 'memcpy', op_id = rowid + 2^40.
SELECT rowid + 1099511627776, 'memcpy', start, "end", deviceId, correlationId, globalPid
FROM t.CUPTI_ACTIVITY_KIND_MEMCPY
