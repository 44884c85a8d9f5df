//! The layers a forward pass spends its time in, each one entry that picks
//! the implementation for its tensors inside, as candle-nn's fused ops do:
//! the towers call [`linear()`], [`attention()`], [`quick_gelu()`] and the
//! convolutions of [`conv`], and never branch on the device.
//!
//! Behind each entry, in order of preference:
//! - [`cuda`]: this crate's kernels after cuBLAS's products on a CUDA device
//!   (`cuda/kernels/*.cu`, compiled to PTX by `build.rs`);
//! - [`cpu`]: one `gemm` call per product with bias, residual and
//!   activation fused, in f32 on the CPU;
//! - candle's own ops, for everything else (half precision on the CPU).
//!
//! `CLIP_CUDA_FUSED=0` turns the CUDA kernels off, for comparing the paths
//! on one machine.

pub mod attention;
pub mod conv;
pub mod cpu;
pub mod cuda;
pub mod epilogue;
pub mod linear;
pub mod quick_gelu;
pub mod shapes;

pub use attention::{attention, causal_mask};
pub use conv::{Conv, MapLayout};
pub use epilogue::EpilogueActivation;
pub use linear::linear;
pub use quick_gelu::quick_gelu;
