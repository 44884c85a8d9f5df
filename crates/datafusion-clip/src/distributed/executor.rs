//! The executor process behind `clip-sql executor`: Ballista's, with the
//! CLIP functions in its registry, `clip.*` in its sessions, codecs that
//! know our tables, its own device, and tasks whose CLIP work stops when
//! the scheduler cancels them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::JobId;
use ballista_core::serde::protobuf::{
    RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport,
};
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionConfig;

use super::cluster_session::{self, MAX_MESSAGE_BYTES};
use crate::config::DeviceSetting;
use crate::query_cancel::{CancelDroppedQueries, ClipCancelOnDropExec, QueryRunHandle};

/// How an executor reaches its scheduler, what it offers and which device
/// it computes on.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and port.
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Address to bind for the executor's Flight (shuffle) service.
    pub bind_host: String,
    /// Flight port other executors and the client fetch results from.
    pub port: u16,
    /// gRPC port the scheduler pushes tasks to.
    pub grpc_port: u16,
    /// Host name other processes are told to reach this executor by.
    pub external_host: Option<String>,
    /// Task slots; 0 for every core.
    pub vcores: usize,
    /// Where shuffle files go (a temporary directory when `None`).
    pub work_dir: Option<String>,
    /// What `clip.device = 'auto'` means on this executor.
    pub device: DeviceSetting,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            scheduler_host: "localhost".to_string(),
            scheduler_port: 50050,
            bind_host: "127.0.0.1".to_string(),
            port: 50051,
            grpc_port: 50052,
            external_host: None,
            vcores: 0,
            work_dir: None,
            device: DeviceSetting::Auto,
        }
    }
}

/// Run an executor until the process is stopped (or the scheduler tells it
/// to stop).
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    // A device this machine or build cannot open fails the executor now,
    // not every task later.
    crate::engine::device::select_device(options.device)
        .map_err(|e| DataFusionError::Configuration(format!("--device {}: {e}", options.device)))?;
    crate::engine::device::set_process_device(options.device).map_err(|already| {
        DataFusionError::Configuration(format!(
            "this process already computes on {already}; start one executor per device"
        ))
    })?;
    let vcores = if options.vcores == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.vcores
    };
    let config = ExecutorProcessConfig {
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        bind_host: options.bind_host.clone(),
        port: options.port,
        grpc_port: options.grpc_port,
        external_host: options.external_host.clone(),
        vcores,
        work_dir: options.work_dir.clone(),
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        override_function_registry: Some(Arc::new(cluster_session::function_registry()?)),
        override_config_producer: Some(Arc::new(|| {
            cluster_session::cluster_config(SessionConfig::new())
        })),
        override_logical_codec: Some(cluster_session::logical_codec()),
        override_physical_codec: Some(cluster_session::physical_codec()),
        override_execution_engine: Some(Arc::new(ClipExecutionEngine::default())),
        ..ExecutorProcessConfig::default()
    };
    eprintln!(
        "datafusion-clip executor: {vcores} task slots on {}:{} (clip.device 'auto' = {}), \
         scheduler {}:{}",
        options.bind_host,
        options.port,
        options.device,
        options.scheduler_host,
        options.scheduler_port
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| DataFusionError::Execution(format!("Ballista executor: {e}")))
}

/// Ballista's execution engine, with each task's CLIP work stopped when
/// the scheduler cancels the task (its job was cancelled, or failed
/// elsewhere).
///
/// Ballista cancels a task by dropping the future that runs it, but in
/// Ballista 55 the shuffle writer drives the stage's input on a task of its
/// own, which runs on; a CLIP call there would embed the rest of the
/// stage's images for nobody. So each task's stage input is rewritten as a
/// local query is ([`CancelDroppedQueries`]: the scheduler plans without
/// it), and dropping the task's future unfinished cancels that task's run:
/// its CLIP calls stop before their next forward pass, and no other task's.
///
/// The price: Ballista's default engine fetches shuffle partitions through
/// a pool of Flight connections that Ballista 55 does not export; this one
/// opens a connection per fetch, as Ballista did before the pool, which is
/// small next to the model's work.
#[derive(Default)]
pub struct ClipExecutionEngine {
    inner: DefaultExecutionEngine,
}

impl ExecutionEngine for ClipExecutionEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        // The stage plan is a shuffle writer over one input. The tasks of a
        // stage that one executor receives together share the decoded plan:
        // each task gets a rewrite, and so a run to cancel, of its own.
        let (plan, run) = match plan.children().as_slice() {
            [input] => {
                let rewritten = CancelDroppedQueries::rewrite(Arc::clone(input))?;
                let run = (rewritten.as_ref() as &dyn Any)
                    .downcast_ref::<ClipCancelOnDropExec>()
                    .map(ClipCancelOnDropExec::run_handle);
                (replace_children_if_necessary(plan, vec![rewritten])?, run)
            }
            _ => (plan, None),
        };
        let stage = self.inner.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(match run {
            Some(run) => Arc::new(CancellableStage { stage, run }),
            None => stage, // no model call in this stage
        })
    }
}

/// A task's stage whose CLIP work is cancelled when the future running it
/// is dropped before its end.
#[derive(Debug)]
struct CancellableStage {
    stage: Arc<dyn QueryStageExecutor>,
    run: QueryRunHandle,
}

/// Cancels the run when dropped armed.
struct CancelUnlessFinished(Option<QueryRunHandle>);

impl Drop for CancelUnlessFinished {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run.cancel();
        }
    }
}

impl fmt::Display for CancellableStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.stage, f)
    }
}

#[async_trait]
impl QueryStageExecutor for CancellableStage {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        let mut armed = CancelUnlessFinished(Some(self.run.clone()));
        let written = self.stage.execute_query_stage(task_id, context).await;
        armed.0 = None;
        written
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.stage.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.stage.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
        self.stage.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.stage.collect_column_stats()
    }
}
