//! Installing the library in a DataFusion session: the functions, the
//! table formats, the `clip.*` settings and the plan rewrite that lets a
//! dropped query stop its CLIP work. Everything a session gets is read
//! from the lists of [`crate::functions`] and [`crate::formats`], so a new
//! function or format is added there once.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::ClipOptions;
use crate::query_cancel::CancelDroppedQueries;
use crate::{formats, functions};

/// Add the CLIP functions, `clip_models()`, the `IMAGEFOLDER`, `WEBDATASET`
/// and `CIFAR` table formats and the `clip.*` settings to `ctx`. Settings
/// already present (for example from [`session_config`]) are kept. Also
/// appends the physical optimizer rule [`CancelDroppedQueries`], so that
/// dropping a query stops its CLIP work.
pub fn register(ctx: &SessionContext) -> Result<()> {
    register_functions_and_formats(ctx)?;
    install_query_cancel(ctx);
    Ok(())
}

/// [`register`] without the plan rewrite of [`CancelDroppedQueries`]: for
/// a Ballista scheduler, whose plans travel to executors as DataFusion's
/// and our scans' encodings only.
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

/// Append [`CancelDroppedQueries`] to `ctx`'s physical optimizer rules,
/// once.
fn install_query_cancel(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let installed = state
        .physical_optimizers()
        .iter()
        .any(|rule| rule.name() == CancelDroppedQueries::NAME);
    if !installed {
        *state = SessionStateBuilder::new_from_existing(state.clone())
            .with_physical_optimizer_rule(Arc::new(CancelDroppedQueries))
            .build();
    }
}

/// A `SessionConfig` carrying the `clip.*` settings with their defaults,
/// for services that build their own context.
pub fn session_config() -> SessionConfig {
    SessionConfig::new().with_option_extension(ClipOptions::default())
}
