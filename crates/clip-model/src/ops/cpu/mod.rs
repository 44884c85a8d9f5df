//! The ops on the CPU in f32, fused where candle's composition would make
//! several single-threaded passes: each product is one `gemm` call with its
//! bias, residual and activation in the same pass ([`linear`]), attention
//! runs straight from the packed q/k/v projection ([`attention`]),
//! QuickGELU is one vectorised pass ([`quick_gelu`]), and convolutions build
//! their patch matrix a cache-sized tile at a time ([`conv`]).

pub mod attention;
pub mod conv;
pub mod gemm;
pub mod linear;
pub mod quick_gelu;
pub mod storage;

pub use storage::{runs, slice_f32, storage_f32};
