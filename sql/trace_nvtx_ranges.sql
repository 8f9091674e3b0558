-- Question: which NVTX ranges does the trace hold, with their names, domains and threads?
-- Inputs: t.NVTX_EVENTS, t.StringIds; $last_ns = the trace's last timestamp.
-- Definition (as nsys stats' NVTX reports): push/pop (eventType 59, NVTXT 70) and start/end
--   (60, NVTXT 71) ranges that start and end on the same thread (endGlobalTid NULL); marks and
--   other events ignored. range_id = NVTX_EVENTS rowid (= nsys' RangeId). Text inline in `text`
--   or through textId -> StringIds. Domain names come from domain-create rows (eventType 75) of
--   the same process; the default domain (and a domain never named) has domain NULL. A range
--   never closed ends at the trace's last timestamp. pid/tid decode globalTid:
--   pid = (globalTid >> 24) & 0xFFFFFF, tid = globalTid & 0xFFFFFF. payload = the range's
--   integer payload (int64, uint64, int32 or uint32 value), NULL if none.
CREATE OR REPLACE TEMP TABLE nvtx_range AS
WITH domains AS (
    SELECT (e.globalTid >> 24) & 16777215 AS pid,
           e.domainId AS domain_id,
           arg_min(coalesce(s.value, e.text), e.start) AS domain
    FROM t.NVTX_EVENTS AS e
    LEFT JOIN t.StringIds AS s ON s.id = e.textId
    WHERE e.eventType = 75
    GROUP BY ALL
)
SELECT e.rowid AS range_id,
       coalesce(s.value, e.text, '') AS name,
       d.domain AS domain,
       CASE WHEN e.eventType IN (59, 70) THEN 'PushPop' ELSE 'StartEnd' END AS style,
       e.globalTid AS global_tid,
       (e.globalTid >> 24) & 16777215 AS pid,
       e.globalTid & 16777215 AS tid,
       e.start AS start_ns,
       coalesce(e."end", greatest(CAST($last_ns AS BIGINT), l.last_start_ns)) AS end_ns,
       e."end" IS NULL AS unclosed,
       coalesce(e.int64Value, e.uint64Value, e.int32Value, e.uint32Value) AS payload
FROM t.NVTX_EVENTS AS e
LEFT JOIN t.StringIds AS s ON s.id = e.textId
LEFT JOIN domains AS d
    ON d.domain_id = e.domainId AND d.pid = (e.globalTid >> 24) & 16777215
-- A scalar aggregate, not max() OVER (): the window over the sqlite scan intermittently raised
-- an internal error in DuckDB 1.5.5 under several threads.
CROSS JOIN (SELECT max(start) AS last_start_ns FROM t.NVTX_EVENTS) AS l
WHERE e.eventType IN (59, 60, 70, 71) AND e.endGlobalTid IS NULL;
