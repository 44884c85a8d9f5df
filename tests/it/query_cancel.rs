//! The plan rewrite that lets a dropped query stop its own CLIP work
//! (`datafusion_clip::query_cancel`): which plans it touches, and that the
//! rewritten plans still give the right answers. Dropping a running query
//! is tested in `process_wide/`.

use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;

fn register_images(ctx: &SessionContext, n: u32) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("image", DataType::Binary, true),
    ]));
    let ids = datafusion::arrow::array::Int32Array::from_iter_values(0..n as i32);
    let images = BinaryArray::from_iter_values((0..n).map(|i| png_bytes(24 + i % 9, 30, i)));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(images)]).unwrap();
    let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    ctx.register_table("imgs", Arc::new(table)).unwrap();
}

async fn physical_plan(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let plan = physical_plan_of(ctx, sql).await;
    displayable(plan.as_ref())
        .indent(false)
        .to_string()
        .lines()
        .map(|line| line.trim().to_string())
        .collect()
}

/// The operator name of each line, e.g. `ProjectionExec`.
fn operators(plan: &[String]) -> Vec<&str> {
    plan.iter()
        .map(|line| line.split(':').next().unwrap_or(line))
        .collect()
}

#[tokio::test]
async fn plans_that_run_a_model_are_scoped_and_others_are_untouched() {
    let ctx = context();
    register_images(&ctx, 4);
    let m = tiny_model();

    // Projection: the root cancels on drop, the projection is scoped.
    let plan = physical_plan(
        &ctx,
        &format!("SELECT clip_embed_image('{m}', image) FROM imgs"),
    )
    .await;
    let ops = operators(&plan);
    assert_eq!(ops[0], "ClipCancelOnDropExec", "{plan:#?}");
    let projection = ops.iter().position(|op| *op == "ProjectionExec").unwrap();
    assert_eq!(ops[projection - 1], "ClipQueryScopeExec", "{plan:#?}");
    assert_eq!(
        ops.iter().filter(|op| **op == "ClipQueryScopeExec").count(),
        1
    );

    // A filter and an aggregate input are scoped where they are evaluated.
    let plan = physical_plan(
        &ctx,
        &format!(
            "SELECT count(clip_embed_image('{m}', image)) FROM imgs \
             WHERE clip_zero_shot('{m}', image, ['cat', 'dog'])['label'] = 'cat'"
        ),
    )
    .await;
    let ops = operators(&plan);
    assert_eq!(ops[0], "ClipCancelOnDropExec", "{plan:#?}");
    for evaluating in ["FilterExec", "AggregateExec"] {
        let at = ops.iter().position(|op| *op == evaluating);
        let at = at.unwrap_or_else(|| panic!("no {evaluating} in {plan:#?}"));
        assert_eq!(ops[at - 1], "ClipQueryScopeExec", "{plan:#?}");
    }

    // No model call: nothing added (cosine_similarity is arithmetic).
    for sql in [
        "SELECT count(*) FROM imgs".to_string(),
        "SELECT cosine_similarity([1.0, 0.0], [0.0, 1.0])".to_string(),
    ] {
        let plan = physical_plan(&ctx, &sql).await;
        assert!(
            !plan.iter().any(|line| line.starts_with("Clip")),
            "{sql}: {plan:#?}"
        );
    }
}

#[tokio::test]
async fn a_sort_key_and_a_limit_give_the_answers() {
    let ctx = context();
    register_images(&ctx, 6);
    query(&ctx, "SET clip.batch_size = 2").await.unwrap();
    let m = tiny_model();
    let probability = format!("clip_zero_shot('{m}', image, ['cat', 'dog'])['probability']");
    // The reference: every image's probability, ranked here.
    let all = query_text(&ctx, &format!("SELECT id, {probability} AS p FROM imgs")).await;
    let mut ranked: Vec<(f64, i32)> = table_rows(&all)
        .iter()
        .map(|row| (row[1].parse().unwrap(), row[0].parse().unwrap()))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // The model runs in the sort key; the limit ends its input early,
    // which must not count as the query being dropped.
    let top = query_text(
        &ctx,
        &format!("SELECT id FROM imgs ORDER BY {probability} DESC, id LIMIT 3"),
    )
    .await;
    let ids: Vec<String> = table_rows(&top)
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    let expected: Vec<String> = ranked[..3].iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_plan_dropped_unfinished_runs_again_when_executed_again() {
    let ctx = context();
    register_images(&ctx, 8);
    query(&ctx, "SET clip.batch_size = 1").await.unwrap();
    let m = tiny_model();
    let plan = physical_plan_of(
        &ctx,
        &format!("SELECT clip_embed_image('{m}', image) AS e FROM imgs"),
    )
    .await;
    // Opened and dropped before its end: the plan's work is cancelled.
    drop(plan.execute(0, ctx.task_ctx()).unwrap());
    // A new execution of the same plan is a new query.
    let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 8);
}
