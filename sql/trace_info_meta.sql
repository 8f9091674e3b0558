-- Question: which Nsight Systems version exported the file, with which schema?
-- Inputs: t.META_DATA_EXPORT (exports since 2023).
-- Definition: the EXPORT_PRODUCT_VERSION and EXPORT_SCHEMA_VERSION rows.
SELECT name, value
FROM t.META_DATA_EXPORT
WHERE name IN ('EXPORT_PRODUCT_VERSION', 'EXPORT_SCHEMA_VERSION');
