-- Question: which GPU operations does a whole-trace kernel summary cover?
-- Inputs: temp table ops.
-- Definition: every operation of the trace (trace_kernels.sql keeps the kernels), so the summary
--   equals nsys stats cuda_gpu_kern_sum.
CREATE OR REPLACE TEMP TABLE kernel_scope AS
SELECT op_id FROM ops;
