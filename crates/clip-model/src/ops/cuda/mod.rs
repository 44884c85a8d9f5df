//! The ops on a CUDA device as this crate's own kernels (`kernels/*.cu`,
//! compiled to PTX by `build.rs`, launched by `launch.rs`) instead of
//! chains of candle ops:
//!
//! - a linear layer is cuBLAS's product (through candle's `matmul`) followed
//!   by one pass that adds the bias, applies QuickGELU and adds the
//!   residual (`linear_epilogue.cu`), where candle needs a broadcast bias
//!   addition, three element-wise kernels for QuickGELU and a residual add;
//! - attention reads the packed q/k/v projection directly and writes the
//!   merged heads (`packed_attention.cu`): no head split or merge copies, no
//!   score tensor, softmax in f32;
//! - [`epilogue`] is the same pass after the ResNets' convolutions
//!   (`ops/conv.rs`), with ReLU; the patch matrix and average pooling of
//!   channels-last maps are kernels too (`channels_last.cu`).
//!
//! What share of a pass the replaced element-wise passes, bias additions
//! and copies took is in `benches/results/`. `CLIP_CUDA_FUSED=0` turns the
//! kernels off (candle's ops then run everything), for comparing the two
//! paths on the same machine.
//!
//! The ops also have plain CPU implementations (f32 loops, never used by
//! the model: the CPU has its own fused layers, [`super::cpu`]) so that
//! everything here but the kernel launches runs in the test suite on
//! machines with no GPU; the kernels themselves are checked on the CPU by
//! this crate's `tests/model/cuda_kernels_on_cpu.rs`.

use std::sync::LazyLock;

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, bail,
};
use candle_nn::Linear;

use super::cpu::slice_f32;
use super::epilogue::EpilogueActivation;
use super::shapes::{AttentionShape, product_dims};

#[cfg(feature = "cuda")]
pub(crate) mod launch;

/// The head sizes `packed_attention.cu` is instantiated for: 64 for every
/// published CLIP model, the smaller ones for the test suite's tiny models.
const HEAD_DIMS: [usize; 5] = [4, 8, 16, 32, 64];

/// CUDA's limit on a grid's third dimension, which indexes images.
const MAX_IMAGES_PER_LAUNCH: usize = 65_535;

static ENABLED: LazyLock<bool> =
    LazyLock::new(|| std::env::var("CLIP_CUDA_FUSED").map_or(true, |v| v != "0"));

