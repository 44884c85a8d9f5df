//! The same SQL on a DataFusion Ballista cluster: a scheduler and executors
//! that know the CLIP functions, the `clip.*` settings and the image table
//! formats, and a client session that plans against them.
//!
//! What travels (see [`crate::ClipLogicalCodec`]): a query's logical plan goes
//! from the client to the scheduler with our tables encoded as their parts
//! (locations, file and shard lists, options) and in-memory tables (a
//! benchmark file's `CREATE TABLE … AS`) as Arrow IPC; the scheduler splits
//! it into stages whose physical plans go to executors with our scans
//! encoded the same way. Settings travel as key/value pairs with every job,
//! so `SET clip.batch_size = 64` on the client reaches every executor; the
//! functions travel by name and each process has its own registry.
//!
//! What must be on each executor: the images' object store reachable (the
//! same URL), the model weights (the Hugging Face cache, or the local model
//! directory at the same path), and, for a GPU, a `cuda` build.
//! `clip.device = 'auto'` is the executor's own `--device`.
//!
//! - `cluster_session.rs`: what the three processes agree on
//!   ([`cluster_config`], [`cluster_state`], the codecs).
//! - `client.rs`: a `SessionContext` that runs its queries on a cluster
//!   ([`remote_context`]), or on an in-process one ([`standalone_context`]).
//! - `scheduler.rs`, `executor.rs`: the long-running processes behind
//!   `clip-sql scheduler` and `clip-sql executor` ([`run_scheduler`],
//!   [`run_executor`]).
//! - `job_cancel.rs`: a query the client drops cancels its job on the
//!   cluster ([`CancelJobOnDropExec`], [`cancel_running_jobs`]).

mod client;
mod cluster_session;
mod executor;
mod job_cancel;
mod scheduler;

pub use client::{remote_context, standalone_context};
pub use cluster_session::{cluster_config, cluster_state, logical_codec, physical_codec};
pub use executor::{ClipExecutionEngine, ExecutorOptions, run_executor};
pub use job_cancel::{CancelJobOnDropExec, cancel_running_jobs};
pub use scheduler::{SchedulerOptions, run_scheduler};
