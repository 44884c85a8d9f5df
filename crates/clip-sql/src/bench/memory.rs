//! Peak memory of a measurement: device memory sampled while it runs, and
//! the process's peak resident set on the host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::Device;

/// Polls the device's used memory (total - free) every millisecond on its
/// own thread and keeps the highest reading. Sampling can miss a spike
/// shorter than the interval; a forward pass's activations live far
/// longer than that.
pub struct DeviceMemorySampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceMemorySampler {
    /// Start sampling `device`; `None` on the CPU (host memory is read
    /// with [`peak_rss_bytes`]).
    pub fn start(device: &Device) -> Option<DeviceMemorySampler> {
        let read = used_reader(device)?;
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(read().unwrap_or(0)));
        let thread = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::Builder::new()
                .name("clip-bench memory".to_string())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(used) = read() {
                            peak.fetch_max(used, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
                .ok()?
        };
        Some(DeviceMemorySampler {
            stop,
            peak,
            thread: Some(thread),
        })
    }

    /// Stop sampling; the highest used-memory reading in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Used device memory now, in bytes (`None` on the CPU).
pub fn device_used_bytes(device: &Device) -> Option<u64> {
    used_reader(device)?()
}

type UsedReader = Box<dyn Fn() -> Option<u64> + Send>;

#[cfg(feature = "cuda")]
fn used_reader(device: &Device) -> Option<UsedReader> {
    match device {
        Device::Cuda(cuda) => {
            let context = Arc::clone(cuda.cuda_stream().context());
            Some(Box::new(move || {
                let (free, total) = context.mem_get_info().ok()?;
                Some(total.saturating_sub(free) as u64)
            }))
        }
        _ => None,
    }
}

#[cfg(not(feature = "cuda"))]
fn used_reader(_device: &Device) -> Option<UsedReader> {
    None
}

/// Reset the process's peak resident set (`VmHWM`) to its current size, so
/// the next [`peak_rss_bytes`] covers only what runs after. Linux only;
/// elsewhere the peak stays the process's lifetime peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set of this process (`VmHWM`), in bytes; `None` where
/// `/proc` does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_with_a_touched_allocation() {
        let Some(before) = peak_rss_bytes() else {
            return; // not Linux
        };
        let block = vec![1u8; 64 << 20];
        let after = peak_rss_bytes().unwrap();
        assert!(block.iter().all(|&b| b == 1));
        assert!(after >= before.max(64 << 20), "{before} -> {after}");
    }

    #[test]
    fn no_device_sampler_on_cpu() {
        assert!(DeviceMemorySampler::start(&Device::Cpu).is_none());
        assert_eq!(device_used_bytes(&Device::Cpu), None);
    }
}