/// Whether the fused kernels run tensors of `dtype` on `device`: CUDA, f32,
/// f16 or bf16, and `CLIP_CUDA_FUSED` not `0`.
pub fn runs_on_device(device: &Device, dtype: DType) -> bool {
    *ENABLED && device.is_cuda() && matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// Whether a linear layer over `x` takes the fused kernels: a CUDA tensor
/// in f32, f16 or bf16, a layer with a bias, and `CLIP_CUDA_FUSED` not `0`.
pub fn runs_linear(x: &Tensor, layer: &Linear) -> bool {
    runs_on(x) && layer.bias().is_some()
}

/// Whether attention over the packed projection `qkv` (batch, tokens,
/// 3·width) with `heads` heads takes the fused kernel.
pub fn runs_attention(qkv: &Tensor, heads: usize) -> bool {
    let packed = qkv.dims().last().copied().unwrap_or(0);
    let width = packed / 3;
    runs_on(qkv)
        && qkv.rank() == 3
        && packed == 3 * width
        && heads > 0
        && width % heads == 0
        && HEAD_DIMS.contains(&(width / heads))
}

fn runs_on(x: &Tensor) -> bool {
    runs_on_device(x.device(), x.dtype())
}

/// `activation(x Wᵀ + b + residual)`. Check [`runs_linear`] first.
pub fn linear(
    x: &Tensor,
    layer: &Linear,
    residual: Option<&Tensor>,
    activation: EpilogueActivation,
) -> Result<Tensor> {
    let Some(bias) = layer.bias() else {
        bail!("fused CUDA linear layer: the layer has no bias")
    };
    let (n, k) = layer.weight().dims2()?;
    let out_dims = product_dims(x, layer.weight())?;
    let rows = x.elem_count() / k.max(1);
    // One product over all rows (a batched product against a broadcast
    // weight is what candle's Linear does for 3-d inputs).
    let product = x
        .contiguous()?
        .reshape((rows, k))?
        .matmul(&layer.weight().t()?)?;
    let residual = residual
        .map(|r| r.contiguous()?.reshape((rows, n)))
        .transpose()?;
    epilogue(&product, bias, residual.as_ref(), activation)?.reshape(out_dims)
}

/// `activation(y + bias + residual)` in one pass over a (rows, n) matrix
/// product; `bias` (n), `residual` (rows, n).
pub fn epilogue(
    y: &Tensor,
    bias: &Tensor,
    residual: Option<&Tensor>,
    activation: EpilogueActivation,
) -> Result<Tensor> {
    let op = LinearEpilogue { activation };
    let y = y.contiguous()?;
    let bias = bias.contiguous()?;
    match residual {
        Some(residual) => y.apply_op3_no_bwd(&bias, &residual.contiguous()?, &op),
        None => y.apply_op2_no_bwd(&bias, &op),
    }
}

/// softmax(q kᵀ + mask) v for every head, from the packed (batch, tokens,
/// 3·width) projection (q pre-scaled) to (batch, tokens, width). `mask`:
/// additive f32 (tokens, tokens). Check [`runs_attention`] first.
pub fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let qkv = qkv.contiguous()?;
    let op = PackedAttention { heads };
    let mask = mask
        .map(|m| m.to_dtype(DType::F32)?.contiguous())
        .transpose()?;
    let images = qkv.dim(0)?;
    let mut parts = Vec::with_capacity(images.div_ceil(MAX_IMAGES_PER_LAUNCH).max(1));
    for start in (0..images.max(1)).step_by(MAX_IMAGES_PER_LAUNCH) {
        let part = qkv.narrow(0, start, MAX_IMAGES_PER_LAUNCH.min(images - start))?;
        parts.push(match &mask {
            Some(mask) => part.apply_op2_no_bwd(mask, &op)?,
            None => part.apply_op1_no_bwd(&op)?,
        });
    }
    match parts.len() {
        1 => Ok(parts.remove(0)),
        _ => Tensor::cat(&parts, 0),
    }
}

/// `activation(y + bias + residual)` over a (rows, n) product.
struct LinearEpilogue {
    activation: EpilogueActivation,
}

/// The (rows, n) of an epilogue's operands, checked against each other.
fn epilogue_shape(y: &Layout, bias: &Layout, residual: Option<&Layout>) -> Result<(usize, usize)> {
    let (rows, n) = y.shape().dims2()?;
    if bias.shape().elem_count() != n {
        bail!(
            "linear-epilogue: bias of {:?} for {n} outputs",
            bias.shape()
        )
    }
    if let Some(residual) = residual
        && residual.shape() != y.shape()
    {
        bail!(
            "linear-epilogue: residual {:?} for a {:?} output",
            residual.shape(),
            y.shape()
        )
    }
    Ok((rows, n))
}

impl LinearEpilogue {
    fn on_cpu(
        &self,
        y: (&CpuStorage, &Layout),
        bias: (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, n) = epilogue_shape(y.1, bias.1, residual.map(|r| r.1))?;
        let y_values = f32_values(y, "product")?;
        let bias = f32_values(bias, "bias")?;
        let residual = residual.map(|r| f32_values(r, "residual")).transpose()?;
        let mut out = Vec::with_capacity(rows * n);
        for (i, &v) in y_values.iter().enumerate() {
            let v = v + bias[i % n] + residual.map_or(0.0, |r| r[i]);
            out.push(match self.activation {
                EpilogueActivation::Identity => v,
                EpilogueActivation::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
                EpilogueActivation::Relu => v.max(0.0),
            });
        }
        Ok((CpuStorage::F32(out), y.1.shape().clone()))
    }
}

impl CustomOp2 for LinearEpilogue {
    fn name(&self) -> &'static str {
        "linear-epilogue"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.on_cpu((y, y_layout), (bias, bias_layout), None)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &candle_core::CudaStorage,
        y_layout: &Layout,
        bias: &candle_core::CudaStorage,
        bias_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (rows, n) = epilogue_shape(y_layout, bias_layout, None)?;
        let out = launch::linear_epilogue(
            self.activation,
            (rows, n),
            (y, y_layout),
            (bias, bias_layout),
            None,
        )?;
        Ok((out, y_layout.shape().clone()))
    }
}

