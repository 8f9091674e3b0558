-- Question: which NVTX ranges does the trace hold, with their names, domains and threads?
-- Inputs: t.NVTX_EVENTS, t.StringIds; $last_ns = the trace's last timestamp; the eventType
--   values, bound from dsocr_nsys.vocab.NvtxEventType: $push_pop (59), $nvtxt_push_pop (70),
--   $start_end (60), $nvtxt_start_end (71), $domain_create (75).
-- Definition (as nsys stats' NVTX reports): push/pop ($push_pop, NVTXT $nvtxt_push_pop) and
--   start/end ($start_end, NVTXT $nvtxt_start_end) ranges that start and end on the same
--   thread (endGlobalTid NULL); marks and other events ignored. range_id = NVTX_EVENTS rowid
--   (= nsys' RangeId). Text inline in `text` or through textId -> StringIds. Domain names come
--   from domain-create rows ($domain_create) of the same process; the default domain (and a
--   domain never named) has domain NULL. A range never closed ends at the trace's last
--   timestamp. pid/tid decode globalTid:
--   pid = (globalTid >> 24) & 0xFFFFFF, tid = globalTid & 0xFFFFFF. payload = the range's
--   integer payload (int64, uint64, int32 or uint32 value), NULL if none. text_unresolved =
--   the range names a textId that StringIds lacks (trace_check_nvtx_names.sql).
CREATE OR REPLACE TEMP TABLE nvtx_range AS
WITH domains AS (
    SELECT (e.globalTid >> 24) & 16777215 AS pid,
           e.domainId AS domain_id,
           arg_min(coalesce(s.value, e.text), e.start) AS domain
    FROM t.NVTX_EVENTS AS e
    LEFT JOIN t.StringIds AS s ON s.id = e.textId
    WHERE e.eventType = $domain_create
    GROUP BY ALL
)
SELECT e.rowid AS range_id,
       coalesce(s.value, e.text, '') AS name,
       d.domain AS domain,
       CASE WHEN e.eventType IN ($push_pop, $nvtxt_push_pop) THEN 'PushPop' ELSE 'StartEnd' END AS style,
       e.globalTid AS global_tid,
       (e.globalTid >> 24) & 16777215 AS pid,
       e.globalTid & 16777215 AS tid,
       e.start AS start_ns,
       coalesce(e."end", greatest(CAST($last_ns AS BIGINT), l.last_start_ns)) AS end_ns,
       e."end" IS NULL AS unclosed,
       coalesce(e.int64Value, e.uint64Value, e.int32Value, e.uint32Value) AS payload,
       e.textId AS text_id,
       e.textId IS NOT NULL AND s.id IS NULL AS text_unresolved
FROM t.NVTX_EVENTS AS e
LEFT JOIN t.StringIds AS s ON s.id = e.textId
LEFT JOIN domains AS d
    ON d.domain_id = e.domainId AND d.pid = (e.globalTid >> 24) & 16777215
-- A scalar aggregate, not max() OVER (): the window over the sqlite scan intermittently raised
-- an internal error in DuckDB 1.5.5 under several threads.
CROSS JOIN (SELECT max(start) AS last_start_ns FROM t.NVTX_EVENTS) AS l
WHERE e.eventType IN ($push_pop, $start_end, $nvtxt_push_pop, $nvtxt_start_end) AND e.endGlobalTid IS NULL;
