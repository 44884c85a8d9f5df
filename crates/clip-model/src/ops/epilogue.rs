//! What a fused layer applies to `x Wᵀ + bias + residual` before writing it
//! out: the activations the CLIP towers put right after a product (the
//! transformers' QuickGELU after `fc1`, the ResNets' ReLU after each
//! convolution). Shared by the CPU layers (`cpu/linear.rs`) and the CUDA
//! kernels (`cuda/kernels/linear_epilogue.cu` reads the same codes).

/// The activation after a fused product; the discriminants are the codes
/// the CUDA kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpilogueActivation {
    Identity = 0,
    QuickGelu = 1,
    Relu = 2,
}
