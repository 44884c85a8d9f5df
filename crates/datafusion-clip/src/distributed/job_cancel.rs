//! A query the client drops stops on the cluster too.
//!
//! Ballista's client submits each query as a job and polls the scheduler
//! until it ends; dropping the client's stream (Ctrl-C in `clip-sql
//! --ballista`, a service whose client went away) only stops the polling,
//! and the job runs on, every executor embedding images nobody will read.
//! [`CancelJobOnDropExec`], which the client's planner (`client.rs`) puts
//! around the query node Ballista's makes, asks the scheduler to cancel
//! the job when its stream is dropped before the end, and the scheduler
//! has the executors abort the job's tasks (whose CLIP calls then stop
//! within one forward pass: [`super::executor::ClipExecutionEngine`]).
//! [`cancel_running_jobs`] does the same for every job of this process
//! still running, for a process about to exit on Ctrl-C.
//!
//! The client learns its job's id when the scheduler accepts the job (our
//! clients track jobs in Ballista's pull mode for this: `client.rs`); a
//! stream dropped before that, its submission still in flight, has
//! nothing to cancel.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ballista_core::execution_plans::{DistributedExplainAnalyzeExec, DistributedQueryExec};
use ballista_core::serde::protobuf::CancelJobParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, exec_err, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_proto::protobuf::LogicalPlanNode;

use crate::query_cancel::EndWatchedStream;

/// The node Ballista's client planner makes for a query.
pub(crate) type ClientQueryExec = DistributedQueryExec<LogicalPlanNode>;
/// The node it makes for an `EXPLAIN ANALYZE`: runs its [`ClientQueryExec`]
/// child to the end, then asks the scheduler for the job's metrics.
pub(crate) type ClientExplainAnalyzeExec = DistributedExplainAnalyzeExec<LogicalPlanNode>;

/// Whether `plan` is one of the nodes that send a job to the cluster.
pub(crate) fn submits_a_job(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let any = plan.as_ref() as &dyn Any;
    any.is::<ClientQueryExec>() || any.is::<ClientExplainAnalyzeExec>()
}

/// Runs a query (or an `EXPLAIN ANALYZE` of one) on the cluster; dropping
/// its stream before the end cancels the query's job on the scheduler.
#[derive(Debug)]
pub struct CancelJobOnDropExec {
    /// Ballista's query node, which knows its job once submitted, or its
    /// `EXPLAIN ANALYZE` node above one.
    query: Arc<dyn ExecutionPlan>,
    scheduler: String,
}

impl CancelJobOnDropExec {
    pub fn new(query: Arc<dyn ExecutionPlan>, scheduler: String) -> Self {
        Self { query, scheduler }
    }

    /// The job the scheduler gave the query's latest run, once it has.
    pub fn job_id(&self) -> Option<String> {
        job_of(&self.query)
    }

    /// The scheduler the query runs on (`http://host:port`).
    pub fn scheduler(&self) -> &str {
        &self.scheduler
    }
}

fn job_of(query: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let any = query.as_ref() as &dyn Any;
    if let Some(query) = any.downcast_ref::<ClientQueryExec>() {
        return query.job_id().map(|job| job.into_inner());
    }
    if any.is::<ClientExplainAnalyzeExec>() {
        return query.children().first().and_then(|child| job_of(child));
    }
    None
}

impl DisplayAs for CancelJobOnDropExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CancelJobOnDropExec: scheduler={}", self.scheduler)
    }
}

