-- Question: when do the trace's GPU operations and launch calls begin and end?
-- Inputs: temp tables ops, launches.
-- Definition: first_ns = earliest start, last_ns = latest end over GPU operations and the
--   runtime calls that launched them (NULL when there are none). Combined with the NVTX ranges'
--   bounds this is the trace span that `info` reports; last_ns also closes unclosed ranges.
SELECT min(first_ns) AS first_ns, max(last_ns) AS last_ns
FROM (
    SELECT min(start_ns) AS first_ns, max(end_ns) AS last_ns FROM ops
    UNION ALL
    SELECT min(start_ns), max(end_ns) FROM launches
);
