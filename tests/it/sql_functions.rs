//! Every CLIP SQL function end to end through a `SessionContext`, with a
//! tiny random-weight model loaded through the real loader.

use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, Float32Array, Int64Array, RecordBatch, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float32Type, Int32Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// Register a table `imgs(id, image)` of in-memory images.
fn register_images(ctx: &SessionContext, images: Vec<Option<Vec<u8>>>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("image", DataType::Binary, true),
    ]));
    let ids = Int64Array::from_iter_values(0..images.len() as i64);
    let bytes = BinaryArray::from_iter(images.iter().map(|b| b.as_deref()));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(bytes)]).unwrap();
    ctx.register_table(
        "imgs",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
}

fn embedding_rows(batches: &[RecordBatch], column: usize) -> Vec<Option<Vec<f32>>> {
    let mut rows = Vec::new();
    for b in batches {
        let list = b.column(column).as_fixed_size_list();
        for i in 0..list.len() {
            rows.push((!list.is_null(i)).then(|| {
                list.value(i)
                    .as_primitive::<Float32Type>()
                    .values()
                    .to_vec()
            }));
        }
    }
    rows
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_image_gives_unit_vectors_and_null_for_bad_or_null_images() {
    let ctx = context();
    register_images(
        &ctx,
        vec![
            Some(png_bytes(40, 30, 1)),
            Some(jpeg_bytes(64, 20, 2)),
            Some(gray_png_bytes(10, 50)),
            Some(rgba_png_bytes(31, 17)),
            None,
            Some(b"definitely not an image".to_vec()),
        ],
    );
    let sql = format!(
        "SELECT clip_embed_image('{}', image) AS e FROM imgs ORDER BY id",
        tiny_model()
    );
    let batches = query(&ctx, &sql).await.unwrap();
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &DataType::FixedSizeList(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            TINY_DIM as i32
        )
    );
    let rows = embedding_rows(&batches, 0);
    assert_eq!(rows.len(), 6);
    for row in &rows[..4] {
        let v = row.as_ref().expect("decodable image has an embedding");
        assert_eq!(v.len(), TINY_DIM);
        assert!((norm(v) - 1.0).abs() < 1e-5);
    }
    assert_ne!(rows[0], rows[1], "different images, different embeddings");
    assert!(rows[4].is_none(), "NULL image gives NULL");
    assert!(rows[5].is_none(), "undecodable image gives NULL by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_setting_makes_bad_images_fail_the_query() {
    let ctx = context();
    register_images(
        &ctx,
        vec![Some(png_bytes(8, 8, 1)), Some(b"garbage".to_vec())],
    );
    query(&ctx, "SET clip.on_error = 'error'").await.unwrap();
    let sql = format!(
        "SELECT clip_embed_image('{}', image) FROM imgs",
        tiny_model()
    );
    let err = query(&ctx, &sql).await.unwrap_err().to_string();
    assert!(err.contains("row 1"), "{err}");
    assert!(err.contains("not a supported image"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_do_not_depend_on_batch_size() {
    let ctx = context();
    let images: Vec<Option<Vec<u8>>> = (0..7).map(|i| Some(png_bytes(20 + i, 30, i))).collect();
    register_images(&ctx, images);
    let sql = format!(
        "SELECT clip_embed_image('{}', image) FROM imgs ORDER BY id",
        tiny_model()
    );
    query(&ctx, "SET clip.batch_size = 1").await.unwrap();
    let one = embedding_rows(&query(&ctx, &sql).await.unwrap(), 0);
    query(&ctx, "SET clip.batch_size = 64").await.unwrap();
    let all = embedding_rows(&query(&ctx, &sql).await.unwrap(), 0);
    for (a, b) in one.iter().zip(&all) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        let max = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-5, "batch 1 vs 64 differ by {max}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_text_pads_per_batch_without_changing_results() {
    let ctx = context();
    let m = tiny_model();
    // Alone, each prompt is padded to its own length; together, to the longest.
    let alone = format!("SELECT clip_embed_text('{m}', 'a cat')");
    let together = format!(
        "SELECT clip_embed_text('{m}', t) FROM (VALUES ('a cat'), ('a much longer prompt about a small grey cat on a sofa')) AS v(t)"
    );
    query(&ctx, "SET clip.batch_size = 8").await.unwrap();
    let a = embedding_rows(&query(&ctx, &alone).await.unwrap(), 0);
    let b = embedding_rows(&query(&ctx, &together).await.unwrap(), 0);
    let (a, b) = (a[0].as_ref().unwrap(), b[0].as_ref().unwrap());
    assert!((norm(a) - 1.0).abs() < 1e-5);
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-5, "padding changed the embedding by {max}");
    let nulls = embedding_rows(
        &query(&ctx, &format!("SELECT clip_embed_text('{m}', NULL)"))
            .await
            .unwrap(),
        0,
    );
    assert_eq!(nulls, vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_shot_returns_label_index_probability_and_top5() {
    let ctx = context();
    register_images(&ctx, (0..5).map(|i| Some(png_bytes(30, 30, i))).collect());
    let labels = "['cat', 'dog', 'bird', 'fish', 'horse', 'frog', 'truck']";
    let sql = format!(
        "SELECT clip_zero_shot('{}', image, {labels}, ['a photo of a {{}}.', 'a drawing of a {{c}}.']) AS p FROM imgs ORDER BY id",
        tiny_model()
    );
    let batches = query(&ctx, &sql).await.unwrap();
    let expected = Fields::from(vec![
        Field::new("label", DataType::Utf8, true),
        Field::new("label_index", DataType::Int32, true),
        Field::new("probability", DataType::Float32, true),
        Field::new(
            "top5",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
    ]);
    assert_eq!(
        batches[0].schema().field(0).data_type(),
        &DataType::Struct(expected)
    );
    let names = ["cat", "dog", "bird", "fish", "horse", "frog", "truck"];
    let mut rows = 0;
    for b in &batches {
        let s: &StructArray = b.column(0).as_struct();
        let label = s.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let index = s.column(1).as_primitive::<Int32Type>();
        let prob = s.column(2).as_any().downcast_ref::<Float32Array>().unwrap();
        let top5 = s.column(3).as_list::<i32>();
        for i in 0..s.len() {
            let idx = index.value(i) as usize;
            assert_eq!(label.value(i), names[idx]);
            assert!(prob.value(i) > 0.0 && prob.value(i) <= 1.0);
            let t = top5.value(i);
            let t = t.as_primitive::<Int32Type>();
            assert_eq!(t.len(), 5);
            assert_eq!(t.value(0) as usize, idx, "top-1 of top5 is the label");
            rows += 1;
        }
    }
    assert_eq!(rows, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_shot_on_embeddings_matches_zero_shot_on_images_and_probs_agree() {
    let ctx = context();
    register_images(&ctx, (0..4).map(|i| Some(jpeg_bytes(48, 40, i))).collect());
    let m = tiny_model();
    let labels = "['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog']";
    let sql = format!(
        "SELECT clip_zero_shot('{m}', image, {labels})['label_index'] AS direct,
                clip_zero_shot('{m}', clip_embed_image('{m}', image), {labels})['label_index'] AS via_embedding,
                clip_zero_shot('{m}', image, {labels})['probability'] AS p,
                clip_zero_shot_probs('{m}', image, {labels}) AS probs
         FROM imgs ORDER BY id"
    );
    let batches = query(&ctx, &sql).await.unwrap();
    for b in &batches {
        let direct = b.column(0).as_primitive::<Int32Type>();
        let via = b.column(1).as_primitive::<Int32Type>();
        let p = b.column(2).as_primitive::<Float32Type>();
        let probs = b.column(3).as_list::<i32>();
        for i in 0..b.num_rows() {
            assert_eq!(direct.value(i), via.value(i));
            let row = probs.value(i);
            let row = row.as_primitive::<Float32Type>();
            assert_eq!(row.len(), 6);
            let sum: f32 = row.values().iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
            let best = row.values()[direct.value(i) as usize];
            assert!((best - p.value(i)).abs() < 1e-6);
            assert!(row.values().iter().all(|&x| x <= best));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_from_a_scalar_subquery_work_like_a_literal_list() {
    let ctx = context();
    register_images(&ctx, (0..3).map(|i| Some(png_bytes(25, 25, i))).collect());
    query(
        &ctx,
        "CREATE TABLE classes AS VALUES (0, 'cat'), (1, 'dog'), (2, 'bird')",
    )
    .await
    .unwrap();
    let m = tiny_model();
    let literal = format!(
        "SELECT clip_zero_shot('{m}', image, ['cat', 'dog', 'bird'])['label'] FROM imgs ORDER BY id"
    );
    let subquery = format!(
        "SELECT clip_zero_shot('{m}', image, (SELECT array_agg(column2 ORDER BY column1) FROM classes))['label'] \
         FROM imgs ORDER BY id"
    );
    let literal = table_rows(&query_text(&ctx, &literal).await);
    assert_eq!(literal.len(), 3);
    assert_eq!(literal, table_rows(&query_text(&ctx, &subquery).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosine_similarity_of_text_and_image_embeddings() {
    let ctx = context();
    let m = tiny_model();
    let out = query(
        &ctx,
        &format!(
            "SELECT cosine_similarity(clip_embed_text('{m}', 'a cat'), clip_embed_text('{m}', 'a cat')) AS same,
                    cosine_similarity([1.0, 0.0], [1.0, 1.0]) AS diag,
                    cosine_similarity([0.0, 0.0], [1.0, 1.0]) AS zero"
        ),
    )
    .await
    .unwrap();
    let b = &out[0];
    assert!((b.column(0).as_primitive::<Float32Type>().value(0) - 1.0).abs() < 1e-5);
    assert!(
        (b.column(1).as_primitive::<Float32Type>().value(0) - std::f32::consts::FRAC_1_SQRT_2)
            .abs()
            < 1e-6
    );
    assert!(b.column(2).is_null(0));
    let err = query(
        &ctx,
        "SELECT cosine_similarity([1.0, 2.0], [1.0, 2.0, 3.0])",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("different lengths"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_models_lists_the_registry() {
    let ctx = context();
    let text = query_text(
        &ctx,
        "SELECT name, family, embed_dim, image_size, round(parameters / 1e6, 2), weights, supported \
         FROM clip_models()",
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 9, "{text}");
    for expected in [
        [
            "ViT-B/32",
            "ViT",
            "512",
            "224",
            "151.28",
            "hf:openai/clip-vit-base-patch32",
            "true",
        ],
        [
            "ViT-L/14@336px",
            "ViT",
            "768",
            "336",
            "427.94",
            "hf:openai/clip-vit-large-patch14-336",
            "true",
        ],
        [
            "RN50",
            "ResNet",
            "1024",
            "224",
            "102.01",
            "hf:timm/resnet50_clip.openai",
            "true",
        ],
    ] {
        assert!(
            rows.iter().any(|r| r == &expected),
            "missing {expected:?} in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_and_visible() {
    let ctx = context();
    query(&ctx, "SET clip.batch_size = 7").await.unwrap();
    let text = query_text(
        &ctx,
        "SELECT value FROM information_schema.df_settings WHERE name = 'clip.batch_size'",
    )
    .await;
    assert!(text.contains("| 7 "), "{text}");
    let err = query(&ctx, "SET clip.device = 'tpu'")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("clip.device must be"), "{err}");
    let err = query(&ctx, "SET clip.batch_size = 0")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("positive"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_errors_name_the_problem() {
    let ctx = context();
    register_images(&ctx, vec![Some(png_bytes(8, 8, 0))]);
    let m = tiny_model();
    let cases = [
        (
            "SELECT clip_embed_image('ViT-Q/99', image) FROM imgs".to_string(),
            "unknown model 'ViT-Q/99'",
        ),
        (
            format!("SELECT clip_embed_image('{m}', 'cat.jpg')"),
            "encoded image bytes",
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, []) FROM imgs"),
            "labels list is empty",
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, ['cat'], ['a photo']) FROM imgs"),
            "no placeholder",
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, 'cat') FROM imgs"),
            "list of strings",
        ),
        (
            format!("SELECT clip_zero_shot('{m}', [1.0, 2.0], ['cat'])"),
            "2 dimensions",
        ),
        (
            "SELECT clip_embed_text(name, 'x') FROM (VALUES ('a')) AS t(name)".to_string(),
            "constant string",
        ),
    ];
    for (sql, expected) in cases {
        let err = match query(&ctx, &sql).await {
            Ok(_) => panic!("{sql} should fail"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(expected),
            "{sql}: expected '{expected}' in: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_with_hugging_face_image_structs() {
    // Hugging Face `datasets` stores images as struct<bytes: binary, path: string>.
    let dir = tempfile::tempdir().unwrap();
    let image_field = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("img", DataType::Struct(image_field.clone()), true),
        Field::new("label", DataType::Int64, false),
    ]));
    let bytes = BinaryArray::from_iter_values([
        png_bytes(32, 32, 1),
        png_bytes(32, 32, 2),
        png_bytes(32, 32, 3),
    ]);
    let paths = StringArray::from(vec![Some("a.png"), Some("b.png"), None]);
    let img =
        StructArray::try_new(image_field, vec![Arc::new(bytes), Arc::new(paths)], None).unwrap();
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(img), Arc::new(Int64Array::from(vec![0, 1, 0]))],
    )
    .unwrap();
    let ctx = context();
    let path = dir.path().join("test.parquet");
    ctx.read_batch(batch)
        .unwrap()
        .write_parquet(path.to_str().unwrap(), Default::default(), None)
        .await
        .unwrap();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE hf STORED AS PARQUET LOCATION '{}'",
            path.display()
        ),
    )
    .await
    .unwrap();
    let text = query_text(
        &ctx,
        &format!(
            "SELECT label, count(*) AS n, count(clip_zero_shot('{}', img['bytes'], ['airplane', 'automobile'])['label']) AS predicted \
             FROM hf GROUP BY label ORDER BY label",
            tiny_model()
        ),
    )
    .await;
    assert!(text.contains("| 0     | 2 | 2         |"), "{text}");
    assert!(text.contains("| 1     | 1 | 1         |"), "{text}");
}

// `#[tokio::test]` without a flavor is a current-thread runtime, as many
// services' tests are: the functions must not rely on `block_in_place`.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let ctx = context();
    register_images(&ctx, vec![Some(png_bytes(16, 16, 1)), None]);
    let sql = format!(
        "SELECT clip_zero_shot('{}', image, ['cat', 'dog'])['label'] AS l FROM imgs ORDER BY id",
        tiny_model()
    );
    let rows = table_rows(&query_text(&ctx, &sql).await);
    assert_eq!(rows.len(), 2);
    assert!(rows[0][0] == "cat" || rows[0][0] == "dog", "{rows:?}");
    assert!(rows[1][0].is_empty(), "a NULL image gives NULL: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_top_k_ranks_candidates_best_first() {
    let ctx = context();
    // Scores 0.0, 0.6, 1.0, 0.6: best first, equal scores by position.
    let text = query_text(
        &ctx,
        "SELECT clip_top_k([1.0, 0.0], [[0.0, 1.0], [0.6, 0.8], [1.0, 0.0], [0.6, 0.8]], 3) AS top",
    )
    .await;
    assert_eq!(table_rows(&text), [["[2, 1, 3]"]]);

    // Candidates from a scalar subquery, held once for every query; a NULL
    // candidate is never ranked, a NULL query gives NULL, k past the end
    // gives every candidate.
    query(
        &ctx,
        "CREATE TABLE cands AS SELECT * FROM (VALUES (0, [1.0, 0.0]), (1, NULL), (2, [0.0, 1.0])) AS t(id, v)",
    )
    .await
    .unwrap();
    let text = query_text(
        &ctx,
        "SELECT q, clip_top_k(v, (SELECT array_agg(v ORDER BY id) FROM cands), 10) AS top \
         FROM (VALUES (1, [0.2, 0.9]), (2, NULL), (3, [0.9, 0.2])) AS t(q, v) ORDER BY q",
    )
    .await;
    assert_eq!(
        table_rows(&text),
        [["1", "[2, 0]"], ["2", ""], ["3", "[0, 2]"]]
    );

    // Images ranked for a caption by the tiny model: its own embedding is
    // its own best match.
    let m = tiny_model();
    register_images(
        &ctx,
        (0..5u32).map(|i| Some(png_bytes(40 + i, 30, i))).collect(),
    );
    let text = query_text(
        &ctx,
        &format!(
            "WITH e AS (SELECT id AS i, clip_embed_image('{m}', image) AS v FROM imgs) \
             SELECT i, clip_top_k(v, (SELECT array_agg(v ORDER BY i) FROM e), 1)[1] AS best FROM e ORDER BY i"
        ),
    )
    .await;
    for row in table_rows(&text) {
        assert_eq!(row[0], row[1], "{text}");
    }

    for (sql, message) in [
        (
            "SELECT clip_top_k([1.0], [[1.0]], 0)",
            "k must be at least 1",
        ),
        (
            "SELECT clip_top_k([1.0, 2.0], [[1.0]], 1)",
            "a query has 2 values but the candidates have 1",
        ),
        (
            "SELECT clip_top_k([1.0], [1.0], 1)",
            "the candidates must be a list of float lists",
        ),
        (
            "SELECT clip_top_k([1.0], [[1.0]], 'a')",
            "k must be an integer",
        ),
    ] {
        let err = query(&ctx, sql).await.unwrap_err().to_string();
        assert!(err.contains(message), "{sql}: {err}");
    }
}
