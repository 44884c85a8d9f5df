//! Launching the kernels of `kernels/` (compiled to PTX by `build.rs`) on
//! candle's CUDA storage. Shapes are checked by the caller
//! (`epilogue_shape`, `attention_shape`); here they become grids.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, DType, Layout, Result, bail};

use crate::ops::epilogue::EpilogueActivation;
use crate::ops::shapes::{AttentionShape, MapShape};

const LINEAR_EPILOGUE_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/linear_epilogue.ptx"));
const PACKED_ATTENTION_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/packed_attention.ptx"));

/// Queries per block of the attention kernel (one thread each).
const QUERIES_PER_BLOCK: u32 = 64;

type Operand<'a> = (&'a CudaStorage, &'a Layout);

/// `linear_epilogue_<dtype>` over a (rows, n) product: one block per row.
pub(crate) fn linear_epilogue(
    activation: EpilogueActivation,
    (rows, n): (usize, usize),
    y: Operand,
    bias: Operand,
    residual: Option<Operand>,
) -> Result<CudaStorage> {
    let (Ok(grid), Ok(n)) = (u32::try_from(rows), u32::try_from(n)) else {
        bail!("linear-epilogue: {rows}x{n} is beyond one launch")
    };
    // A warp multiple, at most 256 threads striding over the row.
    let threads = n.next_multiple_of(32).clamp(32, 256);
    let config = LaunchConfig {
        grid_dim: (grid.max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    if rows == 0 {
        return empty_like(y.0);
    }
    let args = (config, n, activation as i32, y, bias, residual);
    match y.0.dtype() {
        DType::F32 => epilogue_typed::<f32>("linear_epilogue_f32", args),
        DType::F16 => epilogue_typed::<half::f16>("linear_epilogue_f16", args),
        DType::BF16 => epilogue_typed::<half::bf16>("linear_epilogue_bf16", args),
        other => bail!("linear-epilogue: no kernel for {other:?}"),
    }
}

type EpilogueArgs<'a> = (
    LaunchConfig,
    u32,
    i32,
    Operand<'a>,
    Operand<'a>,
    Option<Operand<'a>>,
);

fn epilogue_typed<T: CudaDType + DeviceRepr>(
    kernel: &str,
    (config, n, activation, y, bias, residual): EpilogueArgs,
) -> Result<CudaStorage> {
    let dev = y.0.device().clone();
    let y = contiguous::<T>(y, "product")?;
    let bias = contiguous::<T>(bias, "bias")?;
    let residual = residual
        .map(|r| contiguous::<T>(r, "residual"))
        .transpose()?;
    // SAFETY: the kernel writes every element before anything reads it.
    let out = unsafe { dev.alloc::<T>(y.len()) }?;
    let func = dev.get_or_load_custom_func(
        kernel,
        "datafusion_clip_linear_epilogue",
        LINEAR_EPILOGUE_PTX,
    )?;
    let null: u64 = 0;
    let mut builder = func.builder();
    builder.arg(&y);
    builder.arg(&bias);
    match &residual {
        Some(residual) => builder.arg(residual),
        None => builder.arg(&null),
    };
    builder.arg(&out);
    builder.arg(&n);
    builder.arg(&activation);
    // SAFETY: the arguments are linear_epilogue.cu's parameters in order;
    // the grid covers rows x n elements, which y, residual and out hold.
    unsafe { builder.launch(config) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev))
}