impl ExecutionPlan for CancelJobOnDropExec {
    fn name(&self) -> &str {
        "CancelJobOnDropExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.query.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.query]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(query), true) => Ok(Arc::new(Self::new(query, self.scheduler.clone()))),
            _ => internal_err!("CancelJobOnDropExec takes exactly one child"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // Entered before looking at EXITING, which cancel_running_jobs sets
        // before it looks at RUNNING: each query is either refused here or
        // seen (and cancelled) there, however the two interleave.
        let serial = register(RunningJob {
            query: Arc::clone(&self.query),
            scheduler: self.scheduler.clone(),
        });
        if EXITING.load(Ordering::SeqCst) {
            running().remove(&serial);
            return exec_err!("not sent to the cluster: this process is cancelling its jobs");
        }
        let input = match self.query.execute(partition, context) {
            Ok(input) => input,
            Err(e) => {
                running().remove(&serial);
                return Err(e);
            }
        };
        Ok(Box::pin(EndWatchedStream::new(
            input,
            Box::new(move |finished| stream_dropped(serial, finished)),
        )))
    }
}

/// The queries of this process whose streams are open, by a serial number.
static RUNNING: LazyLock<Mutex<BTreeMap<u64, RunningJob>>> = LazyLock::new(Default::default);
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

fn running() -> std::sync::MutexGuard<'static, BTreeMap<u64, RunningJob>> {
    // Each step leaves the map consistent; a panic elsewhere cannot
    // leave it half-changed.
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct RunningJob {
    query: Arc<dyn ExecutionPlan>,
    scheduler: String,
}

/// Enter an opened stream's query in [`RUNNING`]; its serial number.
fn register(job: RunningJob) -> u64 {
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    running().insert(serial, job);
    serial
}

/// The stream of query `serial` was dropped: it leaves [`RUNNING`], and
/// its job is cancelled if the stream had not reached its end.
fn stream_dropped(serial: u64, finished: bool) {
    let Some(job) = running().remove(&serial) else {
        return;
    };
    if finished {
        return;
    }
    let Some(job_id) = job_of(&job.query) else {
        return; // not accepted yet: no job to cancel
    };
    // A drop cannot wait; the request goes out on the runtime that ran
    // the stream. (A process exiting at once uses cancel_running_jobs.)
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                if let Err(e) = cancel_job(&job.scheduler, &job_id).await {
                    log::warn!("{e}");
                }
            });
        }
        Err(_) => log::warn!(
            "job {job_id} on {} left running: no async runtime to cancel it from",
            job.scheduler
        ),
    }
}

/// Ask `scheduler` to cancel `job_id`; its executors abort the job's tasks.
pub async fn cancel_job(scheduler: &str, job_id: &str) -> std::result::Result<(), String> {
    let mut client = SchedulerGrpcClient::connect(scheduler.to_string())
        .await
        .map_err(|e| {
            format!("cannot reach the scheduler {scheduler} to cancel job {job_id}: {e}")
        })?;
    client
        .cancel_job(CancelJobParams {
            job_id: job_id.to_string(),
        })
        .await
        .map_err(|e| format!("the scheduler {scheduler} did not cancel job {job_id}: {e}"))?;
    Ok(())
}

/// Set by [`cancel_running_jobs`]: no query is sent to a cluster after it.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Cancel the job of every query of this process whose stream is still
/// open, for a process about to exit on Ctrl-C (which cannot wait for the
/// streams to be dropped). From its first step no query is sent to a
/// cluster (each fails instead of starting a job), so a run moving on to
/// its next query starts nothing; a query already sent whose job the
/// scheduler has not named yet is waited for, up to `wait_for_jobs`.
/// Returns the jobs cancelled, and a message for each that could not be.
pub async fn cancel_running_jobs(wait_for_jobs: Duration) -> (Vec<String>, Vec<String>) {
    EXITING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + wait_for_jobs;
    let (mut cancelled, mut failed) = (Vec::new(), Vec::new());
    let mut handled = BTreeSet::new();
    loop {
        let open: Vec<(u64, RunningJob)> = running()
            .iter()
            .map(|(serial, job)| (*serial, job.clone()))
            .collect();
        let mut unnamed = false;
        for (serial, job) in open {
            if handled.contains(&serial) {
                continue;
            }
            let Some(job_id) = job_of(&job.query) else {
                unnamed = true;
                continue;
            };
            handled.insert(serial);
            match cancel_job(&job.scheduler, &job_id).await {
                Ok(()) => cancelled.push(job_id),
                Err(e) => failed.push(e),
            }
        }
        if !unnamed || Instant::now() >= deadline {
            return (cancelled, failed);
        }
        // Nothing tells when Ballista names a job: look again shortly.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::prelude::SessionContext;

    // The only test of this binary that sets EXITING (it is never unset).
    #[tokio::test]
    async fn once_cancelling_began_no_query_is_sent_or_left_registered() {
        let (cancelled, failed) = cancel_running_jobs(Duration::ZERO).await;
        assert!(cancelled.is_empty() && failed.is_empty());
        let query: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::new(Schema::empty())));
        let exec = CancelJobOnDropExec::new(query, "http://127.0.0.1:1".to_string());
        let err = exec
            .execute(0, SessionContext::new().task_ctx())
            .err()
            .expect("a query after cancel_running_jobs is refused")
            .to_string();
        assert!(err.contains("this process is cancelling its jobs"), "{err}");
        assert!(running().is_empty(), "a refused query stays registered");
    }
}
