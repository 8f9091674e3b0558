-- Question: how long was each GPU busy over the whole trace?
-- Inputs: temp table op_sweep.
-- Definition: per device, the length of the union of all GPU operation intervals (kernels,
--   memcpy, memset and whole-graph records on every stream; overlap counted once). The
--   denominator of stages' gpu_pct.
-- Method: the operations swept in (start, end) order per device (trace_op_sweep.sql); each
--   adds its part past the furthest end seen before it.
SELECT device_id, CAST(sum(busy_add_ns) AS BIGINT) AS busy_ns
FROM op_sweep
GROUP BY device_id
ORDER BY device_id;
