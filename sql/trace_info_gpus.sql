-- Question: which GPUs did the profiled machine have?
-- Inputs: t.TARGET_INFO_GPU.
-- Definition: one row per GPU: id (the CUDA device id the GPU ops' deviceId refers to), name,
--   SM count, SM clock in Hz (clockRate), memory bandwidth in bytes/s (memoryBandwidth),
--   memory size in bytes (totalMemory).
SELECT DISTINCT id, name, smCount AS sm_count, clockRate AS clock_hz,
       memoryBandwidth AS memory_bandwidth_bps, totalMemory AS memory_bytes
FROM t.TARGET_INFO_GPU
ORDER BY id;
