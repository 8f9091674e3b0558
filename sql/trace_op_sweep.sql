-- Question: how much does each GPU operation add to its device's busy time, swept in time order?
-- Inputs: temp table ops.
-- Definition: per device, the operations sorted by (start, end) (ties in any fixed order) and
--   numbered sweep_k = 1, 2, ...; reach = the furthest end of the operations before it;
--   busy_add_ns = the part of the operation past its reach (0 when it lies inside it), so the
--   device's busy time (the union of its operation intervals) is the sum of busy_add_ns
--   (trace_gpu_busy.sql); opens = nothing before it reaches past its start (reach <= start).
--   An operation with end < start (never in nsys output) counts as zero-length.
-- Why: a range whose operations are, on one device, the consecutive sweep_k i..j with opens at
--   i has busy time = the sum of their busy_add_ns (what came before ends by the range's first
--   start, so their reaches are the range's own), which trace_range_metrics.sql reads as a
--   plain sum instead of sorting each range's operations again.
CREATE OR REPLACE TEMP TABLE op_sweep AS
SELECT correlation_id, global_pid, kind, start_ns, end_ns, device_id, sweep_k,
       greatest(0, greatest(end_ns, start_ns) - greatest(start_ns, coalesce(reach_ns, start_ns)))
           AS busy_add_ns,
       coalesce(reach_ns <= start_ns, true) AS opens
FROM (
    SELECT correlation_id, global_pid, kind, start_ns, end_ns, device_id,
           max(greatest(end_ns, start_ns)) OVER (
               w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_ns,
           row_number() OVER w AS sweep_k
    FROM ops
    WINDOW w AS (PARTITION BY device_id ORDER BY start_ns, end_ns)
);
