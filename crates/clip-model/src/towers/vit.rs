//! CLIP's Vision Transformer image tower (Dosovitskiy et al., 2020; CLIP's
//! variant adds a layer norm before the encoder). Loads the `vision_model.*`
//! tensors of Hugging Face's `CLIPVisionTransformer`, e.g.
//! `openai/clip-vit-base-patch32`.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::transformer::{Encoder, EncoderShape};
use crate::config::VisionConfig;
use crate::profile;

#[derive(Debug, Clone)]
pub struct VisionTransformer {
    /// Patch embedding as a matrix: (width, channels * patch * patch).
    patch_weight: Tensor,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layernorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    patch_size: usize,
    grid: usize,
    channels: usize,
}

impl VisionTransformer {
    pub fn new(vb: VarBuilder, cfg: &VisionConfig) -> Result<Self> {
        let width = cfg.hidden_size;
        let p = cfg.patch_size;
        let c = cfg.num_channels;
        let grid = cfg.grid();
        let emb = vb.pp("embeddings");
        // The checkpoint stores a bias-free conv with kernel = stride = patch;
        // on non-overlapping patches that is one matrix product, flattened
        // once here rather than on every call.
        let patch_weight = emb
            .get((width, c, p, p), "patch_embedding.weight")?
            .reshape((width, c * p * p))?;
        let class_embedding = emb.get(width, "class_embedding")?;
        let position_embedding = emb.get((grid * grid + 1, width), "position_embedding.weight")?;
        let eps = cfg.layer_norm_eps;
        let shape = EncoderShape {
            width,
            intermediate: cfg.intermediate_size,
            layers: cfg.num_hidden_layers,
            heads: cfg.num_attention_heads,
            activation: cfg.hidden_act,
            layer_norm_eps: eps,
        };
        Ok(Self {
            patch_weight,
            class_embedding,
            position_embedding,
            // Hugging Face spells it "pre_layrnorm".
            pre_layernorm: candle_nn::layer_norm(width, eps, vb.pp("pre_layrnorm"))?,
            encoder: Encoder::new(vb.pp("encoder"), &shape)?,
            post_layernorm: candle_nn::layer_norm(width, eps, vb.pp("post_layernorm"))?,
            patch_size: p,
            grid,
            channels: c,
        })
    }

    /// `pixels`: (batch, channels, size, size) -> pooled (batch, width),
    /// the post-layer-normed class token.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let (g, p, c) = (self.grid, self.patch_size, self.channels);
        let dev = pixels.device();
        let tokens = profile::time("vit: patch embedding", dev, || {
            // (b, c, g, p, g, p) -> (b, g, g, c, p, p) -> (b*g*g, c*p*p): one
            // matrix product for the whole batch, not one per image.
            let patches = pixels
                .reshape((b, c, g, p, g, p))?
                .permute((0, 2, 4, 1, 3, 5))?
                .contiguous()?
                .reshape((b * g * g, c * p * p))?;
            let tokens = patches.matmul(&self.patch_weight.t()?)?;
            let width = tokens.dim(D::Minus1)?;
            tokens.reshape((b, g * g, width))
        })?;
        let xs = profile::time("vit: class and position embeddings, pre-norm", dev, || {
            let width = tokens.dim(D::Minus1)?;
            let class = self
                .class_embedding
                .reshape((1, 1, width))?
                .broadcast_as((b, 1, width))?;
            let xs = Tensor::cat(&[&class, &tokens], 1)?.broadcast_add(&self.position_embedding)?;
            self.pre_layernorm.forward(&xs)
        })?;
        let xs = self.encoder.forward(&xs, None)?;
        let pooled = xs.narrow(1, 0, 1)?.squeeze(1)?;
        self.post_layernorm.forward(&pooled)
    }
}
