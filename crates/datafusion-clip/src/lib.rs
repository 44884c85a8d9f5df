//! # datafusion-clip
//!
//! CLIP image and text encoders and zero-shot classification as Apache
//! DataFusion SQL functions, and image tables to run them over, so that a
//! CLIP evaluation is a SQL query:
//!
//! ```sql
//! CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION 'photos/';
//! SELECT label, avg(CAST(clip_zero_shot('ViT-B/32', image, ['cat', 'dog'])['label'] = label AS INT)) AS acc1
//! FROM photos GROUP BY label;
//! ```
//!
//! Add everything to a session you own with [`register`]:
//!
//! ```no_run
//! # async fn run() -> datafusion::error::Result<()> {
//! let ctx = datafusion::prelude::SessionContext::new();
//! datafusion_clip::register(&ctx)?;
//! ctx.sql("SET clip.batch_size = 64").await?;
//! # Ok(()) }
//! ```
//!
//! Data flows one way: a table scan of one of the [`table_formats`]
//! produces image bytes; a SQL function (one file per function under
//! `functions/`, named as in SQL) reads them from Arrow and calls the
//! engine (`engine/`), which decodes, batches work for models loaded once
//! per process and runs them on their own threads; the model itself is the
//! `clip-model` crate, tensors only; the function writes the result column.
//! [`ClipOptions`] holds the `clip.*` settings every layer reads;
//! [`CancelDroppedQueries`] rewrites plans that call a model so that a
//! dropped query stops its own work; [`ClipLogicalCodec`] and
//! [`ClipPhysicalCodec`] let plans that scan our tables travel between
//! processes.
//!
//! What is public is what a service or a binding needs, all of it here at
//! the crate root (and [`distributed`] with the `ballista` feature): the
//! lists of what [`register`] installs, for hosts that install things one
//! by one ([`scalar_functions`], [`aggregate_functions`],
//! [`table_functions`], [`table_formats`]); the codecs; the process-wide
//! controls and readings of CLIP work ([`cancel_running_work`],
//! [`progress()`], [`loaded_models`], [`stage_times`]).
//!
//! Default features build only that. `cloud` adds s3://, gs:// and az://
//! locations, `ballista` the [`distributed`] module, `cuda` the GPU.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod config;
#[cfg(feature = "ballista")]
pub mod distributed;
mod engine;
mod error;
mod formats;
mod functions;
mod query_cancel;
mod session;

pub use codec::{ClipLogicalCodec, ClipPhysicalCodec};
pub use config::{ClipOptions, DeviceSetting, DtypeSetting, OnErrorSetting};
pub use engine::progress::{Progress, progress, spawn_progress_reporter};
pub use engine::{
    EngineError, LoadedModelStatus, StageTimes, cancel_running_work, device_name, loaded_models,
    model_loads, select_device, select_dtype, stage_times,
};
pub use error::ClipError;
pub use formats::{TableFormat, ensure_object_store, is_image_format, table_formats};
pub use functions::{TableFunction, aggregate_functions, scalar_functions, table_functions};
pub use query_cancel::CancelDroppedQueries;
pub use session::{register, session_config};
// The model layer, for services that use it directly.
pub use clip_model;
