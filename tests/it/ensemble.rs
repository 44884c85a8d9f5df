//! The ensemble functions: `array_argmax` and the `weighted_avg_list`
//! aggregate, on hand-made probability vectors (exact values, ties, NULLs,
//! several partitions) and on two models' `clip_zero_shot_probs`.

use std::sync::Arc;

use crate::common::*;
use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;
use datafusion::arrow::array::{Float64Array, ListArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argmax_takes_the_first_largest() {
    let ctx = context();
    let rows = table_rows(
        &query_text(
            &ctx,
            "SELECT array_argmax([0.1, 0.7, 0.7, 0.2]) AS tie, \
                    array_argmax(arrow_cast([3.0, -1.0], 'FixedSizeList(2, Float32)')) AS fixed, \
                    array_argmax(CAST([] AS FLOAT[])) AS empty, \
                    array_argmax(CAST(NULL AS FLOAT[])) AS none",
        )
        .await,
    );
    assert_eq!(rows[0], ["1", "0", "", ""]);
    let err = query(&ctx, "SELECT array_argmax(['a'])")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("list of floats"), "{err}");
}

/// One row of `probs`: key, model, probabilities, weight.
type ProbRow<'a> = (&'a str, &'a str, Option<Vec<f32>>, Option<f64>);

/// `probs(key, model, p, w)`, one partition per row.
fn register_probs(ctx: &SessionContext, rows: &[ProbRow]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new(
            "p",
            DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
            true,
        ),
        Field::new("w", DataType::Float64, true),
    ]));
    // One partition per row, so the aggregate merges partial states.
    let partitions: Vec<Vec<RecordBatch>> = rows
        .iter()
        .map(|(key, model, p, w)| {
            let list = ListArray::from_iter_primitive::<Float32Type, _, _>([p
                .as_ref()
                .map(|v| v.iter().map(|x| Some(*x)).collect::<Vec<_>>())]);
            vec![
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(vec![*key])),
                        Arc::new(StringArray::from(vec![*model])),
                        Arc::new(list),
                        Arc::new(Float64Array::from(vec![*w])),
                    ],
                )
                .unwrap(),
            ]
        })
        .collect();
    ctx.register_table(
        "probs",
        Arc::new(MemTable::try_new(schema, partitions).unwrap()),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_mean_is_exact_across_partitions_and_skips_nulls() {
    let ctx = context();
    register_probs(
        &ctx,
        &[
            // x: (1 * [0.6, 0.4] + 3 * [0.2, 0.8]) / 4 = [0.3, 0.7]
            ("x", "A", Some(vec![0.6, 0.4]), Some(1.0)),
            ("x", "B", Some(vec![0.2, 0.8]), Some(3.0)),
            ("x", "C", None, Some(5.0)),
            ("x", "D", Some(vec![0.9, 0.1]), None),
            // y: an exact tie -> the first class
            ("y", "A", Some(vec![0.25, 0.75]), Some(1.0)),
            ("y", "B", Some(vec![0.75, 0.25]), Some(1.0)),
            // z: all weight zero -> NULL
            ("z", "A", Some(vec![0.5, 0.5]), Some(0.0)),
        ],
    );
    let rows = table_rows(
        &query_text(
            &ctx,
            "SELECT key, weighted_avg_list(p, w) AS mean, array_argmax(weighted_avg_list(p, w)) AS argmax \
             FROM probs GROUP BY key ORDER BY key",
        )
        .await,
    );
    assert_eq!(rows[0], ["x", "[0.3, 0.7]", "1"]);
    assert_eq!(rows[1], ["y", "[0.5, 0.5]", "0"]);
    assert_eq!(rows[2], ["z", "", ""]);

    let ctx = context();
    register_probs(
        &ctx,
        &[
            ("x", "A", Some(vec![0.6, 0.4]), Some(1.0)),
            ("x", "B", Some(vec![0.2, 0.3, 0.5]), Some(1.0)),
        ],
    );
    let err = query(&ctx, "SELECT weighted_avg_list(p, w) FROM probs")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("different lengths (2 and 3)") || err.contains("different lengths (3 and 2)"),
        "{err}"
    );
    let err = query(&ctx, "SELECT weighted_avg_list(p, -w) FROM probs")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-negative"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_of_two_models_weighted_one_zero_is_the_first_model() {
    let second = tempfile::tempdir().unwrap();
    write_random_model(second.path(), &ClipConfig::tiny(), 1234).unwrap();
    let images = pets_folder();
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{}'",
            images.path().display()
        ),
    )
    .await
    .unwrap();
    let (a, b) = (tiny_model(), second.path().display().to_string());
    let labels = "['cat', 'dog', 'bird']";
    let sql = format!(
        "WITH per_model AS (
           SELECT path, 'a' AS model, clip_zero_shot_probs('{a}', image, {labels}) AS p FROM pets
           UNION ALL
           SELECT path, 'b' AS model, clip_zero_shot_probs('{b}', image, {labels}) AS p FROM pets),
         weights AS (SELECT * FROM (VALUES ('a', {wa}), ('b', {wb})) AS t(model, w)),
         ensemble AS (
           SELECT path, array_argmax(weighted_avg_list(p, w)) AS predicted
           FROM per_model JOIN weights USING (model) GROUP BY path)
         SELECT count(*) AS n,
                sum(CASE WHEN e.predicted = s.p['label_index'] THEN 1 ELSE 0 END) AS same_as_a
         FROM ensemble e JOIN (SELECT path, clip_zero_shot('{a}', image, {labels}) AS p FROM pets) s
           ON e.path = s.path",
        wa = "1.0",
        wb = "0.0",
    );
    let rows = table_rows(&query_text(&ctx, &sql).await);
    assert_eq!(rows[0], ["5", "5"]);
}
