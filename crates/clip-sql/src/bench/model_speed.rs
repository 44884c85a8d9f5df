//! Model-only speed of one CLIP model: batch-1 latency, images/s at each
//! batch size, prompts/s, peak memory. Inputs are already on the device,
//! so these are the model's own figures (the efficiency table of the
//! seed), comparable to a PyTorch loop timed with `cuda.synchronize`.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

use super::error::BenchError;
use super::memory::{DeviceMemorySampler, device_used_bytes, peak_rss_bytes, reset_peak_rss};
use clip_model::error::is_device_out_of_memory;
use clip_model::{ClipModel, ClipTokenizer, ModelFiles, Tokens, load_model, profile};

/// How long and at which sizes to measure.
#[derive(Debug, Clone)]
pub struct SpeedSettings {
    /// Image batch sizes to time; the best is reported.
    pub batch_sizes: Vec<usize>,
    /// Prompts per text pass.
    pub text_batch: usize,
    /// Minimum timed seconds per figure (at least 3 passes each).
    pub seconds: f64,
}

/// Images/s at one batch size, or why there is none.
#[derive(Debug, Clone)]
pub struct BatchSpeed {
    pub batch: usize,
    pub outcome: BatchOutcome,
}

/// What timing one batch size gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchOutcome {
    ImagesPerSecond(f64),
    OutOfMemory,
    /// Not tried: a smaller batch already ran out of memory.
    Skipped,
}

impl BatchOutcome {
    pub fn images_per_s(&self) -> Option<f64> {
        match self {
            BatchOutcome::ImagesPerSecond(v) => Some(*v),
            _ => None,
        }
    }

    /// Why there is no figure, for the report.
    pub fn note(&self) -> &'static str {
        match self {
            BatchOutcome::ImagesPerSecond(_) => "",
            BatchOutcome::OutOfMemory => "out of memory",
            BatchOutcome::Skipped => "skipped: a smaller batch ran out of memory",
        }
    }
}

