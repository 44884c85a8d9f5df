//! Stopping CLIP work that is already running.
//!
//! A CLIP function call is synchronous inside DataFusion's stream: a query
//! that is dropped (Ctrl-C in `clip-sql`'s REPL, a service aborting a
//! request) only stops once the call in progress returns, and one call can
//! hold thousands of images. [`cancel_running_work`] makes every call in
//! progress give up before its next forward pass with an error, so the
//! query's stream ends and its memory is freed. Calls that start afterwards
//! are unaffected.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::EngineError;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Make every CLIP call running in this process stop before its next
/// forward pass, failing its query with a "cancelled" error.
pub fn cancel_running_work() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Taken when a call starts; says whether it has been cancelled since.
#[derive(Debug, Clone, Copy)]
pub struct CancelCheck(u64);

impl CancelCheck {
    pub fn now() -> Self {
        CancelCheck(GENERATION.load(Ordering::SeqCst))
    }

    /// `Err` once [`cancel_running_work`] was called after [`Self::now`].
    pub fn check(&self) -> Result<(), EngineError> {
        if GENERATION.load(Ordering::SeqCst) == self.0 {
            Ok(())
        } else {
            Err(EngineError::Cancelled)
        }
    }
}