/// `packed_attention_<dtype>_<head_dim>`: one block per (query block, head,
/// image), one thread per query.
pub(crate) fn packed_attention(
    shape: AttentionShape,
    qkv: Operand,
    mask: Option<Operand>,
) -> Result<CudaStorage> {
    let (Ok(tokens), Ok(heads), Ok(images)) = (
        i32::try_from(shape.tokens),
        u16::try_from(shape.heads),
        u16::try_from(shape.images),
    ) else {
        bail!("packed-attention: {shape:?} is beyond one launch")
    };
    if shape.images == 0 || shape.tokens == 0 {
        return empty_like(qkv.0);
    }
    let config = LaunchConfig {
        grid_dim: (
            (tokens as u32).div_ceil(QUERIES_PER_BLOCK),
            u32::from(heads),
            u32::from(images),
        ),
        block_dim: (QUERIES_PER_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let name = |suffix: &str| format!("packed_attention_{suffix}_{}", shape.head_dim);
    let args = (config, tokens, i32::from(heads), qkv, mask);
    match qkv.0.dtype() {
        DType::F32 => attention_typed::<f32>(&name("f32"), args),
        DType::F16 => attention_typed::<half::f16>(&name("f16"), args),
        DType::BF16 => attention_typed::<half::bf16>(&name("bf16"), args),
        other => bail!("packed-attention: no kernel for {other:?}"),
    }
}

type AttentionArgs<'a> = (LaunchConfig, i32, i32, Operand<'a>, Option<Operand<'a>>);

fn attention_typed<T: CudaDType + DeviceRepr>(
    kernel: &str,
    (config, tokens, heads, qkv, mask): AttentionArgs,
) -> Result<CudaStorage> {
    let dev = qkv.0.device().clone();
    let qkv = contiguous::<T>(qkv, "q/k/v projection")?;
    let mask = mask.map(|m| contiguous::<f32>(m, "mask")).transpose()?;
    // SAFETY: the kernel writes every (image, token, head, dim) element.
    let out = unsafe { dev.alloc::<T>(qkv.len() / 3) }?;
    let func = dev.get_or_load_custom_func(
        kernel,
        "datafusion_clip_packed_attention",
        PACKED_ATTENTION_PTX,
    )?;
    let null: u64 = 0;
    let mut builder = func.builder();
    builder.arg(&qkv);
    match &mask {
        Some(mask) => builder.arg(mask),
        None => builder.arg(&null),
    };
    builder.arg(&out);
    builder.arg(&tokens);
    builder.arg(&heads);
    // SAFETY: the arguments are packed_attention.cu's parameters in order;
    // the grid covers images x heads x tokens, all within the buffers.
    unsafe { builder.launch(config) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev))
}

/// The result of an op with no elements (nothing to launch): one element
/// of `like`'s dtype, as a zero-byte allocation may be refused.
fn empty_like(like: &CudaStorage) -> Result<CudaStorage> {
    let dev = like.device().clone();
    match like.dtype() {
        DType::F32 => Ok(f32::wrap_cuda_slice(dev.alloc_zeros::<f32>(1)?, dev)),
        DType::F16 => Ok(half::f16::wrap_cuda_slice(
            dev.alloc_zeros::<half::f16>(1)?,
            dev,
        )),
        DType::BF16 => Ok(half::bf16::wrap_cuda_slice(
            dev.alloc_zeros::<half::bf16>(1)?,
            dev,
        )),
        other => bail!("no fused kernels for {other:?}"),
    }
}

/// The elements of a contiguous operand, as a view into its buffer.
fn contiguous<'a, T: CudaDType>(
    (storage, layout): Operand<'a>,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{what}: expected a contiguous tensor")
    };
    let slice: &CudaSlice<T> = storage.as_cuda_slice::<T>()?;
    if end > slice.len() {
        bail!("{what}: layout outside its buffer")
    }
    Ok(slice.slice(start..end))
}

const CHANNELS_LAST_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/channels_last.ptx"));

