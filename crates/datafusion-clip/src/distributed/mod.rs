//! The same SQL on a DataFusion Ballista cluster: a scheduler and executors
//! that know the CLIP functions, the `clip.*` settings and the image table
//! formats, and a client session that plans against them.
//!
//! What travels (see [`crate::formats::codec`]): a query's logical plan goes
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
//! - [`cluster_session`]: what the three processes agree on (config, codecs,
//!   functions).
//! - [`client`]: a `SessionContext` that runs its queries on a cluster, or
//!   on an in-process one.
//! - [`scheduler`], [`executor`]: the long-running processes behind
//!   `clip-sql scheduler` and `clip-sql executor`.
//! - [`job_cancel`]: a query the client drops cancels its job on the
//!   cluster.

pub mod client;
pub mod cluster_session;
pub mod executor;
pub mod job_cancel;
pub mod scheduler;

pub use client::{remote_context, standalone_context};
pub use cluster_session::{cluster_config, cluster_state};
