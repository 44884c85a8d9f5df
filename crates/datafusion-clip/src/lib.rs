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
//! settings every layer reads; [`query_cancel`] rewrites plans that call a
//! model so that a dropped query stops its own work.
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
pub mod query_cancel;

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use config::ClipOptions;
pub use error::ClipError;
// The model layer, for services that use it directly.
pub use clip_model;

/// Add the CLIP functions, `clip_models()`, the `IMAGEFOLDER`, `WEBDATASET` and `CIFAR` table formats
/// and the `clip.*` settings to `ctx`. Settings already present (for
/// example from [`session_config`]) are kept. Also appends the physical
/// optimizer rule of [`query_cancel`], so that dropping a query stops its
/// CLIP work.
pub fn register(ctx: &SessionContext) -> Result<()> {
    register_functions_and_formats(ctx)?;
    install_query_cancel(ctx);
    Ok(())
}

/// [`register`] without the plan rewrite of [`query_cancel`]: for a
/// Ballista scheduler, whose plans travel to executors as DataFusion's and
/// our scans' encodings only.
pub(crate) fn register_functions_and_formats(ctx: &SessionContext) -> Result<()> {
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

/// Append [`query_cancel::CancelDroppedQueries`] to `ctx`'s physical
/// optimizer rules, once.
fn install_query_cancel(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let installed = state
        .physical_optimizers()
        .iter()
        .any(|rule| rule.name() == query_cancel::CancelDroppedQueries::NAME);
    if !installed {
        *state = SessionStateBuilder::new_from_existing(state.clone())
            .with_physical_optimizer_rule(Arc::new(query_cancel::CancelDroppedQueries))
            .build();
    }
}

/// A `SessionConfig` carrying the `clip.*` settings with their defaults,
/// for services that build their own context.
pub fn session_config() -> SessionConfig {
    SessionConfig::new().with_option_extension(ClipOptions::default())
}
