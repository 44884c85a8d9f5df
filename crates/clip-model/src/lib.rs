//! # clip-model
//!
//! OpenAI's CLIP in [candle](https://github.com/huggingface/candle): the
//! ViT and ModifiedResNet image towers and the text tower, loaded from the
//! published checkpoints, with the reference tokenizer and image
//! preprocessing reproduced exactly (same token ids as `clip.tokenize`, same
//! pixels as PIL's bicubic resize). It knows tensors and files, nothing of
//! SQL or Arrow; `datafusion-clip` builds the SQL functions on it.
//!
//! ```no_run
//! use candle_core::{DType, Device};
//! use clip_model::{ClipTokenizer, HubOptions, ModelRef, Preprocessor, load_model, fetch_files};
//!
//! # fn run(jpeg: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let model = ModelRef::parse("ViT-B/32")?;
//! let files = fetch_files(&model, &HubOptions::from_env(false))?;
//! let clip = load_model(&files, &Device::Cpu, DType::F32)?;
//! let size = clip.config().vision_config.image_size;
//! let pixels = Preprocessor::new(size).preprocess(jpeg)?;
//! let pixels = candle_core::Tensor::from_vec(pixels, (1, 3, size, size), &Device::Cpu)?;
//! let image = clip.encode_image(&pixels)?;
//! let prompt = ClipTokenizer::shared().tokenize("a photo of a cat", 77);
//! let text = clip.encode_text(&[prompt], &Device::Cpu)?;
//! # Ok(()) }
//! ```
//!
//! Modules, by what a reader looks for:
//! - [`registry`]: the published models and their facts (names, shapes,
//!   weights, parameter counts); [`config`]: an architecture's numbers.
//! - [`towers`]: the ViT, ResNet and text towers; [`ClipModel`] joins them;
//!   [`embed`]: from a batch of crops or prompts to unit-length embeddings
//!   on the host.
//! - [`checkpoint`]: finding, fetching and reading weights in Hugging Face's
//!   and open_clip's layouts, and writing random ones for tests.
//! - [`image`]: decode, PIL-exact resize, crop, normalise; [`text`]: the BPE
//!   tokenizer.
//! - [`ops`]: the layers a forward pass spends its time in, each one entry
//!   that picks the CPU or CUDA implementation inside.

// Data paths never panic: a bad input is an error naming it. Tests may
// unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod embed;
pub mod error;
pub mod image;
pub mod ops;
pub mod profile;
pub mod registry;
pub mod text;
pub mod towers;

#[cfg(test)]
mod test_support;

pub use checkpoint::{
    HubOptions, ModelFiles, ModelRef, ModelSource, fetch_config, fetch_files, load_model,
};
pub use clip::ClipModel;
pub use config::ClipConfig;
pub use error::{ComputeError, ConfigError, ModelError};
pub use image::{ImageError, Preprocessor};
pub use registry::{Family, KnownModel, find_known};
pub use text::{ClipTokenizer, Tokens};
