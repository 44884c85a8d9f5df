//! The executor process behind `clip-sql executor`: Ballista's, with the
//! CLIP functions in its registry, `clip.*` in its sessions, codecs that
//! know our tables, and its own device.

use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionConfig;

use super::cluster_session::{self, MAX_MESSAGE_BYTES};
use crate::config::DeviceSetting;

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
