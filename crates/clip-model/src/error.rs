//! What can go wrong below SQL, as types: finding and reading a model
//! ([`ModelError`]), the architecture its config describes
//! ([`ConfigError`]), and running it ([`ComputeError`], where running out of
//! device memory is a variant of its own so the engine can split the pass
//! and try again). An undecodable image is [`crate::ImageError`].
//!
//! Messages are written for the person who typed the model argument; the
//! underlying error, where there is one, is kept as the `source`.

use std::path::PathBuf;

/// A model could not be found, fetched or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "unknown model '{argument}'. Known models: {known}. A model can also be a local \
         directory holding {expected}, or hf:org/repo for a Hugging Face repository"
    )]
    UnknownModel {
        argument: String,
        known: String,
        expected: String,
    },

    #[error("'{argument}' is not a Hugging Face repository; write hf:org/name")]
    NotARepository { argument: String },

    #[error(
        "model directory {} holds no CLIP checkpoint: expected {expected} (as transformers' \
         CLIPModel.save_pretrained or open_clip's hub upload writes them)",
        dir.display()
    )]
    NoCheckpointInDirectory { dir: PathBuf, expected: String },

    #[error(
        "{repo} (model '{argument}') holds no CLIP checkpoint this version reads: expected {expected}"
    )]
    NoCheckpointInRepository {
        repo: String,
        argument: String,
        expected: String,
    },

    #[error(
        "model '{argument}' is not in the Hugging Face cache and downloads are off \
         (clip.offline or HF_HUB_OFFLINE): {repo} has no {expected} under {}. Download it once \
         with network access, or point the model argument at a local directory",
        cache_dir.display()
    )]
    NotCached {
        argument: String,
        repo: String,
        expected: String,
        cache_dir: PathBuf,
    },

    /// The hub could not be reached or refused a request.
    #[error("cannot {action}: {source}")]
    Hub {
        action: String,
        #[source]
        source: hf_hub::api::sync::ApiError,
    },

    #[error("the weights of model '{argument}' were not found")]
    WeightsNotFound { argument: String },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },

    #[error(
        "{} is truncated: it has {size} bytes but tensor '{tensor}' ends at byte {needed} \
         (an interrupted download? delete the file and run again to fetch it)",
        path.display()
    )]
    TruncatedWeights {
        path: PathBuf,
        size: usize,
        tensor: String,
        needed: usize,
    },

    #[error("{} is not a valid safetensors file: {reason}", path.display())]
    InvalidSafetensors {
        path: PathBuf,
        reason: String,
        #[source]
        source: safetensors::SafeTensorError,
    },

    #[error("cannot read {}: {source}", path.display())]
    UnreadableWeights {
        path: PathBuf,
        #[source]
        source: Box<candle_core::Error>,
    },

    #[error("{} holds no tensors (not a PyTorch state dict)", path.display())]
    NoTensors { path: PathBuf },

    #[error(
        "{} is not a zip-format PyTorch checkpoint: the legacy format of torch.save before \
         PyTorch 1.6 (or not a checkpoint at all) is not supported; convert it to safetensors \
         (safetensors.torch.save_file(torch.load(path), 'model.safetensors'))",
        path.display()
    )]
    LegacyPickle { path: PathBuf },

    /// The tensors are not those of a CLIP model this version computes.
    #[error("{}: {source}", path.display())]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: CheckpointError,
    },

    #[error("{} does not hold the CLIP weights its {config_file} describes: {source}", path.display())]
    WeightsDoNotMatch {
        path: PathBuf,
        config_file: &'static str,
        #[source]
        source: Box<candle_core::Error>,
    },

    #[error(
        "{} holds {in_weights} {blocks}, but its {config_file} describes {in_config}: the \
         config is of a smaller model than the weights (computing with it would silently \
         skip layers); use the config saved with these weights",
        path.display()
    )]
    ExtraLayers {
        path: PathBuf,
        config_file: &'static str,
        /// What the blocks are, e.g. "text transformer layers".
        blocks: String,
        in_weights: usize,
        in_config: usize,
    },

    #[error("ResNet models cannot run in bf16 on the CPU; set clip.dtype to 'f32' or 'f16'")]
    Bf16ResNetOnCpu,

    /// Building tensors (for random weights) failed.
    #[error("{context}: {source}")]
    Tensor {
        context: String,
        #[source]
        source: Box<candle_core::Error>,
    },
}

/// A config file this version cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),

    /// JSON, but not the config of a CLIP model.
    #[error("not a CLIP config (no text_config and vision_config; model type {model_type})")]
    NotClip { model_type: String },

    /// The JSON does not have the fields the layout's config has.
    #[error("not {what}: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A CLIP variant whose architecture this version does not compute.
    #[error(
        "this open_clip model uses {feature}, which this version does not compute \
         (it runs OpenAI's ViT CLIP architecture)"
    )]
    UnsupportedArchitecture { feature: String },

    /// Preprocessing other than CLIP's: our pixels would not be the ones
    /// the weights expect.
    #[error("{0}")]
    UnsupportedPreprocessing(String),

    /// Numbers that do not fit together (a width not divisible by the
    /// heads, an input size not a multiple of the patch).
    #[error("{0}")]
    Inconsistent(String),
}

