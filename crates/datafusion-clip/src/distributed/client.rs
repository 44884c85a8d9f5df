//! Client sessions whose queries run on a Ballista cluster.

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::config::BALLISTA_CLIENT_PULL;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionContext;

use super::cluster_session::{self, MAX_MESSAGE_BYTES};
use super::job_cancel::CancelJobOnDropPlanner;

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
    cancelling_dropped_jobs(ctx, endpoint)
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
    cancelling_dropped_jobs(ctx, scheduler_url)
}

/// `ctx` (a Ballista client's) with the CLIP functions, whose queries'
/// jobs are cancelled on the scheduler at `scheduler` when dropped
/// unfinished ([`super::job_cancel`]).
fn cancelling_dropped_jobs(ctx: SessionContext, scheduler: String) -> Result<SessionContext> {
    let state = ctx.state();
    let planner = CancelJobOnDropPlanner::new(Arc::clone(state.query_planner()), scheduler);
    let ctx = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_query_planner(Arc::new(planner))
            .build(),
    );
    // Ballista resets the function list to DataFusion's; add ours back.
    crate::register(&ctx)?;
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
    crate::register(&ctx)?;
    Ok(ctx.state())
}

fn cluster_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("cannot start the in-process Ballista cluster: {e}"))
}
