-- Question: which GPU operations does the trace hold, in one uniform table?
-- Inputs: none (creates the empty table); trace_ops_kernel/_memcpy/_memset.sql fill it from
--   whichever of CUPTI_ACTIVITY_KIND_KERNEL, _MEMCPY, _MEMSET the export has.
-- Definition: one row per GPU operation. op_id is the source rowid plus a per-kind offset
--   (2^40 for memcpy, 2^41 for memset) so ids are unique across kinds. global_pid is the
--   launching process as nsys encodes it (globalTid with the low 24 thread bits cleared).
CREATE OR REPLACE TEMP TABLE ops (
    op_id BIGINT,
    kind VARCHAR,           -- 'kernel', 'memcpy' or 'memset'
    start_ns BIGINT,
    end_ns BIGINT,
    device_id BIGINT,
    stream_id BIGINT,
    correlation_id BIGINT,
    global_pid BIGINT,
    name_id BIGINT,         -- kernels: demangledName (StringIds.id); NULL otherwise
    short_name_id BIGINT    -- kernels: shortName (StringIds.id); NULL otherwise
);
