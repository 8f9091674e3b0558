-- Question: does this export record a launch twice in its runtime table?
-- Inputs: temp table launches (as trace_launches.sql made it, one row per matching runtime row).
-- Definition: true when two rows of one thread share a correlation id. An exporter that
--   doubles records every launch so (nsys 2022: the API call and its versioned entry), so the
--   first 65,536 correlation ids of the trace decide it; reading them costs ~10 ms where the
--   merge itself costs 0.4 s. The engine then makes launches with trace_launches_merged.sql.
SELECT EXISTS (
    SELECT 1
    FROM launches
    WHERE correlation_id < (SELECT min(correlation_id) FROM launches) + 65536
    GROUP BY global_tid, correlation_id
    HAVING count(*) > 1
);
