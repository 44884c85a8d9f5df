//! `clip-sql scheduler`, `clip-sql executor` and `--ballista`: running the
//! same SQL on a DataFusion Ballista cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_clip::DeviceSetting;
use datafusion_clip::distributed::{ExecutorOptions, run_executor};
use datafusion_clip::distributed::{SchedulerOptions, run_scheduler};
use datafusion_clip::distributed::{remote_context, standalone_context};

use super::interrupts::Interrupts;

/// `--ballista standalone`: a scheduler and an executor in this process.
pub const STANDALONE: &str = "standalone";

/// Run a Ballista scheduler that knows the CLIP functions and image tables.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs a Ballista scheduler that knows the CLIP functions, the clip.* \
    settings and the IMAGEFOLDER, WEBDATASET and CIFAR tables. Start executors with \
    `clip-sql executor --scheduler HOST:PORT`, then run SQL with \
    `clip-sql --ballista df://HOST:PORT -f file.sql`."
)]
pub struct SchedulerArgs {
    /// Address to listen on (0.0.0.0 for executors on other hosts).
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// gRPC port for clients and executors (0: a free one, printed on stderr).
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// The host name clients and executors reach this scheduler by.
    #[arg(long, default_value = "localhost")]
    external_host: String,
}

/// Run a Ballista executor with the CLIP functions on its own device.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs a Ballista executor with the CLIP functions, computing on its \
    own device: clip.device = 'auto' (the default) means --device here. Model weights are read \
    from this machine's Hugging Face cache (or the local model directory a query names); table \
    locations must be reachable from here at the same URL."
)]
pub struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "localhost:50050")]
    scheduler: String,
    /// Address to listen on (0.0.0.0 for a multi-host cluster).
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Arrow Flight port (results and shuffles are fetched from it).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port the scheduler sends tasks to.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// The host name other processes reach this executor by.
    #[arg(long)]
    external_host: Option<String>,
    /// Tasks (partitions) run at once (0: one per core). They share this
    /// executor's model worker, which fills each forward pass from several
    /// of them, so more slots keep a GPU busier while they decode.
    #[arg(long, default_value_t = 0)]
    vcores: usize,
    /// Where shuffle files go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<String>,
    /// The device for clip.device = 'auto': auto, cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceSetting,
}

pub async fn scheduler(args: SchedulerArgs) -> Result<()> {
    run_scheduler(SchedulerOptions {
        bind_host: args.bind_host,
        port: args.port,
        external_host: args.external_host,
    })
    .await
}

pub async fn executor(args: ExecutorArgs) -> Result<()> {
    let (host, port) = args.scheduler.rsplit_once(':').ok_or_else(|| {
        DataFusionError::Configuration(format!(
            "--scheduler wants HOST:PORT, got '{}'",
            args.scheduler
        ))
    })?;
    let port = port.parse().map_err(|_| {
        DataFusionError::Configuration(format!("--scheduler: '{port}' is not a port number"))
    })?;
    run_executor(ExecutorOptions {
        scheduler_host: host.to_string(),
        scheduler_port: port,
        bind_host: args.bind_host,
        port: args.port,
        grpc_port: args.grpc_port,
        external_host: args.external_host,
        vcores: args.vcores,
        work_dir: args.work_dir,
        device: args.device,
    })
    .await
}

/// A context on the cluster `target` names (`df://host[:port]`, or
/// `standalone` for one started in this process), with this process's
/// settings and runtime (object stores) on the client side.
pub async fn cluster_context(
    target: &str,
    config: SessionConfig,
    runtime_env: Arc<RuntimeEnv>,
) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime_env)
        .build();
    if target == STANDALONE {
        let vcores = std::thread::available_parallelism().map_or(1, |n| n.get());
        standalone_context(state, vcores).await
    } else if target.starts_with("df://") {
        remote_context(target, state).await
    } else {
        Err(DataFusionError::Configuration(format!(
            "--ballista wants df://HOST[:PORT] (a scheduler started with `clip-sql scheduler`) \
             or '{STANDALONE}', got '{target}'"
        )))
    }
}

/// On Ctrl-C, cancel the cluster jobs of this process's running queries,
/// then exit with status 130, as the interrupted process would have. A job
/// outlives its client: killed outright, `clip-sql -f` or `suite` would
/// leave the cluster computing what nobody reads. A second Ctrl-C exits
/// without waiting for the scheduler. (The interactive shell handles
/// Ctrl-C itself: a dropped statement cancels its own job.)
pub fn cancel_jobs_on_interrupt() -> Result<()> {
    // Listening starts here, before any statement runs.
    let mut interrupts = Interrupts::listen()
        .map_err(|e| DataFusionError::Execution(format!("cannot listen for Ctrl-C: {e}")))?;
    tokio::spawn(async move {
        interrupts.next().await;
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("Interrupted: cancelling this run's jobs on the cluster");
        // A statement that has just started submits its job and has it
        // named by the scheduler within 50 ms; a second covers a busy one.
        let cancelling = async {
            let jobs = datafusion_clip::distributed::cancel_running_jobs(Duration::from_secs(1));
            match tokio::time::timeout(Duration::from_secs(10), jobs).await {
                Ok((cancelled, failed)) => {
                    for job in cancelled {
                        eprintln!("cancelled job {job}");
                    }
                    for message in failed {
                        eprintln!("{message}");
                    }
                }
                Err(_) => {
                    eprintln!("the scheduler did not answer within 10 s; jobs may still run")
                }
            }
        };
        tokio::select! {
            () = cancelling => {}
            () = interrupts.next() => {
                eprintln!("Interrupted again: exiting without waiting for the scheduler");
            }
        }
        std::process::exit(130);
    });
    Ok(())
}

/// Set once Ctrl-C has been pressed in a run that cancels its jobs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// After Ctrl-C, never return: the interrupt handler exits the process
/// once the jobs are cancelled, and the statement that failed because its
/// job was cancelled must not end it first with that error.
pub async fn wait_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}
