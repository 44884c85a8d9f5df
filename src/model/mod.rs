//! The model layer: CLIP architectures, weights, tokenizer and image
//! preprocessing. It knows tensors and files, nothing of SQL or Arrow.

pub mod channels_last;
pub mod clip;
pub mod clip_config;
pub mod cpu_attention;
mod cpu_gemm;
pub mod cpu_linear;
pub mod cuda_fused;
#[cfg(feature = "cuda")]
mod cuda_launch;
pub mod epilogue;
pub mod jpeg_decode;
pub mod layout;
pub mod op_timer;
pub mod open_clip_layout;
pub mod pil_resize;
pub mod preprocess;
pub mod quick_gelu;
pub mod random_weights;
pub mod registry;
pub mod resnet;
#[cfg(test)]
mod test_support;
pub mod text;
mod text_clean;
pub mod tokenizer;
pub mod transformer;
pub mod vit;
pub mod weights;

pub use clip::ClipModel;
pub use clip_config::ClipConfig;
pub use preprocess::{ImageError, Preprocessor};
pub use tokenizer::{ClipTokenizer, Tokens};
pub use weights::{ModelError, ModelRef};
