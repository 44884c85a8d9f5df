-- What a benchmark over a folder with broken files reports: every row is
-- counted, failed rows are NULL predictions with a reason, and accuracy is
-- computed over all n rows (a failed row counts as wrong), never over a
-- silently shrunken set.
--
-- Run:  cargo run --release --example make_bad_image_folder -- /tmp/mixed
--       cargo run --release --example make_random_model -- /tmp/vit-b-32-random ViT-B/32
--       clip-sql -f sql/examples/bad_images.sql
-- (random weights: the accuracy means nothing, the counts do). To check
-- your own folder before a long run:
--       clip-sql -f sql/examples/bad_images.sql --param data=/my/images/ --param model=ViT-B/32

CREATE EXTERNAL TABLE mixed STORED AS IMAGEFOLDER LOCATION '${data:-/tmp/mixed/}';

CREATE TABLE predictions AS
SELECT path,
       label,
       clip_zero_shot('${model:-/tmp/vit-b-32-random}', image, ['cat', 'dog']) AS p
FROM mixed;

-- The summary a benchmark prints: n, n_failed, accuracy over all n.
SELECT count(*) AS n,
       count(p) AS n_predicted,
       count(*) - count(p) AS n_failed,
       round(100.0 * avg(CASE WHEN p['label'] = label THEN 1.0 ELSE 0.0 END), 2) AS acc1
FROM predictions;

-- Why the failed rows failed: the reason is computed only for them.
-- (Sizes and byte values become N so that alike reasons group together.)
SELECT regexp_replace(
         regexp_replace(clip_image_error('${model:-/tmp/vit-b-32-random}', m.image), ': first bytes .*', ''),
         '[0-9]+', 'N', 'g') AS reason,
       count(*) AS images
FROM predictions p JOIN mixed m ON p.path = m.path
WHERE p.p IS NULL
GROUP BY 1
ORDER BY images DESC, reason;
