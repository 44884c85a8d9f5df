//! What can go wrong between a SQL function and the model: the model's own
//! errors ([`ModelError`], [`ComputeError`]) and the engine's (a device that
//! cannot be opened, a cancelled call, a model thread that went away).
//! The SQL functions turn these into DataFusion errors in one place
//! (`crate::error`), keeping them as the source.

use std::sync::Arc;

use clip_model::{ComputeError, ModelError};

/// Why the engine could not answer a call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model could not be found, fetched or read.
    #[error(transparent)]
    Model(#[from] ModelError),

    /// A forward pass failed. An out-of-memory failure reaches here only
    /// when a single image does not fit: larger passes are split first.
    /// (Shared: every caller whose rows were in the failed pass gets it.)
    #[error("{tower} encoder failed: {source}")]
    Encoder {
        tower: &'static str,
        #[source]
        source: Arc<ComputeError>,
    },

    #[error(
        "clip.device = 'cuda:{ordinal}' needs a build with the `cuda` feature \
         (cargo build --release -p clip-sql --features cuda); this build runs on the CPU only. \
         Use SET clip.device = 'cpu' or 'auto'"
    )]
    CudaNotBuilt { ordinal: usize },

    #[error("cannot open cuda:{ordinal}: {source}")]
    DeviceUnavailable {
        ordinal: usize,
        #[source]
        source: candle_core::Error,
    },

    /// The call was stopped by [`super::cancel_running_work`].
    #[error("cancelled: CLIP work was interrupted (Ctrl-C or cancel_running_work)")]
    Cancelled,

    /// The call's query was dropped before it finished (the plan rule
    /// [`crate::CancelDroppedQueries`] gives each query its own token).
    #[error("cancelled: the query this CLIP work was for was dropped")]
    QueryDropped,

    /// The model's thread is gone (the process is shutting down, or it
    /// panicked).
    #[error("the model thread of {model} {what}")]
    ModelThreadGone { model: String, what: &'static str },

    #[error("cannot start the model thread: {0}")]
    ModelThreadSpawn(#[source] std::io::Error),

    /// A lock whose holder panicked.
    #[error("{0} is poisoned")]
    Poisoned(&'static str),

    /// An encoder answered with the wrong number of values (a bug, reported
    /// rather than turned into wrong embeddings).
    #[error("{tower} encoder returned {values} values for {rows} {what} of dimension {dim}")]
    WrongOutputSize {
        tower: &'static str,
        what: &'static str,
        values: usize,
        rows: usize,
        dim: usize,
    },

    #[error("the labels list is empty; zero-shot needs at least one label")]
    NoLabels,

    #[error("the templates list is empty; give at least one, e.g. ['a photo of a {{}}.']")]
    NoTemplates,

    #[error("template '{0}' has no placeholder: write {{}} or {{c}} where the label goes")]
    TemplateWithoutPlaceholder(String),

    #[error("zero-shot scoring failed: {0}")]
    Scoring(#[source] candle_core::Error),
}

impl EngineError {
    /// Whether the call failed because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, EngineError::Cancelled | EngineError::QueryDropped)
    }
}
