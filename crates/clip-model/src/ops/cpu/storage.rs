//! Which tensors the fused CPU ops take, and their f32 elements as slices.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, bail};

/// Whether `x` takes the fused CPU ops: f32 on the CPU. (`gemm` has no
/// fast half-precision kernels on the CPU; those stay candle's ops.)
pub fn runs(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The f32 elements of a contiguous CPU tensor's storage, in layout order.
pub fn storage_f32<'a>(storage: &'a Storage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        bail!("{what}: expected a CPU tensor")
    };
    slice_f32(cpu, layout, what)
}

/// [`storage_f32`] of a custom op's CPU operand.
pub fn slice_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    if storage.dtype() != DType::F32 {
        bail!("{what}: expected f32, not {:?}", storage.dtype())
    }
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{what}: expected a contiguous tensor")
    };
    match storage.as_slice::<f32>()?.get(start..end) {
        Some(values) => Ok(values),
        None => bail!("{what}: layout outside its storage"),
    }
}
