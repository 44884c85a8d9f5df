//! Why a measurement could not be made.

use std::path::PathBuf;

use clip_model::{ImageError, ModelError};
use datafusion::error::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Model(#[from] ModelError),

    #[error("{model}: {source}")]
    Compute {
        model: String,
        #[source]
        source: candle_core::Error,
    },

    #[error(transparent)]
    Query(#[from] DataFusionError),

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no image files under {}", dir.display())]
    NoImages { dir: PathBuf },

    #[error("a benchmark image does not decode: {0}")]
    BadImage(#[source] ImageError),

    #[error("cannot start a one-thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),

    #[error("no count from: {sql}")]
    NoCount { sql: String },

    #[error("{files} files, {scanned} rows scanned, {encoded} embedded: some images failed")]
    ImagesFailed {
        files: usize,
        scanned: i64,
        encoded: i64,
    },

    #[error("no published shape known for '{name}' (random weights exist for {known})")]
    UnknownShape { name: String, known: String },
}
