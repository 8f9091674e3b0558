-- Question: how are the NVTX ranges nested, and which lie inside a `warmup` range?
-- Inputs: temp table nvtx_range.
-- Definition: range P encloses range C when both are on the same thread (globalTid) and
--   P.start <= C.start and C.end <= P.end (P != C), as nsys' nvtx_gpu_proj_trace decides.
--   parent_id = the tightest encloser (least (C.start - P.start) + (P.end - C.end)); level =
--   number of enclosers (0 = outermost; equals nsys' Lvl for properly nested ranges);
--   in_warmup = the range is named `warmup` or any encloser is.
-- Method: ranges sorted by (thread, start) get a row number g; each range's candidates are
--   the ranges of its thread starting inside it, one contiguous block of g found with two ASOF
--   joins, then expanded. Cost grows with ranges x nesting depth, never ranges^2.
CREATE OR REPLACE TEMP TABLE range_tree AS
WITH ordered AS (
    SELECT range_id, global_tid, start_ns, end_ns, name,
           row_number() OVER (ORDER BY global_tid, start_ns, range_id) AS g
    FROM nvtx_range
),
spans AS (
    SELECT p.range_id, p.start_ns, p.end_ns, p.name, lo.g AS lo, hi.g AS hi
    FROM ordered AS p
    ASOF JOIN ordered AS lo ON p.global_tid = lo.global_tid AND p.start_ns <= lo.start_ns
    ASOF JOIN ordered AS hi ON p.global_tid = hi.global_tid AND p.end_ns >= hi.start_ns
),
candidates AS (
    SELECT range_id AS parent_id, start_ns, end_ns, name, unnest(range(lo, hi + 1)) AS g
    FROM spans
),
enclosers AS (
    SELECT c.range_id,
           p.parent_id,
           p.name AS parent_name,
           (c.start_ns - p.start_ns) + (p.end_ns - c.end_ns) AS tightness
    FROM candidates AS p
    JOIN ordered AS c ON c.g = p.g
    WHERE c.end_ns <= p.end_ns AND c.range_id <> p.parent_id
),
agg AS (
    SELECT range_id,
           arg_min(parent_id, tightness) AS parent_id,
           count(*) AS level,
           bool_or(parent_name = 'warmup') AS under_warmup
    FROM enclosers
    GROUP BY range_id
)
SELECT r.range_id,
       a.parent_id,
       coalesce(a.level, 0) AS level,
       r.name = 'warmup' OR coalesce(a.under_warmup, false) AS in_warmup
FROM nvtx_range AS r
LEFT JOIN agg AS a USING (range_id);
