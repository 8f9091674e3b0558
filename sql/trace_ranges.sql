-- Question: the full per-range table (one row per NVTX range instance).
-- Inputs: temp tables nvtx_range, range_tree, and range_metrics / range_devices (computed in
--   numpy by trace/attribution.py, range_metrics: one row per range with GPU operations, and
--   one row per (range, device) it ran on).
-- Definition: an operation belongs to EVERY range on the launching thread (same globalTid)
--   that contains the CUDA runtime call that launched it: range.start <= call.start and
--   call.end <= range.end (nsys' "projection"); the call is joined to the operation on
--   correlationId within the same process. Per range: cpu_ns = end - start;
--   gpu_start_ns / gpu_end_ns = first op start / last op end (nsys "Projected Start"), proj_ns =
--   gpu_end - gpu_start (nsys "Projected Duration"; NULL when the range launched nothing);
--   gpu_launches = runtime calls in the range that launched GPU work (nsys NumGPUOps, which
--   counts calls: a CUDA-graph launch counts once however many kernels it runs; nsys does not
--   see whole-graph records, we count their launches too); gpu_ops = GPU operations executed:
--   kernels + memcpys + memsets + graph_launches; graph_launches = whole-graph records
--   (CUPTI_ACTIVITY_KIND_GRAPH_TRACE: one per cudaGraphLaunch traced with
--   --cuda-graph-trace=graph), graph_ns = the sum of their durations; kernel_ns = sum of kernel
--   durations (overlaps counted twice: nsys nvtx_kern_sum Total Time; the kernels inside
--   whole-graph records are unknown, so graph_ns is not in it); busy_ns = length of the union
--   of all op intervals, whole-graph records included, on all streams and devices (overlap
--   counted once); idle_ns = proj_ns - busy_ns (GPU idle inside the projected span);
--   device_ids = the devices the ops ran on. Counts, kernel_ns and graph_ns are 0 for ranges
--   without GPU operations. An op with end < start (never in nsys output) counts as
--   zero-length in busy_ns.
CREATE OR REPLACE TEMP TABLE range_all AS
SELECT r.range_id, r.name, r.domain, r.style, r.pid, r.tid,
       t.level, t.parent_id,
       r.start_ns, r.end_ns, r.end_ns - r.start_ns AS cpu_ns,
       m.gpu_start_ns, m.gpu_end_ns,
       m.gpu_end_ns - m.gpu_start_ns AS proj_ns,
       coalesce(m.gpu_launches, 0) AS gpu_launches,
       coalesce(m.gpu_ops, 0) AS gpu_ops,
       coalesce(m.kernels, 0) AS kernels,
       coalesce(m.memcpys, 0) AS memcpys,
       coalesce(m.memsets, 0) AS memsets,
       coalesce(m.graph_launches, 0) AS graph_launches,
       coalesce(m.kernel_ns, 0) AS kernel_ns,
       coalesce(m.graph_ns, 0) AS graph_ns,
       m.busy_ns,
       m.gpu_end_ns - m.gpu_start_ns - m.busy_ns AS idle_ns,
       coalesce(d.device_ids, []::BIGINT[]) AS device_ids,
       len(coalesce(d.device_ids, []::BIGINT[])) AS gpus,
       r.payload,
       r.unclosed,
       t.in_warmup
FROM nvtx_range AS r
JOIN range_tree AS t USING (range_id)
LEFT JOIN range_metrics AS m USING (range_id)
LEFT JOIN (
    SELECT range_id, list(device_id ORDER BY device_id) AS device_ids
    FROM range_devices
    GROUP BY range_id
) AS d USING (range_id);