/// `im2col_nhwc_<dtype>`: one block per output pixel.
pub(crate) fn im2col_nhwc(
    s: MapShape,
    (kernel, stride, padding): (usize, usize, usize),
    x: Operand,
) -> Result<CudaStorage> {
    let columns = kernel * kernel * s.channels;
    let ints = [
        s.height,
        s.width,
        s.channels,
        kernel,
        stride,
        padding,
        s.out_height,
        s.out_width,
    ]
    .map(i32::try_from);
    let pixels = s.batch * s.out_height * s.out_width;
    let (Ok(pixels32), Ok(columns32), [Ok(h), Ok(w), Ok(c), Ok(k), Ok(st), Ok(p), Ok(oh), Ok(ow)]) =
        (i32::try_from(pixels), u32::try_from(columns), ints)
    else {
        bail!("im2col-nhwc: {s:?} is beyond one launch")
    };
    if pixels == 0 || columns == 0 {
        return empty_like(x.0);
    }
    let config = LaunchConfig {
        grid_dim: (pixels32 as u32, 1, 1),
        block_dim: (columns32.next_multiple_of(32).min(256), 1, 1),
        shared_mem_bytes: 0,
    };
    let out_len = pixels * columns;
    let ints = [h, w, c, k, st, p, oh, ow];
    match x.0.dtype() {
        DType::F32 => map_typed::<f32>("im2col_nhwc_f32", config, x, out_len, &ints),
        DType::F16 => map_typed::<half::f16>("im2col_nhwc_f16", config, x, out_len, &ints),
        DType::BF16 => map_typed::<half::bf16>("im2col_nhwc_bf16", config, x, out_len, &ints),
        other => bail!("im2col-nhwc: no kernel for {other:?}"),
    }
}

/// `avg_pool_nhwc_<dtype>`: one block per output pixel.
pub(crate) fn avg_pool_nhwc(s: MapShape, size: usize, x: Operand) -> Result<CudaStorage> {
    let ints = [
        s.height,
        s.width,
        s.channels,
        size,
        s.out_height,
        s.out_width,
    ]
    .map(i32::try_from);
    let pixels = s.batch * s.out_height * s.out_width;
    let (Ok(pixels32), Ok(channels32), [Ok(h), Ok(w), Ok(c), Ok(n), Ok(oh), Ok(ow)]) =
        (i32::try_from(pixels), u32::try_from(s.channels), ints)
    else {
        bail!("avg-pool-nhwc: {s:?} is beyond one launch")
    };
    if pixels == 0 || s.channels == 0 {
        return empty_like(x.0);
    }
    let config = LaunchConfig {
        grid_dim: (pixels32 as u32, 1, 1),
        block_dim: (channels32.next_multiple_of(32).min(256), 1, 1),
        shared_mem_bytes: 0,
    };
    let out_len = pixels * s.channels;
    let ints = [h, w, c, n, oh, ow];
    match x.0.dtype() {
        DType::F32 => map_typed::<f32>("avg_pool_nhwc_f32", config, x, out_len, &ints),
        DType::F16 => map_typed::<half::f16>("avg_pool_nhwc_f16", config, x, out_len, &ints),
        DType::BF16 => map_typed::<half::bf16>("avg_pool_nhwc_bf16", config, x, out_len, &ints),
        other => bail!("avg-pool-nhwc: no kernel for {other:?}"),
    }
}

/// A channels_last.cu kernel `(const T* x, T* out, int...)`.
fn map_typed<T: CudaDType + DeviceRepr>(
    kernel: &str,
    config: LaunchConfig,
    x: Operand,
    out_len: usize,
    ints: &[i32],
) -> Result<CudaStorage> {
    let dev = x.0.device().clone();
    let x = contiguous::<T>(x, "feature map")?;
    // SAFETY: the kernel writes every output element.
    let out = unsafe { dev.alloc::<T>(out_len) }?;
    let func =
        dev.get_or_load_custom_func(kernel, "datafusion_clip_channels_last", CHANNELS_LAST_PTX)?;
    let mut builder = func.builder();
    builder.arg(&x);
    builder.arg(&out);
    for value in ints {
        builder.arg(value);
    }
    // SAFETY: x, out and then the int parameters of channels_last.cu's
    // kernels in order; the grid covers the output pixels, the block their
    // columns or channels, within the buffers (shapes checked by the op).
    unsafe { builder.launch(config) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev))
}
