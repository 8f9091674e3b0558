-- Question: how many GPU operations of each kind does the trace hold?
-- Inputs: temp table ops.
-- Definition: rows per kind ('kernel', 'memcpy', 'memset', 'graph' = whole-graph records).
SELECT count(*) FILTER (WHERE kind = 'kernel') AS kernels,
       count(*) FILTER (WHERE kind = 'memcpy') AS memcpy,
       count(*) FILTER (WHERE kind = 'memset') AS memset,
       count(*) FILTER (WHERE kind = 'graph') AS graphs
FROM ops;
