//! Stopping work on a Ballista cluster: a query its client drops is
//! cancelled on the scheduler, and a task the scheduler cancels stops its
//! CLIP work within one forward pass.

use std::any::Any;
use std::task::Poll;

use ballista_core::JobId;
use ballista_core::execution_plans::ShuffleWriterExec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{GetJobStatusParams, job_status};
use ballista_executor::execution_engine::{DefaultExecutionEngine, ExecutionEngine};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionConfig;
use datafusion_clip::distributed::{
    CancelJobOnDropExec, ClipExecutionEngine, cluster_state, physical_codec, standalone_context,
};
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use futures::StreamExt;

use super::*;

/// The state the scheduler reports for `job`: `Ok(true)` when it
/// succeeded, `Ok(false)` when it failed, `Err` while it runs.
async fn job_outcome(scheduler: &str, job: &str) -> Result<bool, String> {
    let mut client = SchedulerGrpcClient::connect(scheduler.to_string())
        .await
        .unwrap();
    let status = client
        .get_job_status(GetJobStatusParams {
            job_id: job.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .and_then(|s| s.status);
    match status {
        Some(job_status::Status::Successful(_)) => Ok(true),
        Some(job_status::Status::Failed(_)) => Ok(false),
        other => Err(format!("{other:?}")),
    }
}

fn cluster_query(plan: &Arc<dyn ExecutionPlan>) -> &CancelJobOnDropExec {
    (plan.as_ref() as &dyn Any)
        .downcast_ref::<CancelJobOnDropExec>()
        .expect("a query on a cluster is wrapped in CancelJobOnDropExec")
}

async fn wait_for_outcome(scheduler: &str, job: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match job_outcome(scheduler, job).await {
            Ok(succeeded) => return succeeded,
            Err(running) => assert!(
                Instant::now() < deadline,
                "job {job} still {running} after a minute"
            ),
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_its_client_drops_is_cancelled_on_the_cluster() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(datafusion_clip::session_config())
        .build();
    let ctx = standalone_context(state, 1).await.unwrap();
    let (_dir, model, worker) = own_model(31).await;
    register_images_as(&ctx, "imgs_on_cluster", 600);
    query(&ctx, "SET clip.batch_size = 1").await.unwrap();
    let sql = format!("SELECT clip_embed_image('{model}', image) AS e FROM imgs_on_cluster");

    // Read to its end, a query's job succeeds: finishing is not dropping.
    let plan = physical_plan_of(&ctx, "SELECT count(*) FROM imgs_on_cluster").await;
    collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let root = cluster_query(&plan);
    let job = root.job_id().expect("the finished query has a job");
    assert!(wait_for_outcome(root.scheduler(), &job).await);

    // Dropped while the executor embeds its images, its job is cancelled;
    // an EXPLAIN ANALYZE of the query too (it runs the query as a job).
    drop_mid_run_and_expect_cancelled(&ctx, &sql, &worker).await;
    drop_mid_run_and_expect_cancelled(&ctx, &format!("EXPLAIN ANALYZE {sql}"), &worker).await;
}

/// Start `sql` on the cluster and drop its stream once the executor is at
/// work: the job must end cancelled, before all of its 600 passes.
async fn drop_mid_run_and_expect_cancelled(ctx: &SessionContext, sql: &str, worker: &ModelThread) {
    let plan = physical_plan_of(ctx, sql).await;
    let root = cluster_query(&plan);
    let start = worker.image_passes();
    let mut stream = plan.execute(0, ctx.task_ctx()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Poll the client's stream (which submits the job and waits for it)
    // until the scheduler has named the job and the executor is at work.
    let job = loop {
        if let Some(job) = root.job_id()
            && worker.image_passes() >= start + 2
        {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: the job never got under way"
        );
        if let Poll::Ready(item) = futures::poll!(stream.next()) {
            panic!("{sql}: the query ended before it was dropped: {item:?}");
        }
        tokio::task::yield_now().await;
    };
    drop(stream);
    assert!(
        !wait_for_outcome(root.scheduler(), &job).await,
        "{sql}: the dropped query's job ran to its end"
    );
    assert!(
        worker.image_passes() - start < 600,
        "{sql}: the job was cancelled only after all its passes"
    );
    // The in-process executor is Ballista's pull-based one, which no cancel
    // reaches: its task runs on to its end, which the queries after this
    // one must not see as work of their own.
    wait_until("the in-process executor's task has ended", || {
        worker.image_callers() == 0
    })
    .await;
}

/// Run `stage` as a Ballista executor runs a task, and cancel it as it
/// cancels one (the task's future is aborted) once `worker` has made two
/// passes; the passes `worker` makes from the abort until the stage's CLIP
/// call returns, and in all.
async fn passes_after_cancelling(
    engine: &dyn ExecutionEngine,
    stage: Arc<dyn ExecutionPlan>,
    work: &str,
    task_ctx: Arc<datafusion::execution::TaskContext>,
    worker: &ModelThread,
) -> (usize, usize) {
    let exec = engine
        .create_query_stage_exec(
            JobId::new("job"),
            1,
            0,
            vec![0],
            stage,
            work,
            task_ctx.session_config(),
        )
        .unwrap();
    let start = worker.image_passes();
    let (task, abort) =
        futures::future::abortable(async move { exec.execute_query_stage(0, task_ctx).await });
    let running = tokio::spawn(task);
    wait_until("the task is under way", || {
        worker.image_passes() >= start + 2
    })
    .await;
    abort.abort();
    assert!(running.await.unwrap().is_err(), "the task was aborted");
    let at_abort = worker.image_passes();
    wait_until("the stage's CLIP call has returned", || {
        worker.image_callers() == 0
    })
    .await;
    let end = worker.image_passes();
    (end - at_abort, end - start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_the_scheduler_cancels_stops_its_clip_work() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The scheduler plans in a session without the local rewrite.
    let scheduler_side =
        SessionContext::new_with_state(cluster_state(SessionConfig::new()).unwrap());
    let total = 400;
    register_images_as(&scheduler_side, "imgs_of_a_stage", total);
    query(&scheduler_side, "SET clip.batch_size = 1")
        .await
        .unwrap();
    let (_dir, model, worker) = own_model(32).await;
    let plan = physical_plan_of(
        &scheduler_side,
        &format!("SELECT clip_embed_image('{model}', image) AS e FROM imgs_of_a_stage"),
    )
    .await;
    let shown = displayable(plan.as_ref()).indent(false).to_string();
    assert!(!shown.contains("Clip"), "{shown}");

    // A stage: a shuffle writer over the plan, sent to the executor as
    // bytes through the cluster's codec.
    let work_dir = tempfile::tempdir().unwrap();
    let work = work_dir.path().display().to_string();
    let stage: Arc<dyn ExecutionPlan> =
        Arc::new(ShuffleWriterExec::try_new(JobId::new("job"), 1, plan, work.clone()).unwrap());
    let codec = physical_codec();
    let bytes = physical_plan_to_bytes_with_extension_codec(stage, codec.as_ref()).unwrap();
    let task_ctx = scheduler_side.task_ctx();
    let arrive = || {
        physical_plan_from_bytes_with_extension_codec(&bytes, &task_ctx, codec.as_ref()).unwrap()
    };

    let (after, _) = passes_after_cancelling(
        &ClipExecutionEngine::default(),
        arrive(),
        &work,
        Arc::clone(&task_ctx),
        &worker,
    )
    .await;
    assert!(
        after <= 1,
        "the task ran {after} forward passes after it was cancelled"
    );
    // Ballista's own engine: the shuffle writer drives the input on a task
    // of its own, which an abort does not reach.
    let (after, all) = passes_after_cancelling(
        &DefaultExecutionEngine::new(),
        arrive(),
        &work,
        Arc::clone(&task_ctx),
        &worker,
    )
    .await;
    assert!(
        all >= total as usize,
        "{all} passes in all, {after} after the abort"
    );
}
