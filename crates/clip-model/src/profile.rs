//! Where a forward pass spends its time, by kind of operation, for finding
//! what to speed up. Off unless `CLIP_PROFILE=1` is set: then every timed
//! section synchronises the device before and after (so GPU work is charged
//! to the section that queued it), which slows the pass itself; read the
//! shares, not the totals. `clip-sql bench` prints the table per model.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use candle_core::{Device, Result};

static ENABLED: LazyLock<bool> =
    LazyLock::new(|| std::env::var("CLIP_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"));

static TOTALS: LazyLock<Mutex<BTreeMap<&'static str, (Duration, u64)>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Whether `CLIP_PROFILE` is on.
pub fn enabled() -> bool {
    *ENABLED
}

/// Run `f`, charging its time (device work included) to `section`.
pub fn time<T>(section: &'static str, device: &Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if !enabled() {
        return f();
    }
    device.synchronize()?;
    let started = Instant::now();
    let out = f()?;
    device.synchronize()?;
    if let Ok(mut totals) = TOTALS.lock() {
        let entry = totals.entry(section).or_default();
        entry.0 += started.elapsed();
        entry.1 += 1;
    }
    Ok(out)
}

/// The sections timed so far, as (section, total, calls), and clear them.
pub fn take_report() -> Vec<(&'static str, Duration, u64)> {
    match TOTALS.lock() {
        Ok(mut totals) => std::mem::take(&mut *totals)
            .into_iter()
            .map(|(k, (d, n))| (k, d, n))
            .collect(),
        Err(_) => Vec::new(),
    }
}
