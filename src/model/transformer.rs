//! The pre-norm transformer encoder both CLIP towers share (Radford et al.,
//! 2021, <https://arxiv.org/abs/2103.00020>; tensor names of Hugging Face's
//! `CLIPEncoder`: `layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2}`).

use candle_core::{DType, Module, Result, Tensor, bail};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::clip_config::Activation;
use super::cuda_fused::{self, EpilogueActivation};
use super::{cpu_attention, cpu_linear, op_timer};

/// Shape of one encoder stack.
#[derive(Debug, Clone, Copy)]
pub struct EncoderShape {
    pub width: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

/// Multi-head self-attention. The checkpoint's separate q/k/v projections
/// are packed into one (3·width x width) layer at load time, with q's
/// weights and bias pre-multiplied by `head_dim^-½`: one matrix product
/// instead of three, and no scaling pass.
#[derive(Debug, Clone)]
struct SelfAttention {
    qkv_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        let w = shape.width;
        let head_dim = w / shape.heads;
        let scale = (head_dim as f64).powf(-0.5);
        let q = candle_nn::linear(w, w, vb.pp("q_proj"))?;
        let k = candle_nn::linear(w, w, vb.pp("k_proj"))?;
        let v = candle_nn::linear(w, w, vb.pp("v_proj"))?;
        let weight = Tensor::cat(&[&(q.weight() * scale)?, k.weight(), v.weight()], 0)?;
        let bias = match (q.bias(), k.bias(), v.bias()) {
            (Some(q), Some(k), Some(v)) => Some(Tensor::cat(&[&(q * scale)?, k, v], 0)?),
            _ => None,
        };
        Ok(Self {
            qkv_proj: Linear::new(weight, bias),
            out_proj: candle_nn::linear(w, w, vb.pp("out_proj"))?,
            heads: shape.heads,
        })
    }

    /// `residual + attention(xs)`. `xs`: (batch, tokens, width); `mask`:
    /// additive (tokens, tokens).
    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>, residual: &Tensor) -> Result<Tensor> {
        let dev = xs.device();
        let qkv = op_timer::time("attention: q/k/v projection", dev, || {
            linear(xs, &self.qkv_proj, None, false)
        })?;
        let out = op_timer::time("attention: scores, softmax, values", dev, || {
            if cpu_linear::runs_fused(&qkv) {
                return cpu_attention::attention(&qkv, self.heads, mask);
            }
            if cuda_fused::runs_attention(&qkv, self.heads) {
                return cuda_fused::attention(&qkv, self.heads, mask);
            }
            attention_with_candle_ops(&qkv, self.heads, mask)
        })?;
        op_timer::time("attention: output projection, residual", dev, || {
            linear(&out, &self.out_proj, Some(residual), false)
        })
    }
}

/// `x Wᵀ + b + residual`, or `QuickGELU(x Wᵀ + b)`, on the fastest path
/// for `x`: one gemm call on the CPU in f32, cuBLAS and one fused pass on
/// CUDA, else candle's ops. (No encoder layer has both an activation and a
/// residual.)
fn linear(
    x: &Tensor,
    layer: &Linear,
    residual: Option<&Tensor>,
    quick_gelu: bool,
) -> Result<Tensor> {
    if residual.is_some() && quick_gelu {
        bail!("an encoder layer has a residual or an activation, not both")
    }
    if cuda_fused::runs_linear(x, layer) {
        let activation = match quick_gelu {
            true => EpilogueActivation::QuickGelu,
            false => EpilogueActivation::Identity,
        };
        return cuda_fused::linear(x, layer, residual, activation);
    }
    match quick_gelu {
        true => cpu_linear::linear_quick_gelu(x, layer),
        false => cpu_linear::linear_add(x, layer, residual),
    }
}

/// Attention over the packed (batch, tokens, 3·width) projection with
/// candle's ops, on any device and dtype: split the heads, attend, merge.
pub(crate) fn attention_with_candle_ops(
    qkv: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, t, packed) = qkv.dims3()?;
    let width = packed / 3;
    let head_dim = width / heads.max(1);
    // (b, t, 3, heads, head_dim): q, k, v each (b, heads, t, head_dim).
    let qkv = qkv.contiguous()?.reshape((b, t, 3, heads, head_dim))?;
    let split = |i: usize| {
        qkv.narrow(2, i, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()
    };
    let out = attend_in_slices(&split(0)?, &split(1)?, &split(2)?, mask, MAX_SCORE_ELEMENTS)?;
    out.transpose(1, 2)?.reshape((b, t, width))
}

