-- The efficiency table beside accuracy: run by the report (after
-- report.sql, whose `accuracy` table it reads) when it is given a bench
-- result, `clip-sql suite --efficiency DIR` or `clip-sql report
-- --efficiency DIR`, where DIR holds what `clip-sql bench --output DIR`
-- wrote. Models are matched by name: bench the names the suite ran.
--
-- Reads    ${efficiency}/efficiency.csv (one row per model and batch size)
-- Writes   ${results}/tables/efficiency.csv

CREATE EXTERNAL TABLE efficiency_runs
  (model VARCHAR, device VARCHAR, dtype VARCHAR, image_size INT, load_s DOUBLE,
   latency_ms DOUBLE, batch INT, images_per_s DOUBLE, note VARCHAR, prompts_per_s DOUBLE,
   peak_device_bytes BIGINT, peak_host_bytes BIGINT)
STORED AS CSV LOCATION '${efficiency}/efficiency.csv'
OPTIONS ('format.has_header' 'true');

-- Efficiency next to accuracy, one row per model: batch-1 latency (ms),
-- the best images/s over the batch sizes measured and that batch size,
-- peak memory (MiB), the mean top-1 over the datasets the model ran, and
-- correct_per_s = images/s x mean top-1 / 100: images classified right per
-- second at the best batch size, the accuracy/speed figure.
CREATE TABLE efficiency AS
SELECT e.model,
       e.device,
       e.dtype,
       round(e.latency_ms, 2) AS latency_ms,
       e.best_batch,
       round(e.images_per_s, 1) AS images_per_s,
       round(e.peak_device_bytes / 1048576.0) AS peak_device_mib,
       round(e.peak_host_bytes / 1048576.0) AS peak_host_mib,
       a.mean_acc1,
       round(e.images_per_s * a.mean_acc1 / 100.0, 1) AS correct_per_s
FROM (
  SELECT model,
         min(device) AS device,
         min(dtype) AS dtype,
         min(latency_ms) AS latency_ms,
         first_value(batch ORDER BY images_per_s DESC NULLS LAST) AS best_batch,
         max(images_per_s) AS images_per_s,
         max(peak_device_bytes) AS peak_device_bytes,
         max(peak_host_bytes) AS peak_host_bytes
  FROM efficiency_runs
  GROUP BY model
) AS e
LEFT JOIN (SELECT model, round(avg(acc1), 2) AS mean_acc1 FROM accuracy GROUP BY model) AS a
  ON e.model = a.model
ORDER BY e.model;

COPY efficiency TO '${results:-results}/tables/efficiency.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM efficiency;
