-- CIFAR-10 zero-shot classification with CLIP ViT-B/32, as in the CLIP paper
-- (Radford et al., 2021, "Learning Transferable Visual Models From Natural
-- Language Supervision"): the 10,000-image test split, the paper's 18
-- CIFAR-10 prompt templates averaged per class, top-1, top-5 and per-class
-- accuracy.
--
-- Run:   clip-sql -f sql/benchmarks/cifar10.sql
--        [--param data=/local/copy/test-00000-of-00001.parquet] [--param model=RN50]
--
-- Data:    Hugging Face dataset uoft-cs/cifar10, test split: one Parquet file
--          (~24 MB) with `img` = struct<bytes: PNG, path> and `label` = 0..9,
--          read over https.
-- Weights: openai/clip-vit-base-patch32 (~600 MB), downloaded into the
--          Hugging Face cache ($HF_HOME, default ~/.cache/huggingface) on
--          first use. SET clip.offline = true to forbid downloads.
-- Reference: OpenAI reports 91.3% top-1 for ViT-B/32 on CIFAR-10 with these
--          prompts; open_clip's CLIP_benchmark measures 89.8%.

CREATE EXTERNAL TABLE cifar10_test
STORED AS PARQUET
LOCATION '${data:-https://huggingface.co/datasets/uoft-cs/cifar10/resolve/main/plain_text/test-00000-of-00001.parquet}';

-- The dataset's class names, in label order.
CREATE TABLE cifar10_classes (label INT, name VARCHAR) AS VALUES
  (0, 'airplane'), (1, 'automobile'), (2, 'bird'), (3, 'cat'), (4, 'deer'),
  (5, 'dog'), (6, 'frog'), (7, 'horse'), (8, 'ship'), (9, 'truck');

-- One prediction per image, computed once and kept for the reports below.
CREATE TABLE cifar10_predictions AS
SELECT label,
       p['label_index'] AS predicted,
       p['top5'] AS top5,
       p['probability'] AS probability
FROM (
  SELECT CAST(label AS INT) AS label,
         clip_zero_shot(
           '${model:-ViT-B/32}',
           img,
           (SELECT array_agg(name ORDER BY label) FROM cifar10_classes),
           [
             'a photo of a {}.',
             'a blurry photo of a {}.',
             'a black and white photo of a {}.',
             'a low contrast photo of a {}.',
             'a high contrast photo of a {}.',
             'a bad photo of a {}.',
             'a good photo of a {}.',
             'a photo of a small {}.',
             'a photo of a big {}.',
             'a photo of the {}.',
             'a blurry photo of the {}.',
             'a black and white photo of the {}.',
             'a low contrast photo of the {}.',
             'a high contrast photo of the {}.',
             'a bad photo of the {}.',
             'a good photo of the {}.',
             'a photo of the small {}.',
             'a photo of the big {}.'
           ]
         ) AS p
  FROM cifar10_test
);

-- Top-1 and top-5 accuracy (percent). Images that could not be decoded
-- count as wrong and are reported in n_failed.
SELECT '${model:-ViT-B/32}' AS model,
       'cifar10' AS dataset,
       'test' AS split,
       count(*) AS n,
       count(*) - count(predicted) AS n_failed,
       round(100.0 * avg(CASE WHEN predicted = label THEN 1.0 ELSE 0.0 END), 2) AS acc1,
       round(100.0 * avg(CASE WHEN array_has(top5, label) THEN 1.0 ELSE 0.0 END), 2) AS acc5
FROM cifar10_predictions;

-- Per-class accuracy (percent); their mean is the mean per-class recall.
SELECT c.name AS class,
       count(*) AS n,
       round(100.0 * avg(CASE WHEN p.predicted = p.label THEN 1.0 ELSE 0.0 END), 2) AS acc1
FROM cifar10_predictions p
JOIN cifar10_classes c ON p.label = c.label
GROUP BY c.label, c.name
ORDER BY c.label;
