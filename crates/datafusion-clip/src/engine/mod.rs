//! The engine joins the SQL layer to the model layer: it loads models once
//! per process, runs them on their own threads, batches images and prompts,
//! and caches zero-shot classifiers.

pub mod cancel;
pub mod classifier;
pub mod device;
pub mod encode;
pub mod error;
pub mod model_cache;
pub mod progress;
pub mod ranking;
pub mod stage_clock;
pub mod worker;

pub use cancel::cancel_running_work;
pub use classifier::{Classifier, Prediction};
pub use device::{device_name, select_device, select_dtype};
pub use error::EngineError;
pub use model_cache::{LoadedModel, LoadedModelStatus, get_or_load, loaded_models, model_loads};
pub use stage_clock::{StageTimes, stage_times};
