//! What a client, the scheduler and every executor agree on: Ballista's
//! settings plus `clip.*`, codecs that know our tables, and a session with
//! the CLIP functions and table formats.

use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::{
    BallistaCodec, BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec,
};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;

use crate::codec::{ClipLogicalCodec, ClipPhysicalCodec};
use crate::config::ClipOptions;

/// The largest plan or result message the processes exchange. Plans carry
/// the client's in-memory tables (a benchmark's image embeddings: 10,000
/// images of ViT-B/32 are 20 MB), more than gRPC's usual 4 or 16 MiB.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Our table codec in front of Ballista's (which carries its shuffle and
/// cache nodes and file formats).
pub fn logical_codec() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(ClipLogicalCodec::wrapping(Arc::new(
        BallistaLogicalExtensionCodec::default(),
    )))
}

/// Our scan codec in front of Ballista's (shuffle readers and writers).
pub fn physical_codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(ClipPhysicalCodec::wrapping(Arc::new(
        BallistaPhysicalExtensionCodec::default(),
    )))
}

/// Both codecs, as the scheduler and executors take them.
pub fn codec() -> BallistaCodec {
    BallistaCodec::new(logical_codec(), physical_codec())
}

/// `config` made ready for a cluster: Ballista's settings (and the
/// DataFusion settings Ballista needs), `clip.*` (kept when `config` has
/// them), our codecs and room for large plans. Settings already in
/// `config` stay, so a client's `--set` and environment carry over.
pub fn cluster_config(config: SessionConfig) -> SessionConfig {
    let config = if config.options().extensions.get::<ClipOptions>().is_some() {
        config
    } else {
        config.with_option_extension(ClipOptions::default())
    };
    config
        .upgrade_for_ballista()
        .with_information_schema(true)
        .with_ballista_logical_extension_codec(logical_codec())
        .with_ballista_physical_extension_codec(physical_codec())
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
}

/// A Ballista session for `config` with the CLIP functions, `clip_models()`
/// and the `IMAGEFOLDER`, `WEBDATASET` and `CIFAR` formats: what the
/// scheduler builds for each job, and where executors take their function
/// registry from.
pub fn cluster_state(config: SessionConfig) -> Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(cluster_config(config))?;
    let ctx = SessionContext::new_with_state(state);
    crate::session::register_functions_and_formats(&ctx)?;
    Ok(ctx.state())
}

/// DataFusion's functions and ours, by name, for an executor.
pub fn function_registry() -> Result<BallistaFunctionRegistry> {
    let state = cluster_state(SessionConfig::new())?;
    Ok(BallistaFunctionRegistry::from(&state))
}
