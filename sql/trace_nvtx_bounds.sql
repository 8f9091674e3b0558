-- Question: when do the NVTX ranges begin and end, and how many are there?
-- Inputs: temp table nvtx_range.
-- Definition: earliest range start, latest range end, number of range instances.
SELECT min(start_ns) AS first_ns, max(end_ns) AS last_ns, count(*) AS ranges FROM nvtx_range;
