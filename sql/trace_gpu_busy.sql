-- Question: how long was each GPU busy over the whole trace?
-- Inputs: temp table ops.
-- Definition: per device, the length of the union of all GPU operation intervals (kernels,
--   memcpy, memset and whole-graph records on every stream; overlap counted once). The
--   denominator of stages' gpu_pct.
-- Method: ops sorted by (start, end) per device; each adds its part past the furthest end seen
--   before it.
SELECT device_id,
       CAST(sum(greatest(0, end_ns - greatest(start_ns, coalesce(reach_ns, start_ns)))) AS BIGINT)
           AS busy_ns
FROM (
    SELECT device_id, start_ns, end_ns,
           max(end_ns) OVER (
               PARTITION BY device_id ORDER BY start_ns, end_ns
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_ns
    FROM ops
)
GROUP BY device_id
ORDER BY device_id;
