//! Many queries at once on one model, and cancelling work in progress.
//! Both read process-wide state (the model cache's load count, the images
//! encoded; cancelling stops every CLIP call in the process), so they live
//! in a test binary of their own, away from `it/`, and run one at a time.

#[path = "../common.rs"]
mod common;

use std::sync::Arc;

use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;
use common::*;
use datafusion::arrow::array::{BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion_clip::engine::model_cache::load_count;
use datafusion_clip::engine::{cancel_running_work, progress};
use tokio::sync::Mutex;

/// The tests below must not overlap: each reads global counters.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// `imgs(image)` with `n` images in one batch (one function call for all).
fn register_images(ctx: &SessionContext, n: u32) {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Binary,
        true,
    )]));
    let images = BinaryArray::from_iter_values((0..n).map(|i| png_bytes(24 + i % 9, 30, i)));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(images)]).unwrap();
    ctx.register_table(
        "imgs",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_queries_share_one_load_and_agree() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // A model no other test has loaded, so the first queries race to load it.
    let dir = tempfile::tempdir().unwrap();
    write_random_model(dir.path(), &ClipConfig::tiny(), 7).unwrap();
    let model = dir.path().display().to_string();
    let loads_before = load_count();

    let mut tasks = Vec::new();
    for q in 0..8 {
        let model = model.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = context();
            register_images(&ctx, 6);
            query(&ctx, &format!("SET clip.batch_size = {}", 1 + q % 3))
                .await
                .unwrap();
            query_text(
                &ctx,
                &format!(
                    "SELECT clip_zero_shot('{model}', image, ['cat', 'dog', 'bird'])['label'] AS l FROM imgs"
                ),
            )
            .await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(load_count() - loads_before, 1, "one load for eight queries");
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "every query gets the same predictions"
    );
    assert_eq!(table_rows(&answers[0]).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_stops_work_in_progress_and_the_model_stays_usable() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let ctx = context();
    let total = 400;
    register_images(&ctx, total);
    // One image per forward pass: the call has 400 passes to stop between.
    query(&ctx, "SET clip.batch_size = 1").await.unwrap();
    let m = tiny_model();
    // Load the model first so the counter below only moves for this query.
    query(
        &ctx,
        &format!("SELECT clip_embed_text('{m}', 'warm up') AS e"),
    )
    .await
    .unwrap();

    let start = progress().images_encoded;
    let sql = format!("SELECT clip_embed_image('{m}', image) FROM imgs");
    let running = {
        let ctx = ctx.clone();
        tokio::spawn(async move { query(&ctx, &sql).await })
    };
    // Wait (without sleeping) until the call is under way.
    while progress().images_encoded == start {
        tokio::task::yield_now().await;
    }
    cancel_running_work();
    let err = running.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("cancelled"), "{err}");
    let done = progress().images_encoded - start;
    assert!(
        done < u64::from(total),
        "{done} of {total} images were encoded after cancelling"
    );

    // Later queries are not affected.
    let text = query_text(
        &ctx,
        &format!("SELECT count(clip_embed_image('{m}', image)) AS n FROM imgs"),
    )
    .await;
    assert_eq!(table_rows(&text)[0][0], total.to_string());
}
