-- Question: which Nsight Systems version exported the file, with which schema (old exports)?
-- Inputs: t.EXPORT_META_DATA (the table's name before 2023, e.g. nsys 2022.2).
-- Definition: the EXPORT_PRODUCT_VERSION and EXPORT_SCHEMA_VERSION rows.
SELECT name, value
FROM t.EXPORT_META_DATA
WHERE name IN ('EXPORT_PRODUCT_VERSION', 'EXPORT_SCHEMA_VERSION');
