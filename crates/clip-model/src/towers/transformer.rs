//! The pre-norm transformer encoder both CLIP towers share (Radford et al.,
//! 2021, <https://arxiv.org/abs/2103.00020>; tensor names of Hugging Face's
//! `CLIPEncoder`: `layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2}`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use crate::config::Activation;
use crate::ops::{self, EpilogueActivation};
use crate::profile;

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
        let qkv = profile::time("attention: q/k/v projection", dev, || {
            ops::linear(xs, &self.qkv_proj, None, EpilogueActivation::Identity)
        })?;
        let out = profile::time("attention: scores, softmax, values", dev, || {
            ops::attention(&qkv, self.heads, mask)
        })?;
        profile::time("attention: output projection, residual", dev, || {
            ops::linear(
                &out,
                &self.out_proj,
                Some(residual),
                EpilogueActivation::Identity,
            )
        })
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

    /// `residual + fc2(activation(fc1(xs)))`.
    fn forward(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let dev = xs.device();
        let identity = EpilogueActivation::Identity;
        let h = profile::time("mlp: fc1, activation", dev, || match self.activation {
            Activation::QuickGelu => {
                ops::linear(xs, &self.fc1, None, EpilogueActivation::QuickGelu)
            }
            Activation::Gelu => ops::linear(xs, &self.fc1, None, identity)?.gelu_erf(),
            Activation::GeluNew => ops::linear(xs, &self.fc1, None, identity)?.gelu(),
        })?;
        profile::time("mlp: fc2, residual", dev, || {
            ops::linear(&h, &self.fc2, Some(residual), identity)
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
        let normed = profile::time("layer norms", dev, || self.layer_norm1.forward(xs))?;
        let xs = self.self_attn.forward(&normed, mask, xs)?;
        let normed = profile::time("layer norms", dev, || self.layer_norm2.forward(&xs))?;
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