/// One model's row of the efficiency table.
#[derive(Debug, Clone)]
pub struct ModelSpeed {
    pub model: String,
    pub device: String,
    pub dtype: String,
    pub image_size: usize,
    pub load_s: f64,
    /// Median of batch-1 forward passes.
    pub latency_ms: f64,
    pub batches: Vec<BatchSpeed>,
    pub prompts_per_s: f64,
    /// Device memory in use at the peak, minus what was in use before the
    /// model was loaded (weights + activations + workspaces).
    pub peak_device_bytes: Option<u64>,
    /// Peak resident set of the process while the model was loaded and run.
    pub peak_host_bytes: Option<u64>,
    /// With `CLIP_PROFILE=1`: time per kind of operation over the passes of
    /// the largest batch that ran, as (section, total, calls).
    pub profile: Vec<(&'static str, Duration, u64)>,
}

impl ModelSpeed {
    /// The fastest batch size and its images/s.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.batches
            .iter()
            .filter_map(|b| b.outcome.images_per_s().map(|v| (b.batch, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// Measure the model in `files` on `device` in `dtype`.
pub fn measure_model(
    name: &str,
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
    settings: &SpeedSettings,
) -> Result<ModelSpeed, BenchError> {
    let fail = |source| BenchError::Compute {
        model: name.to_string(),
        source,
    };
    let device_before = device_used_bytes(device);
    reset_peak_rss();
    let started = Instant::now();
    let model = load_model(files, device, dtype)?;
    device.synchronize().map_err(fail)?;
    let load_s = started.elapsed().as_secs_f64();
    let size = model.config().vision_config.image_size;
    let sampler = DeviceMemorySampler::start(device);

    let largest = settings
        .batch_sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    // Random pixels, not zeros: zeros can run faster than real data.
    let all = Tensor::randn(0f32, 1f32, (largest, 3, size, size), device)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(fail)?;
    let batch_of = |n: usize| all.narrow(0, 0, n);

    // Warm-up: the first use of each kernel family compiles PTX on a GPU.
    let one = batch_of(1).map_err(fail)?;
    for _ in 0..3 {
        forward_synced(&model, &one, device).map_err(fail)?;
    }
    let latency_ms = median_ms(&model, &one, device, settings.seconds.min(3.0)).map_err(fail)?;

    let mut batches = Vec::new();
    let mut op_profile = Vec::new();
    let mut out_of_memory = false;
    for &batch in &settings.batch_sizes {
        if out_of_memory {
            batches.push(BatchSpeed {
                batch,
                outcome: BatchOutcome::Skipped,
            });
            continue;
        }
        let x = batch_of(batch).map_err(fail)?;
        profile::take_report();
        let outcome = match images_per_second(&model, &x, device, settings.seconds) {
            Ok(v) => {
                if profile::enabled() {
                    op_profile = profile::take_report();
                }
                BatchOutcome::ImagesPerSecond(v)
            }
            Err(e) if is_device_out_of_memory(&e) => {
                out_of_memory = true;
                BatchOutcome::OutOfMemory
            }
            Err(e) => return Err(fail(e)),
        };
        batches.push(BatchSpeed { batch, outcome });
    }
    let prompts_per_s =
        prompts_per_second(&model, device, settings.text_batch, settings.seconds).map_err(fail)?;
    let peak_device_bytes = sampler
        .map(DeviceMemorySampler::finish)
        .map(|peak| peak.saturating_sub(device_before.unwrap_or(0)));
    Ok(ModelSpeed {
        model: name.to_string(),
        device: datafusion_clip::device_name(device),
        dtype: format!("{dtype:?}").to_lowercase(),
        image_size: size,
        load_s,
        latency_ms,
        batches,
        prompts_per_s,
        peak_device_bytes,
        peak_host_bytes: peak_rss_bytes(),
        profile: op_profile,
    })
}

fn forward_synced(model: &ClipModel, x: &Tensor, device: &Device) -> candle_core::Result<()> {
    model.encode_image(x)?;
    device.synchronize()
}

/// Median wall time of synchronised batch-1 passes over about `seconds`
/// (at least 10 passes).
fn median_ms(
    model: &ClipModel,
    x: &Tensor,
    device: &Device,
    seconds: f64,
) -> candle_core::Result<f64> {
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < 10 || (started.elapsed() < budget && times.len() < 200) {
        let t = Instant::now();
        forward_synced(model, x, device)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Images/s of back-to-back passes over `x` for about `seconds` (at least
/// three passes after one warm-up), synchronised once at the end as a
/// PyTorch loop would be.
fn images_per_second(
    model: &ClipModel,
    x: &Tensor,
    device: &Device,
    seconds: f64,
) -> candle_core::Result<f64> {
    forward_synced(model, x, device)?;
    let n = x.dim(0)?;
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut passes = 0usize;
    while passes < 3 || started.elapsed() < budget {
        model.encode_image(x)?;
        passes += 1;
        if passes.is_multiple_of(8) {
            // Keep the host from queueing unboundedly far ahead.
            device.synchronize()?;
        }
    }
    device.synchronize()?;
    Ok((passes * n) as f64 / started.elapsed().as_secs_f64())
}

/// Zero-shot-style prompts of varied length ("a photo of a ...").
pub fn sample_prompts(n: usize) -> Vec<String> {
    const TEMPLATES: [&str; 4] = [
        "a photo of a {}.",
        "a bad photo of the {}.",
        "a cropped photo of the small {}, a type of animal.",
        "itap of my {}.",
    ];
    const NOUNS: [&str; 8] = [
        "goldfish",
        "great white shark",
        "tree frog",
        "loggerhead sea turtle",
        "dog",
        "grey wolf",
        "airliner",
        "espresso maker",
    ];
    (0..n)
        .map(|i| TEMPLATES[i % TEMPLATES.len()].replace("{}", NOUNS[(i / 4) % NOUNS.len()]))
        .collect()
}

/// Prompts/s of text passes of `batch` prompts (tokenised once; each pass
/// pads to its longest prompt as the engine does).
fn prompts_per_second(
    model: &ClipModel,
    device: &Device,
    batch: usize,
    seconds: f64,
) -> candle_core::Result<f64> {
    let tokenizer = ClipTokenizer::shared();
    let context = model.config().text_config.max_position_embeddings;
    let tokens: Vec<Tokens> = sample_prompts(batch.max(1))
        .iter()
        .map(|p| tokenizer.tokenize(p, context))
        .collect();
    model.encode_text(&tokens, device)?;
    device.synchronize()?;
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut passes = 0usize;
    while passes < 3 || started.elapsed() < budget {
        model.encode_text(&tokens, device)?;
        passes += 1;
        if passes.is_multiple_of(8) {
            device.synchronize()?;
        }
    }
    device.synchronize()?;
    Ok((passes * tokens.len()) as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_prompts_vary_in_length() {
        let prompts = sample_prompts(16);
        assert_eq!(prompts.len(), 16);
        let lengths: std::collections::BTreeSet<usize> = prompts.iter().map(|p| p.len()).collect();
        assert!(lengths.len() >= 4, "{prompts:?}");
    }
}
