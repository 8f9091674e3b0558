-- Question: which GPU operations were launched inside one stage (NVTX range name)?
-- Inputs: temp tables range_all, range_ops; $stage (VARCHAR), $include_warmup (BOOLEAN).
-- Definition: the operations attributed (see trace_range_ops.sql) to any counted instance of
--   the stage, each once even when instances of the stage nest. (nsys nvtx_kern_sum instead
--   sums per range instance, so a kernel inside two nested ranges of one name counts twice.)
CREATE OR REPLACE TEMP TABLE kernel_scope AS
SELECT DISTINCT ro.op_id
FROM range_ops AS ro
JOIN range_all AS r USING (range_id)
WHERE r.name = $stage AND ($include_warmup OR NOT r.in_warmup);