/// GPU kernels index the score tensor with 32-bit integers: keep each piece
/// under 2^31 elements (ViT-L/14@336px reaches that at ~400 images).
const MAX_SCORE_ELEMENTS: usize = i32::MAX as usize;

/// [`attend`] over slices of the batch whose score tensors (batch x heads x
/// tokens x tokens) stay within `max_score_elements`.
fn attend_in_slices(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    max_score_elements: usize,
) -> Result<Tensor> {
    let (b, heads, t, _) = q.dims4()?;
    let rows = (max_score_elements / (heads * t * t).max(1)).max(1);
    if b <= rows {
        return attend(q, k, v, mask);
    }
    let mut parts = Vec::with_capacity(b.div_ceil(rows));
    for start in (0..b).step_by(rows) {
        let n = rows.min(b - start);
        parts.push(attend(
            &q.narrow(0, start, n)?,
            &k.narrow(0, start, n)?,
            &v.narrow(0, start, n)?,
            mask,
        )?);
    }
    Tensor::cat(&parts, 0)
}

/// softmax(q kᵀ + mask) v for (batch, heads, tokens, head_dim) tensors.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let scores = q.matmul(&k.t()?)?;
    // Softmax in f32 whatever the model's dtype: half-precision scores
    // lose the small differences that decide attention.
    let in_dtype = scores.dtype();
    let mut scores = scores.to_dtype(DType::F32)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(in_dtype)?;
    probs.matmul(v)
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(shape.width, shape.intermediate, vb.pp("fc1"))?,
            fc2: candle_nn::linear(shape.intermediate, shape.width, vb.pp("fc2"))?,
            activation: shape.activation,
        })
    }

    /// `residual + fc2(activation(fc1(xs)))`.
    fn forward(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let dev = xs.device();
        let h = op_timer::time("mlp: fc1, activation", dev, || match self.activation {
            Activation::QuickGelu => linear(xs, &self.fc1, None, true),
            Activation::Gelu => linear(xs, &self.fc1, None, false)?.gelu_erf(),
            Activation::GeluNew => linear(xs, &self.fc1, None, false)?.gelu(),
        })?;
        op_timer::time("mlp: fc2, residual", dev, || {
            linear(&h, &self.fc2, Some(residual), false)
        })
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: SelfAttention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        let eps = shape.layer_norm_eps;
        Ok(Self {
            layer_norm1: candle_nn::layer_norm(shape.width, eps, vb.pp("layer_norm1"))?,
            self_attn: SelfAttention::new(vb.pp("self_attn"), shape)?,
            layer_norm2: candle_nn::layer_norm(shape.width, eps, vb.pp("layer_norm2"))?,
            mlp: Mlp::new(vb.pp("mlp"), shape)?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let dev = xs.device();
        let normed = op_timer::time("layer norms", dev, || self.layer_norm1.forward(xs))?;
        let xs = self.self_attn.forward(&normed, mask, xs)?;
        let normed = op_timer::time("layer norms", dev, || self.layer_norm2.forward(&xs))?;
        self.mlp.forward(&normed, &xs)
    }
}

/// A stack of encoder layers (`encoder.layers.*`).
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    pub fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        let vb = vb.pp("layers");
        let layers = (0..shape.layers)
            .map(|i| EncoderLayer::new(vb.pp(i), shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// `xs`: (batch, tokens, width); `mask`: optional additive f32 (tokens, tokens).
    pub fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, mask)?;
        }
        Ok(xs)
    }
}

/// Additive causal mask: position `i` sees positions `0..=i`.
pub fn causal_mask(tokens: usize, device: &candle_core::Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..tokens)
        .flat_map(|i| (0..tokens).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (tokens, tokens), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::max_abs_diff;
    use candle_core::Device;

    #[test]
    fn attention_in_slices_equals_attention_at_once() {
        let dev = Device::Cpu;
        let (b, h, t, d) = (7, 2, 5, 4);
        let q = Tensor::randn(0f32, 1., (b, h, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (b, h, t, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (b, h, t, d), &dev).unwrap();
        let mask = causal_mask(t, &dev).unwrap();
        let whole = attend(&q, &k, &v, Some(&mask)).unwrap();
        // Room for 3 images' scores per slice: slices of 3, 3 and 1.
        let sliced = attend_in_slices(&q, &k, &v, Some(&mask), 3 * h * t * t).unwrap();
        assert_eq!(max_abs_diff(&sliced, &whole), 0.0);
    }
}
