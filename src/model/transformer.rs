//! The pre-norm transformer encoder both CLIP towers share (Radford et al.,
//! 2021, <https://arxiv.org/abs/2103.00020>; tensor names of Hugging Face's
//! `CLIPEncoder`: `layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2}`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::clip_config::Activation;

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
        let q = split((self.q_proj.forward(xs)? * self.scale)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scores = q.matmul(&k.t()?)?;
        // Softmax in f32 whatever the model's dtype: half-precision scores
        // lose the small differences that decide attention.
        let in_dtype = scores.dtype();
        let mut scores = scores.to_dtype(DType::F32)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(in_dtype)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, w))?;
        self.out_proj.forward(&out)
    }
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
        let h = self.fc1.forward(xs)?;
        let h = match self.activation {
            Activation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
            Activation::Gelu => h.gelu_erf()?,
            Activation::GeluNew => h.gelu()?,
        };
        self.fc2.forward(&h)
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
        let h = self
            .self_attn
            .forward(&self.layer_norm1.forward(xs)?, mask)?;
        let xs = (xs + h)?;
        let h = self.mlp.forward(&self.layer_norm2.forward(&xs)?)?;
        xs + h
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
