-- Zero-shot retrieval over a suite's saved retrieval runs: run by the
-- report (after report.sql) when the results hold any, i.e. when
-- `clip-sql suite --datasets` named flickr30k, flickr8k or mscoco_captions.
--
-- Reads    ${results}/image_retrieval/*.parquet (model, dataset,
--            caption_index, image_index, caption, top10_images)
--          ${results}/text_retrieval/*.parquet (model, dataset,
--            image_index, key, top10_captions, first_hit)
--          ${sqldata}/published_retrieval.csv
-- Writes   ${results}/tables/retrieval.csv, retrieval_vs_published.csv

CREATE EXTERNAL TABLE image_retrieval STORED AS PARQUET
LOCATION '${results:-results}/image_retrieval/';

CREATE EXTERNAL TABLE text_retrieval STORED AS PARQUET
LOCATION '${results:-results}/text_retrieval/';

CREATE EXTERNAL TABLE published_retrieval (model VARCHAR, dataset VARCHAR, metric VARCHAR, value DOUBLE)
STORED AS CSV LOCATION '${sqldata:-sql/data}/published_retrieval.csv'
OPTIONS ('format.has_header' 'true');

-- Zero-shot retrieval by model and dataset (percent), as CLIP_benchmark's
-- zeroshot_retrieval defines it: image_retrieval_recall@k, per caption,
-- whether its image is among the k images it ranks highest;
-- text_retrieval_recall@k, per image, whether any of its captions is among
-- the k captions it ranks highest.
CREATE TABLE retrieval AS
SELECT i.model,
       i.dataset,
       t.images,
       i.captions,
       i."image_retrieval_recall@1",
       i."image_retrieval_recall@5",
       i."image_retrieval_recall@10",
       t."text_retrieval_recall@1",
       t."text_retrieval_recall@5",
       t."text_retrieval_recall@10"
FROM (
  SELECT model,
         dataset,
         count(*) AS captions,
         round(100.0 * avg(CASE WHEN array_position(top10_images, image_index) <= 1 THEN 1.0 ELSE 0.0 END), 2)
           AS "image_retrieval_recall@1",
         round(100.0 * avg(CASE WHEN array_position(top10_images, image_index) <= 5 THEN 1.0 ELSE 0.0 END), 2)
           AS "image_retrieval_recall@5",
         round(100.0 * avg(CASE WHEN array_position(top10_images, image_index) <= 10 THEN 1.0 ELSE 0.0 END), 2)
           AS "image_retrieval_recall@10"
  FROM image_retrieval
  GROUP BY model, dataset
) AS i
JOIN (
  SELECT model,
         dataset,
         count(*) AS images,
         round(100.0 * avg(CASE WHEN first_hit <= 1 THEN 1.0 ELSE 0.0 END), 2) AS "text_retrieval_recall@1",
         round(100.0 * avg(CASE WHEN first_hit <= 5 THEN 1.0 ELSE 0.0 END), 2) AS "text_retrieval_recall@5",
         round(100.0 * avg(CASE WHEN first_hit <= 10 THEN 1.0 ELSE 0.0 END), 2) AS "text_retrieval_recall@10"
  FROM text_retrieval
  GROUP BY model, dataset
) AS t ON i.model = t.model AND i.dataset = t.dataset
ORDER BY i.dataset, i.model;

COPY retrieval TO '${results:-results}/tables/retrieval.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM retrieval;

-- Each recall next to the published figure for OpenAI's weights (open_clip
-- with CLIP_benchmark, sql/data/published_retrieval.csv) and the
-- difference, ours minus published; only rows with a published figure.
CREATE TABLE retrieval_vs_published AS
SELECT r.model, r.dataset, p.metric, r.value AS ours, p.value AS published,
       round(r.value - p.value, 2) AS difference
FROM (
  SELECT model, dataset, 'image_retrieval_recall@1' AS metric, "image_retrieval_recall@1" AS value FROM retrieval
  UNION ALL SELECT model, dataset, 'image_retrieval_recall@5', "image_retrieval_recall@5" FROM retrieval
  UNION ALL SELECT model, dataset, 'image_retrieval_recall@10', "image_retrieval_recall@10" FROM retrieval
  UNION ALL SELECT model, dataset, 'text_retrieval_recall@1', "text_retrieval_recall@1" FROM retrieval
  UNION ALL SELECT model, dataset, 'text_retrieval_recall@5', "text_retrieval_recall@5" FROM retrieval
  UNION ALL SELECT model, dataset, 'text_retrieval_recall@10', "text_retrieval_recall@10" FROM retrieval
) AS r
JOIN published_retrieval p ON r.model = p.model AND r.dataset = p.dataset AND r.metric = p.metric
ORDER BY r.dataset, r.model, p.metric;

COPY retrieval_vs_published TO '${results:-results}/tables/retrieval_vs_published.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM retrieval_vs_published;
