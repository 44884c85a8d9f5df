//! The scheduler process behind `clip-sql scheduler`: Ballista's, with
//! sessions that know the CLIP functions and codecs that know our tables.

use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::cluster_session::{self, MAX_MESSAGE_BYTES};

/// Where the scheduler listens and how executors and clients reach it.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to bind, e.g. `0.0.0.0` to accept executors from other hosts.
    pub bind_host: String,
    /// gRPC port clients (`--ballista df://host:PORT`) and executors use.
    pub port: u16,
    /// Host name executors and clients are told to use for this scheduler.
    pub external_host: String,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".to_string(),
            port: 50050,
            external_host: "localhost".to_string(),
        }
    }
}

/// Run a scheduler until the process is stopped. Port 0 takes a free port;
/// the line on stderr says which, once the scheduler accepts connections.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((options.bind_host.as_str(), options.port))
        .await
        .map_err(|e| {
            DataFusionError::Configuration(format!(
                "cannot listen on {}:{}: {e}",
                options.bind_host, options.port
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| DataFusionError::Execution(format!("scheduler address: {e}")))?;
    let config = SchedulerConfig {
        bind_host: options.bind_host.clone(),
        bind_port: address.port(),
        external_host: options.external_host.clone(),
        override_config_producer: Some(Arc::new(|| {
            cluster_session::cluster_config(SessionConfig::new())
        })),
        override_session_builder: Some(Arc::new(cluster_session::cluster_state)),
        override_logical_codec: Some(cluster_session::logical_codec()),
        override_physical_codec: Some(cluster_session::physical_codec()),
        grpc_server_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_server_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_client_max_message_size: MAX_MESSAGE_BYTES as u32,
        ..SchedulerConfig::default()
    };
    config.validate().map_err(ballista_error)?;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista_error)?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(ballista_error)?;
    eprintln!(
        "datafusion-clip scheduler listening on {address}; clients: clip-sql --ballista df://{}:{}",
        options.external_host,
        address.port()
    );
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(ballista_error)
}

fn ballista_error(e: ballista_core::error::BallistaError) -> DataFusionError {
    DataFusionError::Execution(format!("Ballista scheduler: {e}"))
}
