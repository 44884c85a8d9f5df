-- The article's report over a suite's saved predictions: accuracy by model and
-- dataset, Country211 by region, Rendered SST2 by class, one template
-- against the dataset's templates ensembled, and a weighted multi-model
-- ensemble. `clip-sql suite` runs this file after the benchmarks; run it
-- again by itself to re-weigh the ensemble without encoding anything:
--
--   clip-sql -f sql/benchmarks/report.sql --param results=results
--            [--param ensemble='ViT-L/14=0.4,ViT-B/32=0.3,RN50=0.3']
--            [--param sqldata=<path to sql/data>]
--            [--param benchmarks=<path to sql/benchmarks>]
--
-- (`clip-sql report --results results` runs it too, and rebuilds the
-- matrix, charts, CLIP_benchmark JSON and report.html from its tables.)
--
-- Reads    ${results}/predictions/*.parquet   (model, dataset, split, key,
--            label, label_index, predicted, predicted_label, top5,
--            probability, predicted_one_template)
--          ${results}/probabilities/*.parquet (model, dataset, key,
--            label_index, probs)
-- Writes   ${results}/tables/<table>.csv, one per table below.
-- Figures are percent; an image that could not be decoded counts as wrong
-- and in n_failed.

CREATE EXTERNAL TABLE predictions STORED AS PARQUET
LOCATION '${results:-results}/predictions/';

CREATE EXTERNAL TABLE probabilities STORED AS PARQUET
LOCATION '${results:-results}/probabilities/';

CREATE EXTERNAL TABLE published_accuracy (model VARCHAR, dataset VARCHAR, acc1 DOUBLE)
STORED AS CSV LOCATION '${sqldata:-sql/data}/published_accuracy.csv'
OPTIONS ('format.has_header' 'true');

-- The dataset catalogue: display name and task group of each dataset.
CREATE EXTERNAL TABLE datasets
  (dataset VARCHAR, name VARCHAR, clip_benchmark VARCHAR, has_default_data VARCHAR,
   test_images VARCHAR, task VARCHAR)
STORED AS CSV LOCATION '${benchmarks:-sql/benchmarks}/datasets.csv'
OPTIONS ('format.has_header' 'true');

CREATE EXTERNAL TABLE country211_regions
  (label_index INT, code VARCHAR, name VARCHAR, m49_region VARCHAR, m49_subregion VARCHAR, region VARCHAR)
STORED AS CSV LOCATION '${sqldata:-sql/data}/country211_regions.csv'
OPTIONS ('format.has_header' 'true');

-- CLIP_benchmark's metrics by model and dataset, as fractions (the units
-- of its JSON results). Mean per-class recall is the mean over the classes
-- present of the share of their images predicted right; acc5 is NULL where
-- a dataset has fewer than 5 classes.
CREATE TABLE metrics AS
SELECT a.model, a.dataset, a.split, a.n, a.n_failed, a.acc1, a.acc5, r.mean_per_class_recall
FROM (
  SELECT model,
         dataset,
         split,
         count(*) AS n,
         count(*) - count(predicted) AS n_failed,
         avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END) AS acc1,
         CASE WHEN max(cardinality(top5)) < 5 THEN NULL
              ELSE avg(CASE WHEN array_has(top5, label_index) THEN 1.0 ELSE 0.0 END)
         END AS acc5
  FROM predictions
  GROUP BY model, dataset, split
) AS a
JOIN (
  SELECT model, dataset, avg(recall) AS mean_per_class_recall
  FROM (
    SELECT model, dataset, avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END) AS recall
    FROM predictions
    GROUP BY model, dataset, label_index
  )
  GROUP BY model, dataset
) AS r ON a.model = r.model AND a.dataset = r.dataset;

-- Accuracy by model and dataset (percent), next to published_acc1: OpenAI's
-- weights as CLIP_benchmark measured them (sql/data/published_accuracy.csv),
-- and the difference (ours minus published).
CREATE TABLE accuracy AS
SELECT m.model,
       m.dataset,
       d.task,
       m.split,
       m.n,
       m.n_failed,
       round(100.0 * m.acc1, 2) AS acc1,
       round(100.0 * m.acc5, 2) AS acc5,
       round(100.0 * m.mean_per_class_recall, 2) AS mean_per_class_recall,
       pub.acc1 AS published_acc1,
       round(round(100.0 * m.acc1, 2) - pub.acc1, 2) AS difference
FROM metrics m
LEFT JOIN datasets d ON m.dataset = d.dataset
LEFT JOIN published_accuracy pub ON m.model = pub.model AND m.dataset = pub.dataset
ORDER BY m.dataset, m.model;

COPY accuracy TO '${results:-results}/tables/accuracy.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM accuracy;

-- Accuracy by model and task group (the catalogue's `task`, the article's
-- groups): the mean top-1 over the group's datasets the model ran, and the
-- published mean over those of them with a published figure.
CREATE TABLE accuracy_by_task AS
SELECT model,
       task,
       count(*) AS datasets,
       round(avg(acc1), 2) AS mean_acc1,
       count(published_acc1) AS published_datasets,
       round(avg(published_acc1), 2) AS published_mean_acc1
FROM accuracy
GROUP BY model, task
ORDER BY task, model;

COPY accuracy_by_task TO '${results:-results}/tables/accuracy_by_task.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM accuracy_by_task;

-- Country211 accuracy by model and region (sql/data/country211_regions.csv):
-- where in the world CLIP can tell where a photo was taken.
CREATE TABLE country211_by_region AS
SELECT p.model,
       r.region,
       count(*) AS n,
       round(100.0 * avg(CASE WHEN p.predicted = p.label_index THEN 1.0 ELSE 0.0 END), 2) AS acc1
FROM predictions p
JOIN country211_regions r ON p.label_index = r.label_index
WHERE p.dataset = 'country211'
GROUP BY p.model, r.region
ORDER BY p.model, acc1 DESC, r.region;

COPY country211_by_region TO '${results:-results}/tables/country211_by_region.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM country211_by_region;

-- Rendered SST2 accuracy by sentiment class (the recall of each class):
-- whether CLIP reads the rendered sentence or leans to one answer.
CREATE TABLE renderedsst2_by_class AS
SELECT model,
       label AS class,
       count(*) AS n,
       round(100.0 * avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END), 2) AS acc1
FROM predictions
WHERE dataset = 'renderedsst2'
GROUP BY model, label_index, label
ORDER BY model, label_index;

COPY renderedsst2_by_class TO '${results:-results}/tables/renderedsst2_by_class.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM renderedsst2_by_class;

-- One template ('a photo of a {}.') against the dataset's templates
-- ensembled, on the same image embeddings.
CREATE TABLE template_ensembling AS
SELECT model,
       dataset,
       count(*) AS n,
       round(100.0 * avg(CASE WHEN predicted_one_template = label_index THEN 1.0 ELSE 0.0 END), 2)
         AS acc1_one_template,
       round(100.0 * avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END), 2)
         AS acc1_ensembled,
       round(100.0 * avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END)
           - 100.0 * avg(CASE WHEN predicted_one_template = label_index THEN 1.0 ELSE 0.0 END), 2)
         AS gain
FROM predictions
GROUP BY model, dataset
ORDER BY dataset, model;

COPY template_ensembling TO '${results:-results}/tables/template_ensembling.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM template_ensembling;

-- A weighted multi-model ensemble: each image's class probabilities
-- averaged over the member models with these weights (normalised to sum
-- to 1), the prediction their argmax (the first class of a tie). Written
-- 'model=weight,model=weight'.
CREATE TABLE ensemble_weights AS
SELECT trim(split_part(member, '=', 1)) AS model,
       CAST(trim(split_part(member, '=', 2)) AS DOUBLE) AS weight
FROM (SELECT unnest(string_to_array('${ensemble:-ViT-L/14=0.4,ViT-B/32=0.3,RN50=0.3}', ',')) AS member);

-- Datasets every member model has predicted.
CREATE TABLE ensemble_datasets AS
SELECT dataset
FROM (SELECT DISTINCT dataset, model FROM probabilities
      WHERE model IN (SELECT model FROM ensemble_weights))
GROUP BY dataset
HAVING count(*) = (SELECT count(*) FROM ensemble_weights);

-- An image that any member could not decode has no ensemble prediction
-- (it counts as wrong, as it does for that member).
CREATE TABLE ensemble_predictions AS
SELECT p.dataset,
       p.key,
       min(p.label_index) AS label_index,
       CASE WHEN count(p.probs) = (SELECT count(*) FROM ensemble_weights)
            THEN array_argmax(weighted_avg_list(p.probs, w.weight))
       END AS predicted
FROM probabilities p
JOIN ensemble_weights w ON p.model = w.model
WHERE p.dataset IN (SELECT dataset FROM ensemble_datasets)
GROUP BY p.dataset, p.key;

-- The ensemble's accuracy next to each member's, on the same images.
CREATE TABLE ensemble AS
SELECT * FROM (
  SELECT p.dataset,
         p.model,
         w.weight,
         count(*) AS n,
         round(100.0 * avg(CASE WHEN array_argmax(p.probs) = p.label_index THEN 1.0 ELSE 0.0 END), 2)
           AS acc1
  FROM probabilities p
  JOIN ensemble_weights w ON p.model = w.model
  WHERE p.dataset IN (SELECT dataset FROM ensemble_datasets)
  GROUP BY p.dataset, p.model, w.weight
  UNION ALL
  SELECT dataset,
         'ensemble' AS model,
         (SELECT sum(weight) FROM ensemble_weights) AS weight,
         count(*) AS n,
         round(100.0 * avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END), 2) AS acc1
  FROM ensemble_predictions
  GROUP BY dataset
)
ORDER BY dataset, model = 'ensemble', weight DESC, model;

COPY ensemble TO '${results:-results}/tables/ensemble.csv'
STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT * FROM ensemble;
