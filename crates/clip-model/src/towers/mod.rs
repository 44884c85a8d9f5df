//! The towers a CLIP model is made of, each loading its checkpoint's
//! tensors by name (reading a constructor tells you the file layout) and
//! computing a pure function of tensors:
//!
//! - [`vit`]: the Vision Transformer image tower (ViT-B/32 ... ViT-L/14@336px);
//! - [`resnet`]: OpenAI's ModifiedResNet image tower (RN50 ... RN50x64);
//! - [`text`]: the causal text transformer;
//! - [`transformer`]: the pre-norm encoder the ViT and text towers share.
//!
//! The layers they spend their time in come from [`crate::ops`], which
//! picks the CPU or CUDA implementation: tower code never branches on the
//! device.

pub mod resnet;
pub mod text;
pub mod transformer;
pub mod vit;

pub use resnet::ModifiedResNet;
pub use text::TextTransformer;
pub use vit::VisionTransformer;
