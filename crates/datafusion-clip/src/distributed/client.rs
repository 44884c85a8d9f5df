//! Client sessions whose queries run on a Ballista cluster.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ballista::prelude::SessionContextExt;
use ballista_core::config::BALLISTA_CLIENT_PULL;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::catalog::Session;
use datafusion::catalog::cte_worktable::CteWorkTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::{MemTable, ViewTable, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use super::cluster_session::{self, MAX_MESSAGE_BYTES};
use super::job_cancel::{CancelJobOnDropExec, submits_a_job};

/// A context whose queries run on the scheduler at `url` (`df://host:port`,
/// port 50050 when left out). `state` is the client's own (its settings,
/// runtime and object stores); it is made ready for the cluster here.
/// DDL (`CREATE EXTERNAL TABLE`, `SET`) stays in the client; every query
/// goes to the cluster.
pub async fn remote_context(url: &str, state: SessionState) -> Result<SessionContext> {
    // Ballista connects at the first query; say now, and clearly, when the
    // scheduler is not there.
    let endpoint = scheduler_endpoint(url)?;
    if let Err(e) = SchedulerGrpcClient::connect(endpoint.clone()).await {
        return Err(DataFusionError::Execution(format!(
            "cannot reach the Ballista scheduler at {url} ({endpoint}): {e}; \
             is `clip-sql scheduler` running there?"
        )));
    }
    let state = for_cluster(state)?;
    let ctx = SessionContext::remote_with_state(url, state).await?;
    with_client_planner(ctx, endpoint)
}

/// A context whose queries run on a cluster started in this process: a
/// scheduler and one executor with `vcores` task slots, on loopback ports
/// the system picks. Everything a real cluster does happens (plans become
/// bytes, stages shuffle through Arrow Flight), which makes it the way to
/// test SQL for a cluster on one machine.
pub async fn standalone_context(state: SessionState, vcores: usize) -> Result<SessionContext> {
    let state = for_cluster(state)?;
    let config = state.config().clone();
    let scheduler_addr = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        Arc::new(cluster_session::cluster_state),
        Arc::new(move || config.clone()),
        cluster_session::codec(),
    )
    .await
    .map_err(cluster_error)?;
    let scheduler_url = format!("http://localhost:{}", scheduler_addr.port());
    // The scheduler's listener is bound before it returns, so the first
    // attempt normally connects; a few more cover a slow start.
    let mut attempt = 0;
    let scheduler = loop {
        match SchedulerGrpcClient::connect(scheduler_url.clone()).await {
            Ok(client) => {
                break client
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
            }
            Err(e) if attempt >= 50 => {
                return Err(DataFusionError::Execution(format!(
                    "cannot reach the in-process Ballista scheduler at {scheduler_url}: {e}"
                )));
            }
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ballista_executor::new_standalone_executor_from_state(scheduler, vcores.max(1), &state)
        .await
        .map_err(cluster_error)?;
    let ctx = SessionContext::remote_with_state(
        &format!("df://localhost:{}", scheduler_addr.port()),
        state,
    )
    .await?;
    with_client_planner(ctx, scheduler_url)
}

/// `ctx` (a Ballista client's) with the CLIP functions and a
/// [`ClientPlanner`] in front of Ballista's (`scheduler`: its gRPC
/// endpoint).
fn with_client_planner(ctx: SessionContext, scheduler: String) -> Result<SessionContext> {
    let state = ctx.state();
    let planner = ClientPlanner {
        ballista: Arc::clone(state.query_planner()),
        scheduler,
    };
    let ctx = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_query_planner(Arc::new(planner))
            .build(),
    );
    // Ballista resets the function list to DataFusion's; add ours back.
    crate::session::register(&ctx)?;
    Ok(ctx)
}

/// `df://host[:port]` as the scheduler's gRPC endpoint (port 50050 when
/// left out, as Ballista's own client does).
fn scheduler_endpoint(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url)
        .map_err(|e| DataFusionError::Configuration(format!("scheduler URL '{url}': {e}")))?;
    let host = parsed.host_str().ok_or_else(|| {
        DataFusionError::Configuration(format!("scheduler URL '{url}' names no host"))
    })?;
    Ok(format!("http://{host}:{}", parsed.port().unwrap_or(50050)))
}

/// `state` with the cluster's settings and codecs, the CLIP functions and
/// table formats.
fn for_cluster(state: SessionState) -> Result<SessionState> {
    // The client asks the scheduler how its job is doing (every 50 ms)
    // rather than waiting for news: in Ballista's push mode the client
    // learns its job's id only with the first change the scheduler
    // reports, which for a one-stage job is its end, and a query dropped
    // before then could not be cancelled (job_cancel).
    let config = cluster_session::cluster_config(state.config().clone())
        .set_bool(BALLISTA_CLIENT_PULL, true);
    let ctx = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build(),
    );
    crate::session::register(&ctx)?;
    Ok(ctx.state())
}

fn cluster_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("cannot start the in-process Ballista cluster: {e}"))
}

/// Ballista's client planner, plus two things: a query reading a table
/// that cannot be sent to the scheduler fails at planning, saying so
/// (Ballista would fail at execution with an internal error); every query
/// sent to the cluster is wrapped in a [`CancelJobOnDropExec`], so that
/// dropping it cancels its job.
#[derive(Debug)]
struct ClientPlanner {
    ballista: Arc<dyn QueryPlanner + Send + Sync>,
    scheduler: String,
}

#[async_trait]
impl QueryPlanner for ClientPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self
            .ballista
            .create_physical_plan(logical_plan, session)
            .await?;
        // Only a query for the cluster (or an EXPLAIN ANALYZE of one,
        // wrapped whole: its node reads the job of its own child, which
        // must stay Ballista's); a plan run in this process
        // (information_schema) has no job.
        if !submits_a_job(&plan) {
            return Ok(plan);
        }
        let codec = session.config().ballista_logical_extension_codec();
        check_tables_travel(logical_plan, codec.as_ref())?;
        Ok(Arc::new(CancelJobOnDropExec::new(
            plan,
            self.scheduler.clone(),
        )))
    }
}

/// Fail, naming the table, when `plan` reads one that cannot be sent to
/// the scheduler: a table that DataFusion's plan encoding does not know
/// itself (files, views) goes through `codec`, which knows the image and
/// in-memory tables and refuses the rest, table functions among them.
fn check_tables_travel(plan: &LogicalPlan, codec: &dyn LogicalExtensionCodec) -> Result<()> {
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source)?;
            let any: &dyn Any = provider.as_ref();
            // In-memory tables always travel (as Arrow IPC, through the
            // codec): not encoded twice to find that out.
            let travels = any.is::<ListingTable>()
                || any.is::<ViewTable>()
                || any.is::<MemTable>()
                || any.is::<EmptyTable>()
                || any.is::<CteWorkTable>();
            if !travels {
                codec
                    .try_encode_table_provider(&scan.table_name, provider, &mut Vec::new())
                    .map_err(|e| DataFusionError::Plan(e.message().into_owned()))?;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(())
}
