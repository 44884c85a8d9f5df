-- Ad hoc zero-shot over a folder of images laid out as <root>/<class>/<file>
-- (torchvision's ImageFolder layout): predictions per image, accuracy per
-- folder, and a text search over the same images.
--
-- Run:  clip-sql -f sql/examples/zero_shot_folder.sql
-- Edit the LOCATION (a local directory, file://, https://, s3://, gs://, az://)
-- and the labels to match your folders.

CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION 'photos/';

-- Images per folder.
SELECT label, count(*) AS images FROM photos GROUP BY label ORDER BY label;

-- Embed every image once, keep the embeddings in memory.
CREATE TABLE photo_embeddings AS
SELECT path, label, clip_embed_image('ViT-B/32', image) AS embedding FROM photos;

-- Zero-shot predictions from the stored embeddings (no second decode).
SELECT path,
       label,
       p['label'] AS predicted,
       round(p['probability'], 3) AS probability
FROM (
  SELECT path, label, clip_zero_shot('ViT-B/32', embedding, ['cat', 'dog']) AS p
  FROM photo_embeddings
)
ORDER BY path;

-- Accuracy per folder.
SELECT label,
       count(*) AS n,
       avg(CASE WHEN clip_zero_shot('ViT-B/32', embedding, ['cat', 'dog'])['label'] = label THEN 1.0 ELSE 0.0 END) AS acc1
FROM photo_embeddings
GROUP BY label
ORDER BY label;

-- Text search: the five images closest to a description.
SELECT path, round(cosine_similarity(embedding, clip_embed_text('ViT-B/32', 'a sleeping cat')), 4) AS score
FROM photo_embeddings
ORDER BY score DESC
LIMIT 5;
