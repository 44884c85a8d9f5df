//! CLIP's text tower: a causal transformer over BPE tokens, pooled at the
//! end-of-text token. Loads the `text_model.*` tensors of Hugging Face's
//! `CLIPTextTransformer`.
//!
//! The pooling position comes from the host ([`crate::text::Tokens::pool_position`])
//! rather than an on-device `argmax` of the ids: candle's CUDA argmax does
//! not promise the first maximum, and the host already knows the answer.
//! Because attention is causal, padding after the end token cannot change
//! the pooled output, so a batch is padded to its longest prompt, not to 77.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use super::transformer::{Encoder, EncoderShape};
use crate::config::TextConfig;
use crate::ops::causal_mask;

#[derive(Debug, Clone)]
pub struct TextTransformer {
    token_embedding: Embedding,
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    max_tokens: usize,
}

impl TextTransformer {
    pub fn new(vb: VarBuilder, cfg: &TextConfig) -> Result<Self> {
        let width = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let shape = EncoderShape {
            width,
            intermediate: cfg.intermediate_size,
            layers: cfg.num_hidden_layers,
            heads: cfg.num_attention_heads,
            activation: cfg.hidden_act,
            layer_norm_eps: cfg.layer_norm_eps,
        };
        Ok(Self {
            token_embedding: candle_nn::embedding(
                cfg.vocab_size,
                width,
                emb.pp("token_embedding"),
            )?,
            position_embedding: emb.get(
                (cfg.max_position_embeddings, width),
                "position_embedding.weight",
            )?,
            encoder: Encoder::new(vb.pp("encoder"), &shape)?,
            final_layer_norm: candle_nn::layer_norm(
                width,
                cfg.layer_norm_eps,
                vb.pp("final_layer_norm"),
            )?,
            max_tokens: cfg.max_position_embeddings,
        })
    }

    /// Longest token sequence the position embedding covers.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// `ids`: (batch, tokens) u32, zero-padded; `pool_at[i]`: the end-of-text
    /// position of row `i`. Returns (batch, width).
    pub fn forward(&self, ids: &Tensor, pool_at: &[usize]) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.max_tokens {
            candle_core::bail!(
                "{t} tokens exceed the text tower's {} positions",
                self.max_tokens
            );
        }
        let xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, t)?)?;
        let mask = causal_mask(t, xs.device())?;
        let xs = self.encoder.forward(&xs, Some(&mask))?;
        let width = xs.dim(2)?;
        let rows: Vec<u32> = pool_at
            .iter()
            .enumerate()
            .map(|(i, &p)| (i * t + p.min(t - 1)) as u32)
            .collect();
        let rows = Tensor::from_vec(rows, b, xs.device())?;
        // The final layer norm is per token: normalising only the pooled
        // rows gives the same values for a fraction of the work.
        let pooled = xs.reshape((b * t, width))?.index_select(&rows, 0)?;
        self.final_layer_norm.forward(&pooled)
    }
}