impl CustomOp3 for LinearEpilogue {
    fn name(&self) -> &'static str {
        "linear-epilogue"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.on_cpu(
            (y, y_layout),
            (bias, bias_layout),
            Some((residual, residual_layout)),
        )
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &candle_core::CudaStorage,
        y_layout: &Layout,
        bias: &candle_core::CudaStorage,
        bias_layout: &Layout,
        residual: &candle_core::CudaStorage,
        residual_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (rows, n) = epilogue_shape(y_layout, bias_layout, Some(residual_layout))?;
        let out = launch::linear_epilogue(
            self.activation,
            (rows, n),
            (y, y_layout),
            (bias, bias_layout),
            Some((residual, residual_layout)),
        )?;
        Ok((out, y_layout.shape().clone()))
    }
}

/// Attention over a packed projection, with an optional additive mask.
struct PackedAttention {
    heads: usize,
}

/// The launch sizes of `qkv` (and `mask`), checked against each other.
fn attention_shape(
    heads: usize,
    qkv: &Layout,
    mask: Option<(DType, &Layout)>,
) -> Result<AttentionShape> {
    let (images, tokens, packed) = qkv.shape().dims3()?;
    let head_dim = packed / 3 / heads.max(1);
    if packed != 3 * heads * head_dim || !HEAD_DIMS.contains(&head_dim) {
        bail!(
            "packed-attention: {packed} columns are not q, k and v of {heads} heads of {HEAD_DIMS:?}"
        )
    }
    if let Some((dtype, layout)) = mask
        && (dtype != DType::F32 || layout.shape().dims() != [tokens, tokens])
    {
        bail!(
            "packed-attention: the mask must be f32 ({tokens}, {tokens}), not {dtype:?} {:?}",
            layout.shape()
        )
    }
    Ok(AttentionShape {
        images,
        tokens,
        heads,
        head_dim,
    })
}

impl PackedAttention {
    fn on_cpu(
        &self,
        qkv: (&CpuStorage, &Layout),
        mask: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = attention_shape(self.heads, qkv.1, mask.map(|m| (m.0.dtype(), m.1)))?;
        let AttentionShape {
            images,
            tokens,
            heads,
            head_dim,
        } = shape;
        let width = shape.width();
        let qkv = f32_values(qkv, "q/k/v projection")?;
        let mask = mask.map(|m| f32_values(m, "mask")).transpose()?;
        let at = |image: usize, token: usize, part: usize, head: usize| {
            let start = (image * tokens + token) * 3 * width + part * width + head * head_dim;
            &qkv[start..start + head_dim]
        };
        let mut out = vec![0f32; images * tokens * width];
        for image in 0..images {
            for head in 0..heads {
                for query in 0..tokens {
                    let q = at(image, query, 0, head);
                    let scores: Vec<f32> = (0..tokens)
                        .map(|key| {
                            let dot: f32 = q
                                .iter()
                                .zip(at(image, key, 1, head))
                                .map(|(a, b)| a * b)
                                .sum();
                            dot + mask.map_or(0.0, |m| m[query * tokens + key])
                        })
                        .collect();
                    let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    if top == f32::NEG_INFINITY {
                        continue; // every key masked: zeros, as the kernel gives
                    }
                    let weights: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
                    let sum: f32 = weights.iter().sum();
                    let start = (image * tokens + query) * width + head * head_dim;
                    let dst = &mut out[start..start + head_dim];
                    for (key, w) in weights.iter().enumerate() {
                        for (o, v) in dst.iter_mut().zip(at(image, key, 2, head)) {
                            *o += w / sum * v;
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), shape.output()))
    }
}

impl CustomOp1 for PackedAttention {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(&self, qkv: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.on_cpu((qkv, layout), None)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        qkv: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let shape = attention_shape(self.heads, layout, None)?;
        let out = launch::packed_attention(shape, (qkv, layout), None)?;
        Ok((out, shape.output()))
    }
}

impl CustomOp2 for PackedAttention {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        qkv: &CpuStorage,
        layout: &Layout,
        mask: &CpuStorage,
        mask_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.on_cpu((qkv, layout), Some((mask, mask_layout)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        qkv: &candle_core::CudaStorage,
        layout: &Layout,
        mask: &candle_core::CudaStorage,
        mask_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let shape = attention_shape(self.heads, layout, Some((mask.dtype(), mask_layout)))?;
        let out = launch::packed_attention(shape, (qkv, layout), Some((mask, mask_layout)))?;
        Ok((out, shape.output()))
    }
}

/// The f32 elements of a contiguous CPU operand.
fn f32_values<'a>((storage, layout): (&'a CpuStorage, &Layout), what: &str) -> Result<&'a [f32]> {
    slice_f32(storage, layout, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::attention::{causal_mask, with_candle_ops};
    use crate::test_support::max_abs_diff;
    use candle_core::{Device, Module};

    #[test]
    fn fused_linear_layers_equal_candles_ops() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.2, (24, 16), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 24, &dev).unwrap();
        let layer = Linear::new(w, Some(b));
        // A strided (transposed) input is made contiguous first.
        let x = Tensor::randn(0f32, 1.0, (16, 3 * 5), &dev)
            .unwrap()
            .t()
            .unwrap()
            .reshape((3, 5, 16))
            .unwrap();
        let residual = Tensor::randn(0f32, 1.0, (3, 5, 24), &dev).unwrap();
        let y = layer.forward(&x).unwrap();

