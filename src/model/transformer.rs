//! The pre-norm transformer encoder both CLIP towers share (Radford et al.,
//! 2021, <https://arxiv.org/abs/2103.00020>; tensor names of Hugging Face's
//! `CLIPEncoder`: `layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2}`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::clip_config::Activation;
use super::op_timer;

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

/// Multi-head self-attention with separate q/k/v projections.
#[derive(Debug, Clone)]
struct SelfAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
    scale: f64,
}

impl SelfAttention {
    fn new(vb: VarBuilder, shape: &EncoderShape) -> Result<Self> {
        let w = shape.width;
        let head_dim = w / shape.heads;
        Ok(Self {
            q_proj: candle_nn::linear(w, w, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear(w, w, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(w, w, vb.pp("v_proj"))?,
            out_proj: candle_nn::linear(w, w, vb.pp("out_proj"))?,
            heads: shape.heads,
            head_dim,
            scale: (head_dim as f64).powf(-0.5),
        })
    }

    /// `xs`: (batch, tokens, width); `mask`: additive (tokens, tokens).
    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, w) = xs.dims3()?;
        let split = |x: Tensor| -> Result<Tensor> {
            x.reshape((b, t, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let dev = xs.device();
        let project = |proj: &Linear, x: &Tensor| {
            op_timer::linear(
                "attention: projections, matmul",
                "attention: projections, bias",
                proj,
                x,
            )
        };
        let q = project(&self.q_proj, xs)?;
        let k = project(&self.k_proj, xs)?;
        let v = project(&self.v_proj, xs)?;
        let (q, k, v) = op_timer::time("attention: scale, split heads", dev, || {
            Ok((split((q * self.scale)?)?, split(k)?, split(v)?))
        })?;
        let out = op_timer::time("attention: scores, softmax, values", dev, || {
            attend_in_slices(&q, &k, &v, mask, MAX_SCORE_ELEMENTS)
        })?;
        let out = op_timer::time("attention: merge heads", dev, || {
            out.transpose(1, 2)?.reshape((b, t, w))
        })?;
        project(&self.out_proj, &out)
    }
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

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dev = xs.device();
        let h = op_timer::linear("mlp: fc1, matmul", "mlp: fc1, bias", &self.fc1, xs)?;
        let h = op_timer::time("mlp: activation", dev, || match self.activation {
            Activation::QuickGelu => super::quick_gelu::quick_gelu(&h),
            Activation::Gelu => h.gelu_erf(),
            Activation::GeluNew => h.gelu(),
        })?;
        op_timer::linear("mlp: fc2, matmul", "mlp: fc2, bias", &self.fc2, &h)
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
        let h = self.self_attn.forward(&normed, mask)?;
        let xs = op_timer::time("residual adds", dev, || xs + h)?;
        let normed = op_timer::time("layer norms", dev, || self.layer_norm2.forward(&xs))?;
        let h = self.mlp.forward(&normed)?;
        op_timer::time("residual adds", dev, || xs + h)
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
        assert_eq!(sliced.dims(), whole.dims());
        let diff: f32 = (sliced - &whole)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
    }
}
