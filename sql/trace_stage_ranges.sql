-- Question: which range instances make up one stage?
-- Inputs: temp table range_all; $stage (a range name), $include_warmup (BOOLEAN).
-- Definition: the ranges named $stage, warm-up left out unless $include_warmup; the engine
--   gathers their operations (each once) into kernel_scope.
SELECT range_id
FROM range_all
WHERE name = $stage AND ($include_warmup OR NOT in_warmup);
