//! Process-wide counters of work done, read by `clip-sql` to show progress
//! of long queries (and by anyone embedding the library who wants to).

use std::sync::atomic::{AtomicU64, Ordering};

static IMAGES_ENCODED: AtomicU64 = AtomicU64::new(0);
static IMAGES_FAILED: AtomicU64 = AtomicU64::new(0);
static PROMPTS_ENCODED: AtomicU64 = AtomicU64::new(0);

/// A reading of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Images that went through an image tower.
    pub images_encoded: u64,
    /// Images that could not be decoded (NULL or error rows).
    pub images_failed: u64,
    /// Prompts that went through a text tower.
    pub prompts_encoded: u64,
}

impl Progress {
    /// All work counted, for "has anything happened" checks.
    pub fn total(&self) -> u64 {
        self.images_encoded + self.images_failed + self.prompts_encoded
    }
}

/// The counters now.
pub fn progress() -> Progress {
    Progress {
        images_encoded: IMAGES_ENCODED.load(Ordering::Relaxed),
        images_failed: IMAGES_FAILED.load(Ordering::Relaxed),
        prompts_encoded: PROMPTS_ENCODED.load(Ordering::Relaxed),
    }
}

pub(crate) fn add_images(encoded: usize, failed: usize) {
    IMAGES_ENCODED.fetch_add(encoded as u64, Ordering::Relaxed);
    IMAGES_FAILED.fetch_add(failed as u64, Ordering::Relaxed);
}

pub(crate) fn add_prompts(n: usize) {
    PROMPTS_ENCODED.fetch_add(n as u64, Ordering::Relaxed);
}

/// Turns successive counter readings into a status line: what the current
/// burst of work has done and how fast. A burst ends after `idle` without
/// progress; the line is then cleared and the next burst starts from zero.
#[derive(Debug)]
pub struct ProgressLine {
    idle: std::time::Duration,
    burst_start: Option<(std::time::Instant, Progress)>,
    last_change: Option<(std::time::Instant, Progress)>,
    shown: bool,
}

/// What to do with the terminal line after a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineUpdate {
    /// Nothing changed.
    Keep,
    /// Replace the line with this text.
    Show(String),
    /// The burst is over: erase the line.
    Clear,
}

impl ProgressLine {
    pub fn new(idle: std::time::Duration) -> Self {
        Self {
            idle,
            burst_start: None,
            last_change: None,
            shown: false,
        }
    }

    /// Feed a reading taken at `now`.
    pub fn update(&mut self, now: std::time::Instant, reading: Progress) -> LineUpdate {
        let changed = self.last_change.is_none_or(|(_, last)| last != reading);
        if !changed {
            let idle_for = self
                .last_change
                .map(|(t, _)| now.duration_since(t))
                .unwrap_or_default();
            if self.shown && idle_for >= self.idle {
                self.shown = false;
                // The next burst counts from here.
                self.burst_start = Some((now, reading));
                return LineUpdate::Clear;
            }
            return LineUpdate::Keep;
        }
        let first_reading = self.last_change.is_none();
        self.last_change = Some((now, reading));
        if first_reading {
            // The counters before we started watching are not this burst's.
            self.burst_start = Some((now, reading));
            return LineUpdate::Keep;
        }
        let (start_time, start) = *self.burst_start.get_or_insert((now, reading));
        let images = reading.images_encoded - start.images_encoded;
        let failed = reading.images_failed - start.images_failed;
        let prompts = reading.prompts_encoded - start.prompts_encoded;
        if images + failed + prompts == 0 {
            return LineUpdate::Keep;
        }
        let seconds = now.duration_since(start_time).as_secs_f64();
        let mut line = format!("[clip] {images} images");
        if seconds > 0.0 {
            line.push_str(&format!(" ({:.1} images/s)", images as f64 / seconds));
        }
        if failed > 0 {
            line.push_str(&format!(", {failed} failed (NULL)"));
        }
        if prompts > 0 {
            line.push_str(&format!(", {prompts} prompts"));
        }
        self.shown = true;
        LineUpdate::Show(line)
    }
}

/// Print a status line of the work under way (images done, images/s,
/// failures, prompts) to stderr every `interval` from a background thread,
/// for as long as the process runs. Meant for terminals:
/// callers check `stderr().is_terminal()` first.
pub fn spawn_progress_reporter(interval: std::time::Duration) {
    use std::io::Write;
    let _ = std::thread::Builder::new()
        .name("clip-progress".into())
        .spawn(move || {
            let mut line = ProgressLine::new(interval * 4);
            loop {
                std::thread::sleep(interval);
                let text = match line.update(std::time::Instant::now(), progress()) {
                    LineUpdate::Keep => continue,
                    LineUpdate::Show(text) => format!("\r\x1b[2K{text}"),
                    LineUpdate::Clear => "\r\x1b[2K".to_string(),
                };
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn reading(images: u64, prompts: u64) -> Progress {
        Progress {
            images_encoded: images,
            images_failed: 0,
            prompts_encoded: prompts,
        }
    }

    #[test]
    fn shows_rate_of_the_current_burst_then_clears_when_idle() {
        let t0 = Instant::now();
        let mut line = ProgressLine::new(Duration::from_secs(1));
        // Work done before watching started is not counted.
        assert_eq!(line.update(t0, reading(500, 0)), LineUpdate::Keep);
        let shown = line.update(t0 + Duration::from_secs(2), reading(600, 10));
        assert_eq!(
            shown,
            LineUpdate::Show("[clip] 100 images (50.0 images/s), 10 prompts".into())
        );
        assert_eq!(
            line.update(t0 + Duration::from_millis(2500), reading(600, 10)),
            LineUpdate::Keep
        );
        assert_eq!(
            line.update(t0 + Duration::from_secs(4), reading(600, 10)),
            LineUpdate::Clear
        );
        // The next burst starts from its own first change.
        assert_eq!(
            line.update(t0 + Duration::from_secs(5), reading(620, 10)),
            LineUpdate::Show("[clip] 20 images (20.0 images/s)".into())
        );
    }
}
