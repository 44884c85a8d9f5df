//! Plans that scan IMAGEFOLDER, WEBDATASET and CIFAR tables survive being
//! turned into bytes with our extension codecs and run in another session
//! (which has the CLIP functions but not the tables): the same rows, and
//! for physical plans the same partitioning. This is how a plan reaches
//! Ballista executors.

use std::sync::Arc;

use crate::common::*;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use datafusion_clip::{ClipLogicalCodec, ClipPhysicalCodec};
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};

/// The three tables, in a session planning with 2 partitions.
async fn tables() -> (SessionContext, Vec<tempfile::TempDir>) {
    let ctx = context();
    query(&ctx, "SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();
    let pets = pets_folder();
    let shards = tempfile::tempdir().unwrap();
    standin_shards(shards.path(), 10);
    let records: Vec<(u8, u32)> = (0..9).map(|i| ((i % 10) as u8, i)).collect();
    let cifar = folder(&[
        ("c/data_batch_1.bin", cifar10_batch(&records[..5])),
        ("c/test_batch.bin", cifar10_batch(&records[5..])),
    ]);
    for sql in [
        format!(
            "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{}' \
             OPTIONS ('skip_unreadable' 'true')",
            pets.path().display()
        ),
        format!(
            "CREATE EXTERNAL TABLE shards STORED AS WEBDATASET LOCATION '{}/'",
            shards.path().display()
        ),
        format!(
            "CREATE EXTERNAL TABLE cifar STORED AS CIFAR LOCATION '{}/c/'",
            cifar.path().display()
        ),
    ] {
        query(&ctx, &sql).await.unwrap();
    }
    (ctx, vec![pets, shards, cifar])
}

fn queries() -> Vec<String> {
    let model = tiny_model();
    vec![
        format!(
            "SELECT path, label, clip_zero_shot('{model}', image, ['cat', 'dog'])['label_index'] AS p \
             FROM pets ORDER BY path"
        ),
        format!(
            "SELECT key, label, clip_zero_shot('{model}', image, ['a', 'b', 'c'])['label_index'] AS p \
             FROM shards ORDER BY key"
        ),
        "SELECT key, split, label, clip_image_error(image) IS NULL AS decodes FROM cifar ORDER BY key".to_string(),
        // A limit, and a join of two of our scans.
        "SELECT s.key, c.key FROM (SELECT key, label FROM shards ORDER BY key LIMIT 3) s \
         JOIN (SELECT key, label FROM cifar) c ON CAST(s.label AS INT) = c.label ORDER BY 1, 2"
            .to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_plans_travel_with_their_image_tables() {
    let (ctx, _dirs) = tables().await;
    // The receiving side knows the functions but none of the tables.
    let elsewhere = context();
    for sql in queries() {
        let frame = ctx.sql(&sql).await.unwrap();
        let plan = frame.logical_plan().clone();
        let expected = pretty(&frame.collect().await.unwrap());
        let got = run_elsewhere(&plan, &elsewhere).await;
        assert_eq!(got, expected, "{sql}");
        assert!(expected.lines().count() > 4, "{sql}: {expected}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_plans_travel_with_their_scans_and_partitioning() {
    let (ctx, _dirs) = tables().await;
    let elsewhere = context();
    let mut scans_seen = 0;
    for sql in queries() {
        let plan = ctx
            .sql(&sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        // Encoded before it runs, as a scheduler does: a plan that has run
        // carries what its dynamic filters learned (a TopK's bound, say).
        let bytes = physical_plan_to_bytes_with_extension_codec(
            Arc::clone(&plan),
            &ClipPhysicalCodec::default(),
        )
        .unwrap();
        let decoded = physical_plan_from_bytes_with_extension_codec(
            &bytes,
            &elsewhere.task_ctx(),
            &ClipPhysicalCodec::default(),
        )
        .unwrap();
        let shown = |p: &Arc<dyn ExecutionPlan>| displayable(p.as_ref()).indent(true).to_string();
        // Same operators, same scans, same partitions and files per scan.
        assert_eq!(shown(&decoded), shown(&plan), "{sql}");
        scans_seen += ["ImageFolderExec", "WebDatasetExec", "CifarExec"]
            .iter()
            .filter(|name| shown(&plan).contains(*name))
            .count();
        let expected = pretty(&collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap());
        let got = pretty(&collect(decoded, elsewhere.task_ctx()).await.unwrap());
        assert_eq!(got, expected, "{sql}");
    }
    assert_eq!(scans_seen, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_tables_travel_whole_with_their_partitions() {
    // What a benchmark file's CREATE TABLE … AS makes: embeddings (lists of
    // floats), NULLs, several partitions.
    let ctx = context();
    query(&ctx, "SET datafusion.execution.target_partitions = 3")
        .await
        .unwrap();
    query(
        &ctx,
        "CREATE TABLE emb AS SELECT * FROM (VALUES ('a', [0.5, -1.0]), ('b', NULL), ('c', [2.0, 3.25])) \
         AS t(key, embedding)",
    )
    .await
    .unwrap();
    let sql = "SELECT key, embedding FROM emb ORDER BY key";
    let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
    let got = run_elsewhere(&plan, &context()).await;
    let expected = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    assert_eq!(got, pretty(&expected));
    assert!(got.contains("[0.5, -1.0]"), "{got}");
}

/// `plan` encoded with our logical codec, decoded in `elsewhere` and run
/// there, as a pretty table.
async fn run_elsewhere(
    plan: &datafusion::logical_expr::LogicalPlan,
    elsewhere: &SessionContext,
) -> String {
    let codec = ClipLogicalCodec::default();
    let bytes = logical_plan_to_bytes_with_extension_codec(plan, &codec).unwrap();
    let decoded =
        logical_plan_from_bytes_with_extension_codec(&bytes, &elsewhere.task_ctx(), &codec)
            .unwrap();
    let got = elsewhere
        .execute_logical_plan(decoded)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    pretty(&got)
}

fn pretty(batches: &[datafusion::arrow::array::RecordBatch]) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}
