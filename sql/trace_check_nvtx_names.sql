-- Question: do the NVTX ranges' names resolve?
-- Inputs: temp table nvtx_range.
-- Definition: missing = ranges whose textId has no StringIds row (text_unresolved), of total
--   ranges; example = the smallest such textId. A complete export has missing = 0.
SELECT count(*) FILTER (WHERE text_unresolved) AS missing,
       count(*) AS total,
       min(text_id) FILTER (WHERE text_unresolved) AS example
FROM nvtx_range;
