-- The GPU computes what the CPU computes: image and text embeddings of
-- `${model}` on cuda:0 in f32 and f16 against the CPU in f32, as the lowest
-- cosine similarity over every image of `${images}` and a few prompts.
--   clip-sql -f benches/peer/gpu_agreement.sql --param model=<dir> --param images=tests/fixtures/images/
CREATE EXTERNAL TABLE agreement_images STORED AS IMAGEFOLDER LOCATION '${images}';
CREATE TABLE agreement_prompts AS
  SELECT * FROM (VALUES ('a photo of a dog.'), ('a blurry photo of the espresso maker.'), ('itap of my grey wolf.')) AS t(prompt);

SET clip.device = 'cpu';
SET clip.dtype = 'f32';
CREATE TABLE on_cpu AS SELECT path, clip_embed_image('${model}', image) AS e FROM agreement_images;
CREATE TABLE text_on_cpu AS SELECT prompt, clip_embed_text('${model}', prompt) AS e FROM agreement_prompts;

SET clip.device = 'cuda:0';
CREATE TABLE on_gpu_f32 AS SELECT path, clip_embed_image('${model}', image) AS e FROM agreement_images;
CREATE TABLE text_on_gpu_f32 AS SELECT prompt, clip_embed_text('${model}', prompt) AS e FROM agreement_prompts;
SET clip.dtype = 'f16';
CREATE TABLE on_gpu_f16 AS SELECT path, clip_embed_image('${model}', image) AS e FROM agreement_images;
CREATE TABLE text_on_gpu_f16 AS SELECT prompt, clip_embed_text('${model}', prompt) AS e FROM agreement_prompts;

SELECT 'image' AS tower, count(*) AS n,
       min(cosine_similarity(c.e, a.e)) AS min_cos_f32,
       min(cosine_similarity(c.e, b.e)) AS min_cos_f16
FROM on_cpu c JOIN on_gpu_f32 a USING (path) JOIN on_gpu_f16 b USING (path)
WHERE c.e IS NOT NULL
UNION ALL
SELECT 'text', count(*), min(cosine_similarity(c.e, a.e)), min(cosine_similarity(c.e, b.e))
FROM text_on_cpu c JOIN text_on_gpu_f32 a USING (prompt) JOIN text_on_gpu_f16 b USING (prompt);
