//! Process-wide clocks of where encoding time goes, so a benchmark can split
//! a query's wall time into decode + preprocess, model and the rest.
//!
//! Decode time is summed over every call that decodes (partitions decode
//! concurrently, so it can exceed wall time); model time is the busy time of
//! the model threads, which run one forward pass at a time per model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static DECODE_NANOS: AtomicU64 = AtomicU64::new(0);
static MODEL_NANOS: AtomicU64 = AtomicU64::new(0);
static MODEL_PASSES: AtomicU64 = AtomicU64::new(0);
static MODEL_ROWS: AtomicU64 = AtomicU64::new(0);

/// A reading of the clocks; subtract two readings for one query's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Time in decode + preprocess calls, summed over concurrent callers.
    pub decode: Duration,
    /// Time the model threads spent in image forward passes (host to
    /// device copy and result copy back included).
    pub model: Duration,
    /// Image forward passes run.
    pub passes: u64,
    /// Images in those passes.
    pub rows: u64,
}

impl std::ops::Sub for StageTimes {
    type Output = StageTimes;
    fn sub(self, earlier: StageTimes) -> StageTimes {
        StageTimes {
            decode: self.decode.saturating_sub(earlier.decode),
            model: self.model.saturating_sub(earlier.model),
            passes: self.passes.saturating_sub(earlier.passes),
            rows: self.rows.saturating_sub(earlier.rows),
        }
    }
}

/// The clocks now.
pub fn stage_times() -> StageTimes {
    StageTimes {
        decode: Duration::from_nanos(DECODE_NANOS.load(Ordering::Relaxed)),
        model: Duration::from_nanos(MODEL_NANOS.load(Ordering::Relaxed)),
        passes: MODEL_PASSES.load(Ordering::Relaxed),
        rows: MODEL_ROWS.load(Ordering::Relaxed),
    }
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn add_decode(start: Instant) {
    DECODE_NANOS.fetch_add(nanos_since(start), Ordering::Relaxed);
}

pub(crate) fn add_model_pass(start: Instant, rows: usize) {
    MODEL_NANOS.fetch_add(nanos_since(start), Ordering::Relaxed);
    MODEL_PASSES.fetch_add(1, Ordering::Relaxed);
    MODEL_ROWS.fetch_add(rows as u64, Ordering::Relaxed);
}
