//! The process-wide cache of loaded models: one load per
//! (model, device, dtype), shared by every session, partition and query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::{DType, Device};

use clip_model::{HubOptions, ModelRef, Preprocessor, fetch_files, load_model};

use super::device::{device_name, select_device, select_dtype};
use super::error::EngineError;
use super::worker::{ModelWorker, wait_off_runtime};
use crate::config::ClipOptions;

/// A model ready to run: its worker thread and what callers need to know
/// without touching it.
#[derive(Debug)]
pub struct LoadedModel {
    /// What the user typed first for this model.
    pub name: String,
    /// Cache identity: source, device, dtype.
    pub key: String,
    pub worker: Arc<ModelWorker>,
    pub device: Device,
    pub dtype: DType,
    pub preprocessor: Preprocessor,
    /// Width of the joint embedding.
    pub embed_dim: usize,
    /// `exp(logit_scale)`.
    pub logit_scale: f32,
    /// Longest prompt the text tower takes.
    pub context_length: usize,
}

type Slot = Arc<Mutex<Option<Arc<LoadedModel>>>>;

/// Loads performed in this process (successful ones).
static LOADS: AtomicUsize = AtomicUsize::new(0);

static MODELS: LazyLock<Mutex<HashMap<String, Slot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Every model loaded so far, for [`loaded_models`]: read without taking
/// a slot's lock, which a load holds for seconds and every call briefly.
static LOADED: Mutex<Vec<Arc<LoadedModel>>> = Mutex::new(Vec::new());

/// The loaded model for `model` under `options`, loading it on first use.
/// Concurrent callers for the same key wait for one load; a failed load
/// leaves nothing cached, so the next call tries again.
pub fn get_or_load(
    model: &ModelRef,
    options: &ClipOptions,
) -> Result<Arc<LoadedModel>, EngineError> {
    let device = select_device(options.device)?;
    let dtype = select_dtype(options.dtype, &device);
    let key = format!("{}|{}|{:?}", model.cache_key(), device_name(&device), dtype);
    let slot = {
        let mut models = MODELS
            .lock()
            .map_err(|_| EngineError::Poisoned("model cache"))?;
        Arc::clone(models.entry(key.clone()).or_default())
    };
    // Loading reads hundreds of megabytes and may download: keep it off the
    // async scheduler like any other blocking work.
    wait_off_runtime(|| {
        let mut guard = slot
            .lock()
            .map_err(|_| EngineError::Poisoned("model cache slot"))?;
        if let Some(loaded) = guard.as_ref() {
            return Ok(Arc::clone(loaded));
        }
        let hub = HubOptions::from_env(options.is_offline());
        let files = fetch_files(model, &hub)?;
        let clip = load_model(&files, &device, dtype)?;
        let config = clip.config().clone();
        let logit_scale = clip.logit_scale_exp();
        let worker = ModelWorker::spawn(clip, device.clone(), dtype, &model.argument)?;
        let loaded = Arc::new(LoadedModel {
            name: model.argument.clone(),
            key,
            worker,
            device,
            dtype,
            preprocessor: Preprocessor::new(config.vision_config.image_size),
            embed_dim: config.projection_dim,
            logit_scale,
            context_length: config.text_config.max_position_embeddings,
        });
        *guard = Some(Arc::clone(&loaded));
        LOADS.fetch_add(1, Ordering::SeqCst);
        LOADED
            .lock()
            .map_err(|_| EngineError::Poisoned("loaded models"))?
            .push(Arc::clone(&loaded));
        Ok(loaded)
    })
}

/// How many times a model was loaded in this process: with the cache
/// working, once per (model, device, dtype) however many queries ran.
pub fn model_loads() -> usize {
    LOADS.load(Ordering::SeqCst)
}

/// A loaded model and what its thread is doing, for a service's status
/// page (and tests that watch work start and stop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModelStatus {
    /// The model as the first query that loaded it named it.
    pub model: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// Image forward passes run so far.
    pub image_passes: usize,
    /// Calls encoding images with it right now.
    pub image_calls_in_progress: usize,
}

/// Every model loaded in this process (one entry per model, device and
/// dtype), in the order they were loaded.
pub fn loaded_models() -> Vec<LoadedModelStatus> {
    let Ok(loaded) = LOADED.lock() else {
        return Vec::new();
    };
    loaded
        .iter()
        .map(|loaded| LoadedModelStatus {
            model: loaded.name.clone(),
            device: device_name(&loaded.device),
            dtype: loaded.dtype.as_str().to_string(),
            image_passes: loaded.worker.image_passes(),
            image_calls_in_progress: loaded.worker.image_callers(),
        })
        .collect()
}