/// An OpenAI/open_clip state dict whose tensors do not map onto CLIP's.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint has no tensor '{0}'")]
    MissingTensor(String),

    #[error(
        "the checkpoint has tensors OpenAI's CLIP does not use ({names}): it is a variant this \
         version does not compute"
    )]
    UnknownTensors { names: String },

    #[error("this checkpoint has a logit_bias: it is a SigLIP model, not CLIP")]
    SigLip,

    #[error("{tensor} has {rows} rows, not 3 x width")]
    PackedProjection { tensor: String, rows: usize },

    #[error("{context}: {source}")]
    Tensor {
        context: String,
        #[source]
        source: Box<candle_core::Error>,
    },
}

/// A forward pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The device could not allocate what the pass needs: the same work
    /// in smaller passes may succeed.
    #[error("{0}")]
    OutOfMemory(#[source] candle_core::Error),

    #[error("{0}")]
    Failed(#[source] candle_core::Error),
}

impl From<candle_core::Error> for ComputeError {
    fn from(e: candle_core::Error) -> Self {
        let e = without_backtrace(e);
        if is_device_out_of_memory(&e) {
            ComputeError::OutOfMemory(e)
        } else {
            ComputeError::Failed(e)
        }
    }
}

impl ComputeError {
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, ComputeError::OutOfMemory(_))
    }
}

/// `e` without the backtrace candle attaches when `RUST_BACKTRACE` is set,
/// which its message then ends with: shown as a query's error, a hundred
/// lines of candle's own frames buried what went wrong.
pub fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    use candle_core::Error;
    match e {
        Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        Error::Context { inner, context } => Error::Context {
            inner: Box::new(without_backtrace(*inner)),
            context,
        },
        Error::WithPath { inner, path } => Error::WithPath {
            inner: Box::new(without_backtrace(*inner)),
            path,
        },
        other => other,
    }
}

/// Whether a candle error is a CUDA allocation failure: the driver's
/// `CUDA_ERROR_OUT_OF_MEMORY` or cuBLAS's `CUBLAS_STATUS_ALLOC_FAILED`,
/// found by type through candle's context and backtrace wrappers. (On the
/// CPU an allocation failure aborts the process; there is nothing to
/// recognise.)
pub fn is_device_out_of_memory(e: &candle_core::Error) -> bool {
    use candle_core::Error;
    match e {
        Error::WithBacktrace { inner, .. }
        | Error::Context { inner, .. }
        | Error::WithPath { inner, .. } => is_device_out_of_memory(inner),
        #[cfg(feature = "cuda")]
        Error::Cuda(inner) => cuda_out_of_memory(inner.as_ref()),
        _ => false,
    }
}

#[cfg(feature = "cuda")]
fn cuda_out_of_memory(e: &(dyn std::error::Error + 'static)) -> bool {
    use candle_core::cuda_backend::CudaError;
    use candle_core::cuda_backend::cudarc::cublas::sys::cublasStatus_t;
    use candle_core::cuda_backend::cudarc::driver::sys::CUresult;
    match e.downcast_ref::<CudaError>() {
        Some(CudaError::Cuda(driver)) => driver.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY,
        Some(CudaError::Load { cuda, .. }) => cuda.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY,
        Some(CudaError::Cublas(status)) => status.0 == cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtrace_is_left_out_of_the_message_at_any_depth() {
        use candle_core::Error;
        let traced = Error::WithBacktrace {
            inner: Box::new(Error::Msg("shape mismatch".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let wrapped = traced.with_path("/m/model.safetensors").context("fc1");
        assert!(wrapped.to_string().lines().count() > 3, "{wrapped}");
        let plain = Error::Msg("shape mismatch".into())
            .with_path("/m/model.safetensors")
            .context("fc1");
        assert_eq!(without_backtrace(wrapped).to_string(), plain.to_string());
    }

    #[test]
    fn only_device_allocation_failures_count_as_out_of_memory() {
        // The words alone do not make an out-of-memory error: a message that
        // merely mentions it (a tensor named "oom", a user's text) is not one.
        let text = candle_core::Error::Msg("DriverError(CUDA_ERROR_OUT_OF_MEMORY)".into());
        assert!(!ComputeError::from(text).is_out_of_memory());
        let plain = candle_core::Error::Msg("shape mismatch".into()).context("in fc1");
        assert!(!ComputeError::from(plain).is_out_of_memory());
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_driver_and_cublas_allocation_failures_are_out_of_memory() {
        use candle_core::cuda_backend::CudaError;
        use candle_core::cuda_backend::cudarc::cublas::result::CublasError;
        use candle_core::cuda_backend::cudarc::cublas::sys::cublasStatus_t;
        use candle_core::cuda_backend::cudarc::driver::DriverError;
        use candle_core::cuda_backend::cudarc::driver::sys::CUresult;
        let driver: candle_core::Error =
            CudaError::Cuda(DriverError(CUresult::CUDA_ERROR_OUT_OF_MEMORY)).into();
        assert!(ComputeError::from(driver.context("fc1")).is_out_of_memory());
        let cublas: candle_core::Error =
            CudaError::Cublas(CublasError(cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED)).into();
        assert!(ComputeError::from(cublas).is_out_of_memory());
        let other: candle_core::Error =
            CudaError::Cuda(DriverError(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS)).into();
        assert!(!ComputeError::from(other).is_out_of_memory());
    }
}
