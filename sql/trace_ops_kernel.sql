-- Question: which CUDA kernels ran?
-- Inputs: t.CUPTI_ACTIVITY_KIND_KERNEL.
-- Definition: every kernel row, kind 'kernel', with its demangled and short name ids.
INSERT INTO ops
SELECT rowid, 'kernel', start, "end", deviceId, streamId, correlationId, globalPid,
       demangledName, shortName
FROM t.CUPTI_ACTIVITY_KIND_KERNEL;
