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
//! Data flows one way: a table scan of [`formats`] produces image bytes; a
//! SQL function of [`functions`] (one file per function, named as in SQL)
//! reads them from Arrow and calls the [`engine`], which decodes, batches
//! work for models loaded once per process and runs them on their own
//! threads; the model itself is the `clip-model` crate, tensors only; the
//! function writes the result column. [`config`] holds the `clip.*`
//! settings every layer reads.
//!
//! Default features build only that. `cloud` adds s3://, gs:// and az://
//! locations, `ballista` the [`distributed`] module, `cuda` the GPU.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
#[cfg(feature = "ballista")]
pub mod distributed;
pub mod engine;
pub mod error;
pub mod formats;
pub mod functions;

use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use config::ClipOptions;
pub use error::ClipError;
// The model layer, for services that use it directly.
pub use clip_model;

/// Add the CLIP functions, `clip_models()`, the `IMAGEFOLDER`, `WEBDATASET` and `CIFAR` table formats
/// and the `clip.*` settings to `ctx`. Settings already present (for
/// example from [`session_config`]) are kept.
pub fn register(ctx: &SessionContext) -> Result<()> {
    let options = {
        let state = ctx.state_ref();
        let mut state = state.write();
        let extensions = &mut state.config_mut().options_mut().extensions;
        if extensions.get::<ClipOptions>().is_none() {
            extensions.insert(ClipOptions::default());
        }
        ClipOptions::from_config(state.config().options())
    };
    functions::register_functions(ctx, &options);
    formats::register_table_formats(ctx);
    Ok(())
}

/// A `SessionConfig` carrying the `clip.*` settings with their defaults,
/// for services that build their own context.
pub fn session_config() -> SessionConfig {
    SessionConfig::new().with_option_extension(ClipOptions::default())
}
