//! Many queries at once on one model, and stopping work in progress: a
//! dropped query stops its own work, `cancel_running_work` everyone's.
//! They read process-wide state (the model cache's load count, the images
//! encoded, a model's pass count), so they live in a test binary of their
//! own, away from `it/`, and run one at a time.

#[path = "../common.rs"]
mod common;

#[cfg(feature = "ballista")]
mod cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;
use common::*;
use datafusion::arrow::array::{BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion_clip::{cancel_running_work, loaded_models, model_loads, progress};
use tokio::sync::Mutex;

/// The tests below must not overlap: each reads global counters.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// `imgs(image)` with `n` images in one batch (one function call for all).
fn register_images(ctx: &SessionContext, n: u32) {
    register_images_as(ctx, "imgs", n);
}

/// `name(image)` with `n` images in one batch.
fn register_images_as(ctx: &SessionContext, name: &str, n: u32) {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Binary,
        true,
    )]));
    let images = BinaryArray::from_iter_values((0..n).map(|i| png_bytes(24 + i % 9, 30, i)));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(images)]).unwrap();
    ctx.register_table(
        name,
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
    let loads_before = model_loads();

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
    assert_eq!(
        model_loads() - loads_before,
        1,
        "one load for eight queries"
    );
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

/// A model loaded in this process, watched through the library's
/// `loaded_models()`: what its thread has done so far.
struct ModelThread {
    name: String,
}

impl ModelThread {
    fn status(&self) -> datafusion_clip::LoadedModelStatus {
        loaded_models()
            .into_iter()
            .find(|m| m.model == self.name)
            .unwrap_or_else(|| panic!("{} is not loaded", self.name))
    }

    /// Image forward passes it has run.
    fn image_passes(&self) -> usize {
        self.status().image_passes
    }

    /// Calls encoding images with it right now.
    fn image_callers(&self) -> usize {
        self.status().image_calls_in_progress
    }
}

/// A tiny model of its own (so its passes can be counted apart from any
/// other query's), loaded, and the thread it runs on.
async fn own_model(seed: u64) -> (tempfile::TempDir, String, ModelThread) {
    let dir = tempfile::tempdir().unwrap();
    write_random_model(dir.path(), &ClipConfig::tiny(), seed).unwrap();
    let name = dir.path().display().to_string();
    query(
        &context(),
        &format!("SELECT clip_embed_text('{name}', 'load')"),
    )
    .await
    .unwrap();
    let thread = ModelThread { name: name.clone() };
    assert_eq!(thread.image_passes(), 0, "a model of its own");
    (dir, name, thread)
}

/// Wait (polling, without sleeping) until `done`, failing after a minute.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::task::yield_now().await;
    }
}

/// Query A (400 images, one per forward pass, on model A) and query B
/// (400 images on model B) run together; A is dropped mid-run, as a
/// service drops the query of a client that went away. A's passes stop
/// within one forward pass; B finishes with the figures it has alone.
async fn dropping_one_query_leaves_the_other(ctx_a: SessionContext, ctx_b: SessionContext) {
    let total = 400;
    register_images_as(&ctx_a, "imgs_a", total);
    register_images_as(&ctx_b, "imgs_b", total);
    for ctx in [&ctx_a, &ctx_b] {
        query(ctx, "SET clip.batch_size = 1").await.unwrap();
    }
    let (_dir_a, model_a, worker_a) = own_model(21).await;
    let (_dir_b, model_b, worker_b) = own_model(22).await;
    let sql_a = format!("SELECT clip_embed_image('{model_a}', image) AS e FROM imgs_a");
    let sql_b = format!(
        "SELECT clip_zero_shot('{model_b}', image, ['cat', 'dog', 'bird'])['label'] AS l FROM imgs_b"
    );
    let alone = query_text(&ctx_b, &sql_b).await;

    let (a_start, b_start) = (worker_a.image_passes(), worker_b.image_passes());
    let a = {
        let ctx = ctx_a.clone();
        tokio::spawn(async move { query(&ctx, &sql_a).await })
    };
    let b = {
        let ctx = ctx_b.clone();
        tokio::spawn(async move { query_text(&ctx, &sql_b).await })
    };
    wait_until("both queries are under way", || {
        worker_a.image_passes() >= a_start + 2 && worker_b.image_passes() > b_start
    })
    .await;
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled(), "A was dropped");
    let at_drop = worker_a.image_passes();
    wait_until("A's CLIP call has returned", || {
        worker_a.image_callers() == 0
    })
    .await;
    let after = worker_a.image_passes();
    assert!(
        after <= at_drop + 1,
        "A ran {} forward passes after it was dropped",
        after - at_drop
    );
    assert!(
        after - a_start < total as usize,
        "A ran all {total} passes: it was not stopped"
    );

    assert_eq!(
        b.await.unwrap(),
        alone,
        "B's figures are those it has alone"
    );
    // A's session and model still work.
    let count = query_text(
        &ctx_a,
        &format!("SELECT count(clip_embed_image('{model_a}', image)) AS n FROM imgs_a"),
    )
    .await;
    assert_eq!(table_rows(&count)[0][0], total.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_query_stops_its_work_not_the_other_queries_of_its_session() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let ctx = context();
    dropping_one_query_leaves_the_other(ctx.clone(), ctx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_query_stops_its_work_not_another_sessions() {
    let _serial = ONE_AT_A_TIME.lock().await;
    dropping_one_query_leaves_the_other(context(), context()).await;
}
