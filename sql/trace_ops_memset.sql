-- Question: which memsets ran on the GPU?
-- Inputs: t.CUPTI_ACTIVITY_KIND_MEMSET.
-- Definition: every memset row, kind 'memset', op_id = rowid + 2^41.
SELECT rowid + 2199023255552, 'memset', start, "end", deviceId, correlationId, globalPid
FROM t.CUPTI_ACTIVITY_KIND_MEMSET