        use EpilogueActivation::*;
        let plain = linear(&x, &layer, None, Identity).unwrap();
        assert!(max_abs_diff(&plain, &y) < 1e-5);
        let with_residual = linear(&x, &layer, Some(&residual), Identity).unwrap();
        let summed = (&y + &residual).unwrap();
        assert!(max_abs_diff(&with_residual, &summed) < 1e-5);
        let activated = linear(&x, &layer, None, QuickGelu).unwrap();
        let expected = crate::ops::quick_gelu(&y).unwrap();
        assert!(max_abs_diff(&activated, &expected) < 1e-5);
        let rectified = linear(&x, &layer, Some(&residual), Relu).unwrap();
        assert!(max_abs_diff(&rectified, &summed.relu().unwrap()) < 1e-5);

        let no_bias = Linear::new(layer.weight().clone(), None);
        let err = linear(&x, &no_bias, None, Identity)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no bias"), "{err}");
        let wrong = Tensor::zeros((3, 5, 17), DType::F32, &dev).unwrap();
        let err = linear(&wrong, &layer, None, Identity)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not end in the weight's 16 inputs"),
            "{err}"
        );
    }

    #[test]
    fn packed_attention_equals_candles_ops() {
        let dev = Device::Cpu;
        for (heads, head_dim, tokens) in [(2, 4, 7), (3, 8, 50), (1, 64, 5)] {
            let width = heads * head_dim;
            let qkv = Tensor::randn(0f32, 1.0, (3, tokens, 3 * width), &dev).unwrap();
            let causal = causal_mask(tokens, &dev).unwrap();
            for mask in [None, Some(&causal)] {
                let fused = attention(&qkv, heads, mask).unwrap();
                let reference = with_candle_ops(&qkv, heads, mask).unwrap();
                assert!(
                    max_abs_diff(&fused, &reference) < 1e-5,
                    "{heads}x{head_dim}"
                );
            }
        }
    }

    #[test]
    fn attention_rejects_what_no_kernel_handles() {
        let dev = Device::Cpu;
        // head size 6 has no kernel instance
        let qkv = Tensor::zeros((1, 4, 3 * 12), DType::F32, &dev).unwrap();
        assert!(!runs_attention(&qkv, 2));
        let err = attention(&qkv, 2, None).unwrap_err().to_string();
        assert!(err.contains("not q, k and v of 2 heads"), "{err}");
        let qkv = Tensor::zeros((1, 4, 3 * 16), DType::F32, &dev).unwrap();
        let wrong_mask = causal_mask(5, &dev).unwrap();
        let err = attention(&qkv, 2, Some(&wrong_mask))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the mask must be f32 (4, 4)"), "{err}");
        // CPU tensors never take the fused path in the model
        assert!(!runs_attention(&qkv, 2));
    }
}
