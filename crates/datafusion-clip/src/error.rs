//! The one place errors from below SQL (the engine and the model) become
//! DataFusion errors: [`ClipError`] names the SQL function they surfaced in
//! and keeps the typed error as its source, so a service can find it again
//! (`DataFusionError::find_root`, then downcast) and tell a cancelled call
//! or an unknown model from a bug.

use datafusion::error::DataFusionError;

use crate::engine::EngineError;

/// An engine or model error, in the SQL function where it happened.
#[derive(Debug, thiserror::Error)]
#[error("{function}: {source}")]
pub struct ClipError {
    pub function: String,
    #[source]
    pub source: EngineError,
}

impl From<ClipError> for DataFusionError {
    fn from(e: ClipError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// `.map_err(in_function("clip_embed_image"))`: an engine or model error
/// as the DataFusion error of `function`.
pub fn in_function<E: Into<EngineError>>(function: &str) -> impl FnOnce(E) -> DataFusionError {
    move |e| {
        ClipError {
            function: function.to_string(),
            source: e.into(),
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_error_survives_as_the_source() {
        let e: DataFusionError =
            in_function::<EngineError>("clip_embed_text")(EngineError::Cancelled);
        assert!(e.to_string().contains("clip_embed_text: cancelled"), "{e}");
        let DataFusionError::External(inner) = e.find_root() else {
            panic!("not external: {e}")
        };
        let clip = inner.downcast_ref::<ClipError>().unwrap();
        assert!(clip.source.is_cancelled());
    }
}
